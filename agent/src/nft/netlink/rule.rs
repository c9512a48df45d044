//! Rule text → expressions. Anything not recognised is `None`, and the
//! caller falls back to `nft -f`: guessing at nft's translation of an
//! unknown statement could program a rule that differs from what nft
//! would have made of it.
//!
//! Every rule may end in `comment "TEXT"`. PROTO is `tcp`, `udp` or
//! `sctp`; VERDICT is `jump CHAIN`, `goto CHAIN`, or alone `drop` or
//! `return`. Service chains (here):
//!
//! - `ip daddr A PROTO dport P [ip saddr != CIDR] VERDICT`
//! - `meta l4proto PROTO dnat ip to numgen random mod N [offset B] map @MAP`,
//!   MAP an interval map (nft converts the key to network order for it)
//! - `[ip saddr CIDR | fib saddr type local] VERDICT`
//!
//! The fixed chains of the skeleton are in [`super::skeleton`], the
//! ClientIP affinity shapes in [`super::affinity`].

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::anonymous::AnonymousMap;
use super::consts::{
    NFTNL_UDATA_COMMENT_MAXLEN, NFTNL_UDATA_RULE_COMMENT, NFT_REG32_01, NFT_REG_1, RTN_LOCAL,
};
use super::expr::{CmpOp, Expr, FibAddr, Header, MetaKey, RuleVerdict, SetRef};
use super::identifier;
use super::{affinity, skeleton};
use crate::model::Protocol;

/// Offsets in the IPv4 header and in the TCP/UDP/SCTP header.
pub const IP_SADDR: u32 = 12;
pub const IP_DADDR: u32 = 16;
pub const L4_DPORT: u32 = 2;

/// A parsed rule: its expressions, the anonymous map it looks up (if
/// any), and the comment nft keeps in userdata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub exprs: Vec<Expr>,
    pub anonymous: Option<AnonymousMap>,
    pub comment: Option<String>,
}

impl Rule {
    /// A rule of `exprs` alone.
    pub fn new(exprs: Vec<Expr>) -> Self {
        Self {
            exprs,
            anonymous: None,
            comment: None,
        }
    }

    /// `NFTA_RULE_USERDATA` as nft writes it: one TLV holding the comment
    /// with its NUL, so `nft list` prints it back unchanged.
    pub fn userdata(&self) -> Option<Vec<u8>> {
        let comment = self.comment.as_ref()?;
        let mut out = vec![NFTNL_UDATA_RULE_COMMENT, (comment.len() + 1) as u8];
        out.extend_from_slice(comment.as_bytes());
        out.push(0);
        Some(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    /// The inside of `"…"`. nft 1.0.6 has no escapes in quoted strings.
    Quoted(&'a str),
}

/// Splits on whitespace, keeping `"…"` whole. A quote inside a word or an
/// unterminated quote is `None`.
fn tokenize(text: &str) -> Option<Vec<Token<'_>>> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"')?;
            tokens.push(Token::Quoted(&after[..end]));
            rest = &after[end + 1..];
            if rest.starts_with(|c: char| !c.is_whitespace()) {
                return None;
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            if word.contains('"') {
                return None;
            }
            tokens.push(Token::Word(word));
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Some(tokens)
}

/// Parses one rule body as written after `add rule ip T CHAIN`.
pub fn parse(text: &str) -> Option<Rule> {
    let mut tokens = tokenize(text)?;
    let comment = match tokens.as_slice() {
        [.., Token::Word("comment"), Token::Quoted(c)] => {
            let comment = (*c).to_owned();
            tokens.truncate(tokens.len() - 2);
            Some(comment)
        }
        _ => None,
    };
    if comment
        .as_ref()
        .is_some_and(|c| c.len() > NFTNL_UDATA_COMMENT_MAXLEN)
    {
        return None;
    }
    let words = tokens
        .iter()
        .map(|t| match t {
            Token::Word(w) => Some(*w),
            Token::Quoted(_) => None,
        })
        .collect::<Option<Vec<&str>>>()?;
    // The three grammars share no rule text: at most one accepts it.
    let rule = service(&words)
        .map(Rule::new)
        .or_else(|| skeleton::parse(&words).map(Rule::new))
        .or_else(|| affinity::parse(&words))?;
    Some(Rule { comment, ..rule })
}

/// The shapes of Service chains.
fn service(words: &[&str]) -> Option<Vec<Expr>> {
    let mut exprs = Vec::new();
    let verdict = match words {
        ["ip", "daddr", addr, proto, "dport", port, rest @ ..] => {
            exprs.extend(addr_match(IP_DADDR, addr)?);
            exprs.extend(dport_match(proto, port)?);
            match rest {
                ["ip", "saddr", "!=", cidr, verdict @ ..] => {
                    exprs.extend(prefix_match(IP_SADDR, CmpOp::Neq, cidr)?);
                    verdict
                }
                verdict => verdict,
            }
        }
        ["meta", "l4proto", proto, "dnat", "ip", "to", "numgen", "random", "mod", modulus, rest @ ..] =>
        {
            let (offset, map) = match rest {
                ["offset", offset, "map", map] => (number(offset)?, *map),
                ["map", map] => (0, *map),
                _ => return None,
            };
            let modulus = number(modulus)?;
            exprs.extend(l4proto_match(proto)?);
            exprs.push(Expr::NumgenRandom {
                modulus: (modulus > 0).then_some(modulus)?,
                offset,
            });
            exprs.push(Expr::HtonReg1);
            exprs.push(Expr::Lookup {
                set: set_ref(map)?,
                dreg: Some(NFT_REG_1),
            });
            exprs.push(Expr::Dnat {
                proto_reg: NFT_REG32_01,
                flags: None,
            });
            return Some(exprs);
        }
        ["ip", "saddr", cidr, verdict @ ..] => {
            exprs.extend(prefix_match(IP_SADDR, CmpOp::Eq, cidr)?);
            verdict
        }
        ["fib", "saddr", "type", "local", verdict @ ..] => {
            exprs.extend(fib_local(FibAddr::Saddr));
            verdict
        }
        verdict => verdict,
    };
    exprs.push(Expr::Immediate(parse_verdict(verdict)?));
    Some(exprs)
}

pub fn parse_verdict(words: &[&str]) -> Option<RuleVerdict> {
    match words {
        ["jump", chain] if identifier(chain) => Some(RuleVerdict::Jump((*chain).to_owned())),
        ["goto", chain] if identifier(chain) => Some(RuleVerdict::Goto((*chain).to_owned())),
        ["drop"] => Some(RuleVerdict::Drop),
        ["return"] => Some(RuleVerdict::Return),
        _ => None,
    }
}

/// `@NAME` of a named set or map.
pub fn set_ref(word: &str) -> Option<SetRef> {
    let name = word.strip_prefix('@').filter(|m| identifier(m))?;
    Some(SetRef::Named(name.to_owned()))
}

/// A plain decimal number (nft also reads hex; we never write it).
pub fn number(word: &str) -> Option<u32> {
    word.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| word.parse().ok())?
}

pub fn protocol(word: &str) -> Option<Protocol> {
    match word {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// The IP protocol number, as `meta l4proto` loads it.
pub fn ip_proto(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

/// `meta l4proto PROTO`.
pub fn l4proto_match(proto: &str) -> Option<[Expr; 2]> {
    Some([
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            data: vec![ip_proto(protocol(proto)?)],
        },
    ])
}

/// `fib ADDR type local`.
pub fn fib_local(addr: FibAddr) -> [Expr; 2] {
    [
        Expr::FibType(addr),
        Expr::Cmp {
            op: CmpOp::Eq,
            data: RTN_LOCAL.to_ne_bytes().to_vec(),
        },
    ]
}

/// A load of `len` bytes of the IPv4 header at `offset` into `dreg`.
pub fn ip_field(offset: u32, len: u32, dreg: u32) -> Expr {
    Expr::Payload {
        header: Header::Network,
        offset,
        len,
        dreg,
    }
}

/// `PROTO dport P`: nft adds the `meta l4proto` dependency before the port.
fn dport_match(proto: &str, port: &str) -> Option<Vec<Expr>> {
    let port = u16::try_from(number(port)?).ok()?;
    let mut exprs = l4proto_match(proto)?.to_vec();
    exprs.push(Expr::Payload {
        header: Header::Transport,
        offset: L4_DPORT,
        len: 2,
        dreg: NFT_REG_1,
    });
    exprs.push(Expr::Cmp {
        op: CmpOp::Eq,
        data: port.to_be_bytes().to_vec(),
    });
    Some(exprs)
}

fn addr_match(offset: u32, addr: &str) -> Option<[Expr; 2]> {
    let addr: Ipv4Addr = addr.parse().ok()?;
    Some([
        ip_field(offset, 4, NFT_REG_1),
        Expr::Cmp {
            op: CmpOp::Eq,
            data: addr.octets().to_vec(),
        },
    ])
}

/// `ip saddr|daddr [!=] CIDR` the way nft does it: a whole-byte prefix
/// loads and compares just those bytes; any other prefix (/0 included)
/// loads the address, masks it and compares with the network address.
pub fn prefix_match(offset: u32, op: CmpOp, cidr: &str) -> Option<Vec<Expr>> {
    let net: Ipv4Net = match cidr.contains('/') {
        true => cidr.parse().ok()?,
        false => Ipv4Net::from(cidr.parse::<Ipv4Addr>().ok()?),
    };
    let network = net.network().octets();
    let prefix = net.prefix_len();
    if prefix > 0 && prefix.is_multiple_of(8) {
        let bytes = usize::from(prefix / 8);
        return Some(vec![
            ip_field(offset, u32::from(prefix / 8), NFT_REG_1),
            Expr::Cmp {
                op,
                data: network[..bytes].to_vec(),
            },
        ]);
    }
    Some(vec![
        ip_field(offset, 4, NFT_REG_1),
        Expr::Bitwise {
            mask: net.netmask().octets().to_vec(),
            xor: vec![0; 4],
            named_op: false,
        },
        Expr::Cmp {
            op,
            data: network.to_vec(),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(header: Header, offset: u32, len: u32) -> Expr {
        Expr::Payload {
            header,
            offset,
            len,
            dreg: NFT_REG_1,
        }
    }

    fn l4proto() -> Expr {
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: NFT_REG_1,
        }
    }

    fn eq(data: &[u8]) -> Expr {
        Expr::Cmp {
            op: CmpOp::Eq,
            data: data.to_vec(),
        }
    }

    #[test]
    fn tokenizer_keeps_quoted_comment_whole() {
        assert_eq!(
            tokenize(r#"drop comment "a b  c""#).unwrap(),
            [
                Token::Word("drop"),
                Token::Word("comment"),
                Token::Quoted("a b  c")
            ]
        );
        assert_eq!(tokenize(r#"drop comment "open"#), None);
        assert_eq!(tokenize(r#"drop comment a"b"#), None);
        assert_eq!(tokenize(r#"drop comment "a"b"#), None);
    }

    #[test]
    fn masquerade_rule_matches_nft_expressions() {
        let rule = parse(
            "ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        )
        .unwrap();
        assert_eq!(
            rule.exprs,
            [
                payload(Header::Network, 16, 4),
                eq(&[10, 96, 0, 10]),
                l4proto(),
                eq(&[6]),
                payload(Header::Transport, 2, 2),
                eq(&[0, 80]),
                payload(Header::Network, 12, 2),
                Expr::Cmp {
                    op: CmpOp::Neq,
                    data: vec![10, 244]
                },
                Expr::Immediate(RuleVerdict::Jump("mark-for-masquerade".into())),
            ]
        );
        assert_eq!(rule.comment, None);
    }

    #[test]
    fn unaligned_prefix_is_masked() {
        let rule = parse("ip saddr 10.244.1.7/20 goto svc-a").unwrap();
        assert_eq!(
            rule.exprs,
            [
                payload(Header::Network, 12, 4),
                Expr::Bitwise {
                    mask: vec![255, 255, 240, 0],
                    xor: vec![0; 4],
                    named_op: false
                },
                eq(&[10, 244, 0, 0]),
                Expr::Immediate(RuleVerdict::Goto("svc-a".into())),
            ]
        );
        assert_eq!(
            parse("ip saddr 10.0.0.1 goto x").unwrap().exprs[..2],
            [payload(Header::Network, 12, 4), eq(&[10, 0, 0, 1])]
        );
    }

    #[test]
    fn dnat_rule_and_comment() {
        let rule = parse(
            r#"meta l4proto sctp dnat ip to numgen random mod 3 offset 16384 map @backend-ranges-sctp-00 comment "svc x""#,
        )
        .unwrap();
        assert_eq!(
            rule.exprs,
            [
                l4proto(),
                eq(&[132]),
                Expr::NumgenRandom {
                    modulus: 3,
                    offset: 16384
                },
                Expr::HtonReg1,
                Expr::Lookup {
                    set: SetRef::Named("backend-ranges-sctp-00".into()),
                    dreg: Some(NFT_REG_1)
                },
                Expr::Dnat {
                    proto_reg: NFT_REG32_01,
                    flags: None
                },
            ]
        );
        assert_eq!(rule.userdata().unwrap(), b"\x00\x06svc x\x00");
    }

    #[test]
    fn fib_and_plain_verdicts() {
        let rule = parse("fib saddr type local jump svc-a").unwrap();
        assert_eq!(
            rule.exprs[..2],
            [Expr::FibType(FibAddr::Saddr), eq(&2u32.to_ne_bytes())]
        );
        assert_eq!(
            parse("drop").unwrap().exprs,
            [Expr::Immediate(RuleVerdict::Drop)]
        );
        assert_eq!(
            parse("goto svc-a").unwrap().exprs,
            [Expr::Immediate(RuleVerdict::Goto("svc-a".into()))]
        );
    }

    #[test]
    fn unsupported_text_is_none() {
        for text in [
            "",
            "accept",
            "counter drop",
            "jump",
            "jump a b",
            "jump 1chain",
            "ip daddr 10.0.0.1 drop",
            "ip daddr 10.0.0.300 tcp dport 80 drop",
            "ip daddr 10.0.0.1 tcp dport 70000 drop",
            "ip daddr 10.0.0.1 tcp dport http drop",
            "ip daddr 10.0.0.1 icmp dport 80 drop",
            "ip daddr 10.0.0.1 tcp dport 80 ip saddr 10.0.0.0/8 drop",
            "ip saddr 10.0.0.0/33 drop",
            "ip saddr != 10.0.0.0/8 drop",
            "fib daddr type local drop",
            "meta l4proto tcp dnat ip to numgen random mod 0 map @m",
            "meta l4proto tcp dnat ip to numgen random mod 2 map m",
            "meta l4proto tcp dnat ip to numgen inc mod 2 map @m",
            "meta l4proto tcp dnat ip to numgen random mod 0x2 map @m",
            "drop comment unquoted",
            r#"drop comment "a" extra"#,
            r#""drop""#,
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        let long = format!("drop comment \"{}\"", "x".repeat(129));
        assert_eq!(parse(&long), None);
    }
}
