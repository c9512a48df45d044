//! Reads the constant layout back from `nft -j list table`, for the
//! periodic full resync: edits that keep the canary (an element deleted
//! or a chain flushed by hand) show only in a full listing.
//!
//! The elements are read back into a [`Table`], compared as a whole with
//! the desired one; chains are compared by name, rule count and the
//! fingerprint their first rule carries, so no rule expression is parsed.
//! The listing is read piece by piece (see `nft::listing`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Map, Value};

use super::render::{chains, AFFINITY, FIREWALL_ALLOW, NODE_PORT_BACKENDS, SERVICE_BACKENDS};
use super::table::{Fact, Table};
use crate::model::Protocol;
use crate::nft::error::NftError;
use crate::nft::fingerprint;
use crate::nft::listing::{self, Reader};
use crate::nft::state::{MapKey, Target, CANARY_SET, HAIRPIN_SET};

/// What a listing of the table shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub exists: bool,
    pub generation: Option<u32>,
    pub table: Table,
    /// Rule count and first rule's fingerprint, by chain.
    pub chains: BTreeMap<String, (usize, Option<String>)>,
    pub sets: BTreeSet<String>,
    /// Some element of ours could not be read: compare as different.
    pub unreadable: bool,
}

impl Live {
    /// Whether the table holds exactly `desired` and the fixed chains for
    /// a node with `pod_cidr`.
    pub fn holds(&self, desired: &Table, pod_cidr: Option<Ipv4Net>) -> bool {
        self.has_chains_for(desired, pod_cidr)
            && self.table.tuples == desired.tuples
            && self.table.hairpin == desired.hairpin
            && self.table.affinity_timeouts == desired.affinity_timeouts
    }

    /// Whether the table has `desired`'s fixed chains, rules untouched, and
    /// its canary, whatever its elements: then a delta of elements makes it
    /// hold `desired` (the rules reference every other set, so those exist).
    pub fn has_chains_for(&self, desired: &Table, pod_cidr: Option<Ipv4Net>) -> bool {
        let want: BTreeMap<String, (usize, Option<String>)> =
            chains(pod_cidr, &desired.affinity_timeouts)
                .into_iter()
                .map(|(name, _, rules)| {
                    let fingerprint = rules
                        .first()
                        .and_then(|r| r.rsplit_once(" comment \""))
                        .and_then(|(_, c)| fingerprint::parse(c.trim_end_matches('"')))
                        .map(str::to_owned);
                    (name.to_owned(), (rules.len(), fingerprint))
                })
                .collect();
        self.exists && !self.unreadable && self.chains == want && self.sets.contains(CANARY_SET)
    }
}

/// Reads a listing of table `ip <name>` (nft's stdout, or a string).
pub fn read(listing: impl std::io::Read, name: &str) -> Result<Live, NftError> {
    let mut reader = LiveReader {
        name,
        live: Live::default(),
    };
    listing::read(serde_json::Deserializer::from_reader(listing), &mut reader)?;
    Ok(reader.live)
}

struct LiveReader<'t> {
    name: &'t str,
    live: Live,
}

impl Reader for LiveReader<'_> {
    fn element(&mut self, kind: &str, head: &Map<String, Value>, element: Value) {
        if text(head, "table") != self.name || kind == "map" && text(head, "name") == AFFINITY {
            return;
        }
        let element = match element.get("elem").and_then(|e| e.get("val")) {
            Some(val) => val.clone(),
            None => element,
        };
        if self.add(text(head, "name"), &element).is_none() {
            self.live.unreadable = true;
        }
    }

    fn object(&mut self, kind: &str, obj: Map<String, Value>) {
        let live = &mut self.live;
        match kind {
            "table" => live.exists |= text(&obj, "name") == self.name,
            _ if text(&obj, "table") != self.name => {}
            "chain" => {
                live.chains
                    .entry(text(&obj, "name").to_owned())
                    .or_default();
            }
            "rule" => {
                let chain = live
                    .chains
                    .entry(text(&obj, "chain").to_owned())
                    .or_default();
                if chain.0 == 0 {
                    chain.1 = obj
                        .get("comment")
                        .and_then(Value::as_str)
                        .and_then(fingerprint::parse)
                        .map(str::to_owned);
                }
                chain.0 += 1;
            }
            "set" | "map" => {
                let name = text(&obj, "name");
                if let Some(timeout) = affinity_timeout(name) {
                    live.table.affinity_timeouts.insert(timeout.0);
                }
                live.sets.insert(name.to_owned());
            }
            _ => {}
        }
    }
}

impl LiveReader<'_> {
    /// Adds one element of set `set`; `None` when it cannot be read.
    fn add(&mut self, set: &str, element: &Value) -> Option<()> {
        let table = &mut self.live.table;
        let parts = || element.get("concat").and_then(Value::as_array);
        match set {
            CANARY_SET => self.live.generation = element.as_u64()?.try_into().ok(),
            HAIRPIN_SET => {
                let [a, b] = parts()?.as_slice() else {
                    return None;
                };
                let ip = address(a)?;
                (address(b)? == ip).then(|| table.hairpin.insert(ip))?;
            }
            FIREWALL_ALLOW => {
                let (tuple, rest) = tuple(parts()?)?;
                let [range] = rest else {
                    return None;
                };
                let range = prefix(range)?;
                table.tuples.entry(tuple).or_default().allow.insert(range);
            }
            SERVICE_BACKENDS | NODE_PORT_BACKENDS => {
                let [key, data] = element.as_array()?.as_slice() else {
                    return None;
                };
                let (tuple, rest) = tuple(key.get("concat")?.as_array()?)?;
                let [slot] = rest else {
                    return None;
                };
                let slot = u32::try_from(slot.as_u64()?).ok()?;
                let [ip, port] = data.get("concat")?.as_array()?.as_slice() else {
                    return None;
                };
                let target = Target {
                    ip: address(ip)?,
                    port: u16::try_from(port.as_u64()?).ok()?,
                    protocol: tuple.protocol,
                };
                table
                    .tuples
                    .entry(tuple)
                    .or_default()
                    .slots
                    .insert(slot, target);
            }
            _ => {
                let parts = parts()?;
                let (tuple, []) = tuple(parts)? else {
                    return None;
                };
                let by_address = tuple.addr.is_some();
                let facts = table.tuples.entry(tuple).or_default();
                if let Some((timeout, for_addresses)) = affinity_timeout(set) {
                    (for_addresses == by_address).then_some(())?;
                    facts.affinity = Some(timeout);
                } else {
                    let fact = Fact::ALL
                        .into_iter()
                        .find(|f| f.set_name(by_address) == Some(set))?;
                    facts.facts.insert(fact);
                }
            }
        }
        Some(())
    }
}

/// The timeout of an affinity set, and whether it holds address tuples.
fn affinity_timeout(set: &str) -> Option<(u32, bool)> {
    if let Some(t) = set.strip_prefix("affinity-node-ports-") {
        return Some((t.parse().ok()?, false));
    }
    Some((set.strip_prefix("affinity-")?.parse().ok()?, true))
}

/// `[addr,] proto, port` at the start of a concatenation, and the rest.
fn tuple(parts: &[Value]) -> Option<(MapKey, &[Value])> {
    let (addr, rest) = match parts.first()?.as_str().and_then(|s| s.parse().ok()) {
        Some(ip) => (Some(ip), &parts[1..]),
        None => (None, parts),
    };
    let [protocol, port, rest @ ..] = rest else {
        return None;
    };
    let tuple = MapKey {
        addr,
        protocol: Protocol::from_nft(&protocol_text(protocol)?)?,
        port: u16::try_from(port.as_u64()?).ok()?,
    };
    Some((tuple, rest))
}

/// nft names known protocols and numbers the rest.
fn protocol_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn address(value: &Value) -> Option<Ipv4Addr> {
    value.as_str()?.parse().ok()
}

/// `{"prefix": {"addr": …, "len": …}}`, or a bare address (a /32).
fn prefix(value: &Value) -> Option<Ipv4Net> {
    if let Some(ip) = address(value) {
        return Some(Ipv4Net::from(ip));
    }
    let prefix = value.get("prefix")?;
    let len = u8::try_from(prefix.get("len")?.as_u64()?).ok()?;
    Ipv4Net::new(address(prefix.get("addr")?)?, len).ok()
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing as nft 1.0.6 prints it (one line per object here).
    const LISTING: &str = r#"{"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "ip", "name": "sy", "handle": 6}},
        {"set": {"family": "ip", "name": "cluster-ips", "table": "sy", "elem": [{"concat": ["10.96.0.10", "tcp", 80]}]}},
        {"set": {"family": "ip", "name": "node-ports", "table": "sy", "elem": [{"concat": ["tcp", 30080]}]}},
        {"set": {"family": "ip", "name": "affinity-60", "table": "sy", "elem": [{"concat": ["10.96.0.10", "tcp", 80]}]}},
        {"set": {"family": "ip", "name": "firewall-allow", "table": "sy", "elem": [{"concat": ["10.96.0.10", "tcp", 80, {"prefix": {"addr": "172.18.0.0", "len": 24}}]}, {"concat": ["10.96.0.10", "tcp", 80, "192.0.2.1"]}]}},
        {"set": {"family": "ip", "name": "hairpin", "table": "sy", "elem": [{"concat": ["10.244.1.5", "10.244.1.5"]}]}},
        {"set": {"family": "ip", "name": "canary", "table": "sy", "elem": [7]}},
        {"map": {"family": "ip", "name": "service-backends", "table": "sy", "elem": [[{"concat": ["10.96.0.10", "tcp", 80, 65536]}, {"concat": ["10.244.1.5", 8080]}]]}},
        {"map": {"family": "ip", "name": "affinity", "table": "sy", "elem": [{"elem": {"val": {"concat": ["1.2.3.4", "10.96.0.10", "tcp", 80]}, "timeout": 60}}]}},
        {"chain": {"family": "ip", "table": "sy", "name": "services", "handle": 1}},
        {"rule": {"family": "ip", "table": "sy", "chain": "services", "comment": "sy:0123456789abcdef services", "expr": []}},
        {"rule": {"family": "ip", "table": "sy", "chain": "services", "expr": []}},
        {"set": {"family": "ip", "name": "cluster-ips", "table": "other", "elem": [{"concat": ["10.96.0.99", "tcp", 80]}]}}
    ]}"#;

    #[test]
    fn reads_the_tables_facts_slots_and_chains() {
        let live = read(LISTING.as_bytes(), "sy").unwrap();
        assert!(live.exists && !live.unreadable);
        assert_eq!(live.generation, Some(7));
        let vip = MapKey {
            addr: Some(Ipv4Addr::new(10, 96, 0, 10)),
            protocol: Protocol::Tcp,
            port: 80,
        };
        let facts = &live.table.tuples[&vip];
        assert_eq!(facts.facts, [Fact::ClusterIp].into());
        assert_eq!(facts.affinity, Some(60));
        let allow: Vec<String> = facts.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["172.18.0.0/24", "192.0.2.1/32"]);
        assert_eq!(facts.slots[&0x1_0000].to_string(), "10.244.1.5 . 8080");
        let node_port = MapKey {
            addr: None,
            protocol: Protocol::Tcp,
            port: 30080,
        };
        assert_eq!(live.table.tuples[&node_port].facts, [Fact::External].into());
        assert_eq!(live.table.tuples.len(), 2, "other tables are not ours");
        assert_eq!(live.table.affinity_timeouts, [60].into());
        assert_eq!(live.table.hairpin, [Ipv4Addr::new(10, 244, 1, 5)].into());
        assert_eq!(
            live.chains["services"],
            (2, Some("0123456789abcdef".to_owned()))
        );
    }

    #[test]
    fn an_element_it_cannot_read_marks_the_listing_unreadable() {
        let listing = r#"{"nftables": [
            {"table": {"family": "ip", "name": "sy"}},
            {"set": {"family": "ip", "name": "cluster-ips", "table": "sy", "elem": [{"concat": ["10.96.0.10", "icmp", 0]}]}}
        ]}"#;
        assert!(read(listing.as_bytes(), "sy").unwrap().unreadable);
    }
}
