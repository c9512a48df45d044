//! The rule shapes of the table's fixed chains (`ruleset::skeleton`): base
//! chain jumps, the verdict-map dispatch, reject, and the masquerade mark.
//!
//! - `ct state new VERDICT`
//! - `ip daddr . meta l4proto . th dport vmap @MAP`
//! - `fib daddr type local ip daddr != CIDR meta l4proto . th dport vmap @MAP`
//! - `meta l4proto tcp reject with tcp reset`, `reject`
//! - `meta mark set meta mark or|xor MARK`
//! - `meta mark and MARK == 0 VERDICT`
//! - `ip saddr . ip daddr @SET VERDICT`
//! - `masquerade fully-random`
//!
//! MARK is decimal or `0x` hex, as nft reads it. `meta mark` is a
//! host-order u32 in the register, so masks and values are too.

use super::consts::*;
use super::expr::{CmpOp, Expr, FibAddr, Header, MetaKey};
use super::rule::{
    fib_local, ip_field, l4proto_match, parse_verdict, prefix_match, set_ref, IP_DADDR, IP_SADDR,
    L4_DPORT,
};

/// The expressions of one fixed-chain rule, or `None`.
pub fn parse(words: &[&str]) -> Option<Vec<Expr>> {
    let mut exprs = Vec::new();
    match words {
        ["ct", "state", "new", verdict @ ..] => {
            // A flag test: `(state & new) != 0`.
            exprs.extend([
                Expr::CtState,
                Expr::Bitwise {
                    mask: NF_CT_STATE_NEW.to_ne_bytes().to_vec(),
                    xor: vec![0; 4],
                    named_op: false,
                },
                Expr::Cmp {
                    op: CmpOp::Neq,
                    data: vec![0; 4],
                },
                Expr::Immediate(parse_verdict(verdict)?),
            ]);
        }
        ["ip", "daddr", ".", "meta", "l4proto", ".", "th", "dport", "vmap", map] => {
            exprs.push(ip_field(IP_DADDR, 4, NFT_REG_1));
            exprs.extend(service_tuple_vmap(NFT_REG32_01, map)?);
        }
        ["fib", "daddr", "type", "local", "ip", "daddr", "!=", cidr, "meta", "l4proto", ".", "th", "dport", "vmap", map] =>
        {
            exprs.extend(fib_local(FibAddr::Daddr));
            exprs.extend(prefix_match(IP_DADDR, CmpOp::Neq, cidr)?);
            exprs.extend(service_tuple_vmap(NFT_REG_1, map)?);
        }
        ["meta", "l4proto", "tcp", "reject", "with", "tcp", "reset"] => {
            exprs.extend(l4proto_match("tcp")?);
            exprs.push(Expr::Reject {
                kind: NFT_REJECT_TCP_RST,
                code: 0,
            });
        }
        ["reject"] => exprs.push(Expr::Reject {
            kind: NFT_REJECT_ICMP_UNREACH,
            code: ICMP_PORT_UNREACH,
        }),
        ["meta", "mark", "set", "meta", "mark", op, value] => {
            let value = mark(value)?;
            let (mask, xor) = match *op {
                "or" => (!value, value),
                "xor" => (u32::MAX, value),
                _ => return None,
            };
            exprs.extend([load_mark(), mark_bitwise(mask, xor), Expr::MetaSetMark]);
        }
        ["meta", "mark", "and", value, "==", "0", verdict @ ..] => {
            exprs.extend([
                load_mark(),
                mark_bitwise(mark(value)?, 0),
                Expr::Cmp {
                    op: CmpOp::Eq,
                    data: vec![0; 4],
                },
                Expr::Immediate(parse_verdict(verdict)?),
            ]);
        }
        ["ip", "saddr", ".", "ip", "daddr", set, verdict @ ..] => {
            exprs.extend([
                ip_field(IP_SADDR, 4, NFT_REG_1),
                ip_field(IP_DADDR, 4, NFT_REG32_01),
                Expr::Lookup {
                    set: set_ref(set)?,
                    dreg: None,
                },
                Expr::Immediate(parse_verdict(verdict)?),
            ]);
        }
        ["masquerade", "fully-random"] => exprs.push(Expr::Masquerade {
            flags: NF_NAT_RANGE_PROTO_RANDOM_FULLY,
        }),
        _ => return None,
    }
    Some(exprs)
}

/// `meta l4proto . th dport vmap @MAP`, the concatenation starting in
/// register `first` (`NFT_REG_1`, or its second word after an address).
fn service_tuple_vmap(first: u32, map: &str) -> Option<[Expr; 3]> {
    // The port goes in the 32-bit word after the protocol's.
    let port_reg = match first {
        NFT_REG_1 => NFT_REG32_01,
        NFT_REG32_01 => NFT_REG32_02,
        _ => return None,
    };
    Some([
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: first,
        },
        Expr::Payload {
            header: Header::Transport,
            offset: L4_DPORT,
            len: 2,
            dreg: port_reg,
        },
        Expr::Lookup {
            set: set_ref(map)?,
            dreg: Some(NFT_REG_VERDICT),
        },
    ])
}

fn load_mark() -> Expr {
    Expr::Meta {
        key: MetaKey::Mark,
        dreg: NFT_REG_1,
    }
}

/// `and`/`or`/`xor` on the mark, as nft folds them: `(mark & MASK) ^ XOR`.
fn mark_bitwise(mask: u32, xor: u32) -> Expr {
    Expr::Bitwise {
        mask: mask.to_ne_bytes().to_vec(),
        xor: xor.to_ne_bytes().to_vec(),
        named_op: true,
    }
}

/// A mark value: decimal or `0x` hex.
fn mark(word: &str) -> Option<u32> {
    match word.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None => super::rule::number(word),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::netlink::expr::{RuleVerdict, SetRef};
    use crate::nft::netlink::rule::parse as parse_rule;

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn service_dispatch_loads_the_tuple_into_consecutive_words() {
        let exprs = parse(&words(
            "ip daddr . meta l4proto . th dport vmap @service-ips",
        ))
        .unwrap();
        assert_eq!(
            exprs,
            [
                ip_field(IP_DADDR, 4, 1),
                Expr::Meta {
                    key: MetaKey::L4Proto,
                    dreg: 9
                },
                Expr::Payload {
                    header: Header::Transport,
                    offset: 2,
                    len: 2,
                    dreg: 10
                },
                Expr::Lookup {
                    set: SetRef::Named("service-ips".into()),
                    dreg: Some(0)
                },
            ]
        );
        let nodeports = parse(&words(
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @np",
        ))
        .unwrap();
        assert_eq!(nodeports[0], Expr::FibType(FibAddr::Daddr));
        assert_eq!(nodeports[2], ip_field(IP_DADDR, 1, 1));
        assert_eq!(
            nodeports[3],
            Expr::Cmp {
                op: CmpOp::Neq,
                data: vec![127]
            }
        );
        assert_eq!(
            nodeports[4],
            Expr::Meta {
                key: MetaKey::L4Proto,
                dreg: 1
            }
        );
    }

    #[test]
    fn mark_arithmetic_matches_nft() {
        let or = parse(&words("meta mark set meta mark or 0x4000")).unwrap();
        assert_eq!(or[1], mark_bitwise(0xffff_bfff, 0x4000));
        let xor = parse(&words("meta mark set meta mark xor 16384")).unwrap();
        assert_eq!(xor[1], mark_bitwise(u32::MAX, 0x4000));
        let test = parse(&words("meta mark and 0x4000 == 0 return")).unwrap();
        assert_eq!(test[1], mark_bitwise(0x4000, 0));
        assert_eq!(test[3], Expr::Immediate(RuleVerdict::Return));
    }

    #[test]
    fn comments_apply_to_fixed_shapes() {
        let rule = parse_rule(r#"ct state new jump services comment "sy:abc x""#).unwrap();
        assert_eq!(rule.exprs.len(), 4);
        assert_eq!(rule.userdata().unwrap(), b"\x00\x09sy:abc x\x00");
    }

    #[test]
    fn near_misses_are_none() {
        for text in [
            "ct state established jump x",
            "ct state new",
            "ip daddr . meta l4proto . th dport vmap service-ips",
            "ip daddr . meta l4proto . th dport map @service-ips",
            "fib daddr type local ip daddr != 127.0.0.0/33 meta l4proto . th dport vmap @m",
            "meta l4proto udp reject with tcp reset",
            "reject with icmp type host-unreachable",
            "meta mark set meta mark and 0x4000",
            "meta mark set meta mark or 0x",
            "meta mark set meta mark or 0x1ffffffff",
            "meta mark and 0x4000 == 1 return",
            "meta mark and 0x4000 != 0 return",
            "ip saddr . ip daddr hairpin jump x",
            "masquerade",
            "masquerade random",
        ] {
            assert_eq!(parse(&words(text)), None, "{text:?}");
        }
    }
}
