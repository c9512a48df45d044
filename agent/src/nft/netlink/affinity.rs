//! The rule shapes of ClientIP session affinity (`svc-*` and `ep-*` chains
//! of Services with `sessionAffinity: ClientIP`):
//!
//! - `ip saddr @SET VERDICT`: a client seen recently goes to its endpoint;
//! - `update @SET { ip saddr }`: remembers the client;
//! - `meta l4proto PROTO dnat to A:P`;
//! - `numgen random mod N vmap { 0 : VERDICT, 1 : VERDICT, … }`: the
//!   first pick, through an anonymous map (see [`super::anonymous`]).
//!   Keys must be `0, 1, …` in order, as the compiler writes them.

use std::net::Ipv4Addr;

use super::anonymous::AnonymousMap;
use super::consts::*;
use super::expr::{Expr, RuleVerdict, SetRef};
use super::rule::{ip_field, l4proto_match, number, parse_verdict, set_ref, Rule, IP_SADDR};

/// One affinity rule, or `None`.
pub fn parse(words: &[&str]) -> Option<Rule> {
    let exprs = match words {
        ["ip", "saddr", set, verdict @ ..] if set.starts_with('@') => vec![
            ip_field(IP_SADDR, 4, NFT_REG_1),
            Expr::Lookup {
                set: set_ref(set)?,
                dreg: None,
            },
            Expr::Immediate(parse_verdict(verdict)?),
        ],
        ["update", set, "{", "ip", "saddr", "}"] => {
            let SetRef::Named(set) = set_ref(set)? else {
                return None;
            };
            vec![ip_field(IP_SADDR, 4, NFT_REG_1), Expr::DynsetUpdate { set }]
        }
        ["meta", "l4proto", proto, "dnat", "to", target] => {
            let (addr, port) = target.split_once(':')?;
            let addr: Ipv4Addr = addr.parse().ok()?;
            let port = u16::try_from(number(port)?).ok()?;
            let mut exprs = l4proto_match(proto)?.to_vec();
            exprs.extend([
                Expr::ImmediateData {
                    dreg: NFT_REG_1,
                    data: addr.octets().to_vec(),
                },
                Expr::ImmediateData {
                    dreg: NFT_REG_2,
                    data: port.to_be_bytes().to_vec(),
                },
                Expr::Dnat {
                    proto_reg: NFT_REG_2,
                    flags: Some(NF_NAT_RANGE_PROTO_SPECIFIED),
                },
            ]);
            exprs
        }
        ["numgen", "random", "mod", modulus, "vmap", "{", arms @ .., "}"] => {
            let modulus = number(modulus).filter(|m| *m > 0)?;
            let anonymous = AnonymousMap {
                elements: vmap_arms(arms)?,
            };
            return Some(Rule {
                exprs: vec![
                    Expr::NumgenRandom { modulus, offset: 0 },
                    Expr::Lookup {
                        set: SetRef::Anonymous,
                        dreg: Some(NFT_REG_VERDICT),
                    },
                ],
                anonymous: Some(anonymous),
                comment: None,
            });
        }
        _ => return None,
    };
    Some(Rule::new(exprs))
}

/// `0 : VERDICT, 1 : VERDICT, …` (the words between the braces).
fn vmap_arms(words: &[&str]) -> Option<Vec<(u32, RuleVerdict)>> {
    let text = words.join(" ");
    text.split(',')
        .enumerate()
        .map(|(i, arm)| {
            let arm: Vec<&str> = arm.split_whitespace().collect();
            match arm.as_slice() {
                [key, ":", verdict @ ..] => {
                    let key = number(key).filter(|k| usize::try_from(*k).ok() == Some(i))?;
                    Some((key, parse_verdict(verdict)?))
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn vmap_declares_its_anonymous_map() {
        let rule = parse(&words(
            "numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b }",
        ))
        .unwrap();
        assert_eq!(
            rule.anonymous.unwrap().elements,
            [
                (0, RuleVerdict::Goto("ep-a".into())),
                (1, RuleVerdict::Goto("ep-b".into()))
            ]
        );
        assert_eq!(
            rule.exprs[1],
            Expr::Lookup {
                set: SetRef::Anonymous,
                dreg: Some(0)
            }
        );
    }

    #[test]
    fn dnat_to_address_and_port_uses_two_registers() {
        let rule = parse(&words("meta l4proto udp dnat to 10.244.1.5:53")).unwrap();
        assert_eq!(
            rule.exprs[2..],
            [
                Expr::ImmediateData {
                    dreg: 1,
                    data: vec![10, 244, 1, 5]
                },
                Expr::ImmediateData {
                    dreg: 2,
                    data: vec![0, 53]
                },
                Expr::Dnat {
                    proto_reg: 2,
                    flags: Some(2)
                },
            ]
        );
    }

    #[test]
    fn near_misses_are_none() {
        for text in [
            "ip saddr @ goto ep-a",
            "ip saddr @aff-x",
            "update @aff-x { ip daddr }",
            "update aff-x { ip saddr }",
            "meta l4proto tcp dnat to 10.244.1.5",
            "meta l4proto tcp dnat to 10.244.1.5:70000",
            "meta l4proto tcp dnat to [::1]:80",
            "numgen random mod 0 vmap { 0 : goto a }",
            "numgen random mod 2 vmap { }",
            "numgen random mod 2 vmap { 1 : goto a, 0 : goto b }",
            "numgen random mod 2 vmap { 0 : goto a 1 : goto b }",
            "numgen random mod 2 vmap { 0 : goto a, }",
            "numgen random mod 2 vmap { 0 : accept }",
            "numgen inc mod 2 vmap { 0 : goto a }",
        ] {
            assert_eq!(parse(&words(text)), None, "{text:?}");
        }
    }
}
