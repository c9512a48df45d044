//! Reads the agent's own table back from `nft -j list table` output.
//!
//! Parsed as raw JSON (`serde_json::Value`): the typed `nftables` crate cannot
//! read a table that holds a verdict map. Only what the differ compares is
//! extracted — chain fingerprints and rule counts, map elements, set names and
//! the canary generation — so rule expressions never need a full model. The
//! listing is read piece by piece ([`listing`]), never held whole.

use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use super::error::NftError;
use super::listing::{self, Reader};
use super::names;
use super::state::{
    backends_map_protocol, AppliedMap, AppliedState, BackendRange, ChainDigest, MapKey, MapName,
    Target, Verdict, CANARY_SET, HAIRPIN_SET,
};
use crate::model::Protocol;

/// Parses a full listing of `table` into the state the differ diffs against.
pub fn parse_table(json: &str, table: &str) -> Result<AppliedState, NftError> {
    collect_table(serde_json::Deserializer::from_str(json), table)
}

/// [`parse_table`] for a listing still being written, e.g. nft's stdout.
pub fn read_table(listing: impl std::io::Read, table: &str) -> Result<AppliedState, NftError> {
    collect_table(serde_json::Deserializer::from_reader(listing), table)
}

fn collect_table<'de, R: serde_json::de::Read<'de>>(
    de: serde_json::Deserializer<R>,
    table: &str,
) -> Result<AppliedState, NftError> {
    let mut reader = TableReader {
        table,
        state: AppliedState::default(),
        map: AppliedMap::default(),
    };
    listing::read(de, &mut reader)?;
    Ok(reader.state)
}

/// Parses `nft -j list set ip <table> canary` into the generation it holds.
pub fn parse_canary(json: &str) -> Result<Option<u32>, NftError> {
    let mut reader = CanaryReader(None);
    listing::read(serde_json::Deserializer::from_str(json), &mut reader)?;
    Ok(reader.0)
}

struct CanaryReader(Option<u32>);

impl Reader for CanaryReader {
    fn element(&mut self, kind: &str, head: &Map<String, Value>, element: Value) {
        if self.0.is_none() && kind == "set" && name(head) == CANARY_SET {
            self.0 = generation(&element);
        }
    }

    fn object(&mut self, _kind: &str, _obj: Map<String, Value>) {}
}

/// Builds the [`AppliedState`] of one table from its listing.
struct TableReader<'t> {
    table: &'t str,
    state: AppliedState,
    /// The map whose elements are being read.
    map: AppliedMap,
}

impl Reader for TableReader<'_> {
    fn element(&mut self, kind: &str, head: &Map<String, Value>, element: Value) {
        if !self.ours(head) {
            return;
        }
        let set_name = name(head);
        match kind {
            "set" if set_name == CANARY_SET && self.state.generation.is_none() => {
                self.state.generation = generation(&element)
            }
            "set" if set_name == HAIRPIN_SET => match parse_pair(&element) {
                Some(ip) => {
                    self.state.hairpin.insert(ip);
                }
                None => self.state.hairpin_unreadable = true,
            },
            "map" => self.map_element(set_name, &element),
            _ => {}
        }
    }

    fn object(&mut self, kind: &str, obj: Map<String, Value>) {
        let map = std::mem::take(&mut self.map);
        if !self.ours(&obj) && kind != "table" {
            return;
        }
        match kind {
            "table" => {
                self.state.table_exists |=
                    obj.get("name").and_then(Value::as_str) == Some(self.table)
            }
            "chain" => read_chain(&mut self.state, &obj),
            "rule" => read_rule(&mut self.state, &obj),
            "set" => {
                self.state.sets.insert(name(&obj).to_owned());
            }
            "map" => {
                self.state.maps.insert(name(&obj).to_owned(), map);
            }
            _ => {} // counters, flowtables…: not ours to judge
        }
    }
}

impl TableReader<'_> {
    fn ours(&self, obj: &Map<String, Value>) -> bool {
        obj.get("table").and_then(Value::as_str) == Some(self.table)
    }

    /// Backend maps' elements go to `state.backends`; verdict maps' to the
    /// map; elements of a map we do not know are not ours to judge.
    fn map_element(&mut self, map_name: &str, element: &Value) {
        if let Some(protocol) = backends_map_protocol(map_name) {
            match parse_backend(element, protocol) {
                Some((first, range)) => {
                    self.state.backends.insert(first, range);
                }
                None => self.map.unreadable = true,
            }
        } else if let Some(kind) = MapName::from_name(map_name) {
            match parse_element(kind, element) {
                Some((key, verdict)) => {
                    self.map.elements.insert(key, verdict);
                }
                None => self.map.unreadable = true,
            }
        }
    }
}

fn name(obj: &Map<String, Value>) -> &str {
    obj.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn read_chain(state: &mut AppliedState, obj: &Map<String, Value>) {
    state
        .chains
        .entry(name(obj).to_owned())
        .or_insert(ChainDigest {
            fingerprint: None,
            rules: 0,
        });
}

/// Counts the rule; the first rule of a chain carries the fingerprint.
fn read_rule(state: &mut AppliedState, obj: &Map<String, Value>) {
    let Some(chain) = obj.get("chain").and_then(Value::as_str) else {
        return;
    };
    let digest = state.chains.entry(chain.to_owned()).or_insert(ChainDigest {
        fingerprint: None,
        rules: 0,
    });
    if digest.rules == 0 {
        digest.fingerprint = obj
            .get("comment")
            .and_then(Value::as_str)
            .and_then(names::parse_fingerprint)
            .map(str::to_owned);
    }
    digest.rules += 1;
}

/// The canary's element: the generation number.
fn generation(element: &Value) -> Option<u32> {
    element.as_u64().and_then(|g| u32::try_from(g).ok())
}

/// `{"concat": ["10.244.1.5", "10.244.1.5"]}` (both halves are equal).
fn parse_pair(element: &Value) -> Option<Ipv4Addr> {
    let parts = element.get("concat")?.as_array()?;
    let [a, b] = parts.as_slice() else {
        return None;
    };
    let ip: Ipv4Addr = a.as_str()?.parse().ok()?;
    (b.as_str()? == a.as_str()?).then_some(ip)
}

/// `[{"range": [80, 99]}, {"concat": ["10.244.1.5", 8080]}]`, or a bare
/// key for a range of one.
fn parse_backend(element: &Value, protocol: Protocol) -> Option<(u32, BackendRange)> {
    let pair = element.as_array()?;
    let key = pair.first()?;
    let number = |v: &Value| v.as_u64().and_then(|k| u32::try_from(k).ok());
    let (first, last) = match key.get("range").and_then(Value::as_array) {
        Some(bounds) => match bounds.as_slice() {
            [first, last] => (number(first)?, number(last)?),
            _ => return None,
        },
        None => (number(key)?, number(key)?),
    };
    let parts = pair.get(1)?.get("concat")?.as_array()?;
    let [ip, port] = parts.as_slice() else {
        return None;
    };
    let target = Target {
        ip: ip.as_str()?.parse().ok()?,
        port: u16::try_from(port.as_u64()?).ok()?,
        protocol,
    };
    (first <= last).then_some((first, BackendRange { last, target }))
}

/// `[{"concat": ["10.0.0.1", "tcp", 80]}, {"goto": {"target": "svc-…"}}]`.
fn parse_element(map: MapName, element: &Value) -> Option<(MapKey, Verdict)> {
    let pair = element.as_array()?;
    let (key, verdict) = (pair.first()?, pair.get(1)?);
    // Elements with options are wrapped: {"elem": {"val": key, ...}}.
    let key = key.get("elem").and_then(|e| e.get("val")).unwrap_or(key);
    let parts = key.get("concat")?.as_array()?;
    let key = match (map.keyed_by_address(), parts.as_slice()) {
        (true, [addr, proto, port]) => MapKey {
            addr: Some(addr.as_str()?.parse::<Ipv4Addr>().ok()?),
            protocol: protocol(proto)?,
            port: u16::try_from(port.as_u64()?).ok()?,
        },
        (false, [proto, port]) => MapKey {
            addr: None,
            protocol: protocol(proto)?,
            port: u16::try_from(port.as_u64()?).ok()?,
        },
        _ => return None,
    };
    Some((key, parse_verdict(verdict)?))
}

fn protocol(v: &Value) -> Option<Protocol> {
    match v {
        Value::String(s) => Protocol::from_nft(s),
        Value::Number(n) => Protocol::from_nft(&n.to_string()),
        _ => None,
    }
}

fn parse_verdict(v: &Value) -> Option<Verdict> {
    if v.get("drop").is_some() {
        return Some(Verdict::Drop);
    }
    let target = v.get("goto")?.get("target")?.as_str()?;
    Some(Verdict::Goto(target.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Trimmed from real `nft -j list table ip sw` output (nft 1.0.6).
    const LISTING: &str = r#"{"nftables": [
      {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
      {"table": {"family": "ip", "name": "sw", "handle": 1}},
      {"set": {"family": "ip", "name": "canary", "table": "sw", "type": "mark", "handle": 1, "elem": [7]}},
      {"map": {"family": "ip", "name": "service-ips", "table": "sw", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 2, "map": "verdict",
               "elem": [[{"concat": ["10.96.0.10", "tcp", 80]}, {"goto": {"target": "svc-a"}}]]}},
      {"map": {"family": "ip", "name": "no-endpoint-nodeports", "table": "sw", "type": ["inet_proto", "inet_service"], "handle": 4, "map": "verdict",
               "elem": [[{"concat": ["udp", 30053]}, {"drop": null}], [{"concat": ["tcp", 30080]}, {"goto": {"target": "reject-chain"}}]]}},
      {"map": {"family": "ip", "name": "service-nodeports", "table": "sw", "type": ["inet_proto", "inet_service"], "handle": 5, "map": "verdict",
               "elem": [[{"concat": ["tcp", {"range": [1, 2]}]}, {"accept": null}]]}},
      {"set": {"family": "ip", "name": "aff-1", "table": "sw", "type": "ipv4_addr", "handle": 14, "flags": ["timeout"], "timeout": 10800}},
      {"chain": {"family": "ip", "table": "sw", "name": "nat-output", "handle": 6, "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}},
      {"chain": {"family": "ip", "table": "sw", "name": "empty", "handle": 7}},
      {"rule": {"family": "ip", "table": "sw", "chain": "nat-output", "handle": 15, "comment": "sy:00aa nat-output", "expr": [{"jump": {"target": "services"}}]}},
      {"rule": {"family": "ip", "table": "sw", "chain": "nat-output", "handle": 16, "expr": [{"accept": null}]}}
    ]}"#;

    #[test]
    fn reads_chains_maps_sets_and_generation() {
        let s = parse_table(LISTING, "sw").unwrap();
        assert!(s.table_exists);
        assert_eq!(s.generation, Some(7));
        assert_eq!(s.sets.iter().collect::<Vec<_>>(), ["aff-1", "canary"]);
        let out = &s.chains["nat-output"];
        assert_eq!((out.fingerprint.as_deref(), out.rules), (Some("00aa"), 2));
        assert_eq!(
            s.chains["empty"],
            ChainDigest {
                fingerprint: None,
                rules: 0
            }
        );
        let ips = &s.maps["service-ips"];
        let key = MapKey {
            addr: Some(Ipv4Addr::new(10, 96, 0, 10)),
            protocol: Protocol::Tcp,
            port: 80,
        };
        assert_eq!(ips.elements[&key], Verdict::Goto("svc-a".into()));
        let nodeports = &s.maps["no-endpoint-nodeports"];
        assert_eq!(nodeports.elements.len(), 2);
        assert!(!nodeports.unreadable);
        assert!(
            s.maps["service-nodeports"].unreadable,
            "foreign element shape forces a flush"
        );
    }

    #[test]
    fn reads_backend_maps_and_the_hairpin_set() {
        let json = r#"{"nftables": [
          {"table": {"family": "ip", "name": "sw", "handle": 1}},
          {"map": {"family": "ip", "name": "backend-ranges-tcp-05", "table": "sw", "type": "integer", "map": "ipv4_addr . inet_service",
                   "flags": ["interval"],
                   "elem": [[80, {"concat": ["10.244.1.5", 8080]}], [{"range": [81, 99]}, {"concat": ["10.244.1.6", 8080]}]]}},
          {"map": {"family": "ip", "name": "backend-ranges-udp-05", "table": "sw", "type": "integer", "map": "ipv4_addr . inet_service",
                   "flags": ["interval"], "elem": [[{"range": [9, 8]}, {"concat": ["10.244.1.6", 53]}]]}},
          {"set": {"family": "ip", "name": "hairpin", "table": "sw", "type": ["ipv4_addr", "ipv4_addr"],
                   "elem": [{"concat": ["10.244.1.5", "10.244.1.5"]}]}}
        ]}"#;
        let s = parse_table(json, "sw").unwrap();
        assert_eq!(s.backends.len(), 2);
        let target = Target {
            ip: Ipv4Addr::new(10, 244, 1, 6),
            port: 8080,
            protocol: Protocol::Tcp,
        };
        assert_eq!(s.backends[&81], BackendRange { last: 99, target });
        assert_eq!(s.backends[&80].last, 80, "a bare key is a range of one");
        let tcp = "backend-ranges-tcp-05";
        assert!(s.maps.contains_key(tcp) && !s.maps[tcp].unreadable);
        assert!(
            s.maps["backend-ranges-udp-05"].unreadable,
            "a reversed range forces a flush"
        );
        assert_eq!(
            s.hairpin.iter().collect::<Vec<_>>(),
            [&Ipv4Addr::new(10, 244, 1, 5)]
        );
        assert!(s.sets.contains("hairpin"));
    }

    #[test]
    fn canary_and_errors() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"set": {"name": "canary", "table": "sw", "elem": [42]}}]}"#;
        assert_eq!(parse_canary(json).unwrap(), Some(42));
        assert!(matches!(
            parse_table("{}", "sw"),
            Err(NftError::Malformed(_))
        ));
        assert!(matches!(parse_table("nope", "sw"), Err(NftError::Json(_))));
    }
}
