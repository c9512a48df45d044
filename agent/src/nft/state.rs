//! The vocabulary shared by the compiler, the differ and the live-table reader:
//! a desired [`Ruleset`] (full rule text) and an [`AppliedState`] (what is in
//! the kernel, reduced to what the differ compares: chain fingerprints, map
//! elements, set names).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use super::names;
use crate::model::Protocol;

/// Name of the set holding the drift-detection generation (see `DataPath`).
pub const CANARY_SET: &str = "canary";
/// Chain every "no endpoints" verdict jumps to: reset / port unreachable.
pub const REJECT_CHAIN: &str = "reject-chain";
/// Chain that sets [`MASQ_MARK`]; the postrouting hook masquerades marked packets.
pub const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
/// The packet-mark bit meaning "masquerade me" (kube-proxy's value).
pub const MASQ_MARK: u32 = 0x4000;

/// The four verdict maps, declared once with the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapName {
    /// `address . protocol . port` of ClusterIPs, external and LB IPs.
    ServiceIps,
    /// `protocol . port` of NodePorts (matched on local destinations).
    ServiceNodePorts,
    /// Addresses of services without usable endpoints: reject or drop.
    NoEndpointServices,
    /// NodePorts of services without usable endpoints: reject or drop.
    NoEndpointNodePorts,
}

impl MapName {
    pub const ALL: [MapName; 4] = [
        MapName::ServiceIps,
        MapName::ServiceNodePorts,
        MapName::NoEndpointServices,
        MapName::NoEndpointNodePorts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MapName::ServiceIps => "service-ips",
            MapName::ServiceNodePorts => "service-nodeports",
            MapName::NoEndpointServices => "no-endpoint-services",
            MapName::NoEndpointNodePorts => "no-endpoint-nodeports",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether keys start with an address (`ip . proto . port`) or not.
    pub fn keyed_by_address(self) -> bool {
        matches!(self, MapName::ServiceIps | MapName::NoEndpointServices)
    }

    /// The `type` clause of the map declaration.
    pub fn type_decl(self) -> &'static str {
        if self.keyed_by_address() {
            "ipv4_addr . inet_proto . inet_service : verdict"
        } else {
            "inet_proto . inet_service : verdict"
        }
    }
}

/// A map key: `addr . proto . port`, or `proto . port` for NodePort maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapKey {
    pub addr: Option<Ipv4Addr>,
    pub protocol: Protocol,
    pub port: u16,
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(addr) = self.addr {
            write!(f, "{addr} . ")?;
        }
        write!(f, "{} . {}", self.protocol, self.port)
    }
}

/// What a map element does with a matching packet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Goto(String),
    Drop,
}

impl Verdict {
    pub fn reject() -> Self {
        Verdict::Goto(REJECT_CHAIN.to_owned())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Goto(chain) => write!(f, "goto {chain}"),
            Verdict::Drop => f.write_str("drop"),
        }
    }
}

/// Hook of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseHook {
    pub kind: &'static str,
    pub hook: &'static str,
    pub priority: i32,
}

/// A desired chain: its body and, for base chains, its hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    pub base: Option<BaseHook>,
    /// Shown after the fingerprint in the first rule's comment.
    pub description: String,
    /// Rule bodies without the fingerprint comment. Never empty.
    pub rules: Vec<String>,
}

impl ChainSpec {
    pub fn new(description: impl Into<String>, rules: Vec<String>) -> Self {
        Self {
            base: None,
            description: description.into(),
            rules,
        }
    }

    pub fn fingerprint(&self) -> String {
        names::fingerprint(&self.rules)
    }

    /// Rule texts as written to nft, the first one carrying the fingerprint.
    pub fn rendered_rules(&self) -> Vec<String> {
        let comment = names::fingerprint_comment(&self.fingerprint(), &self.description);
        self.rules
            .iter()
            .enumerate()
            .map(|(i, rule)| match i {
                0 => format!("{rule} comment \"{comment}\""),
                _ => rule.clone(),
            })
            .collect()
    }

    pub fn digest(&self) -> ChainDigest {
        ChainDigest {
            fingerprint: Some(self.fingerprint()),
            rules: self.rules.len(),
        }
    }
}

/// The desired content of the table, compiled from a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<String, ChainSpec>,
    pub maps: BTreeMap<MapName, BTreeMap<MapKey, Verdict>>,
    /// Session-affinity sets: name → timeout in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
    /// Keys claimed by two services (first one wins), for logging.
    pub conflicts: Vec<String>,
}

impl Ruleset {
    /// Adds a map element unless another service already claimed the key.
    pub fn insert_element(&mut self, map: MapName, key: MapKey, verdict: Verdict, owner: &str) {
        let elements = self.maps.entry(map).or_default();
        if elements.contains_key(&key) {
            self.conflicts
                .push(format!("{owner}: {key} in {} already taken", map.as_str()));
            return;
        }
        elements.insert(key, verdict);
    }
}

/// What the differ needs to know about a live chain: enough to tell whether
/// its body is the one we wrote, without comparing rule expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainDigest {
    /// From the first rule's comment; `None` when missing or not ours.
    pub fingerprint: Option<String>,
    pub rules: usize,
}

/// Elements of one live map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedMap {
    pub elements: BTreeMap<MapKey, Verdict>,
    /// Some element could not be read back: the map must be flushed and refilled.
    pub unreadable: bool,
}

/// The table as it is in the kernel (read back, or recorded after an apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedState {
    pub table_exists: bool,
    pub chains: BTreeMap<String, ChainDigest>,
    /// Every map by name, ours or not (foreign ones get deleted).
    pub maps: BTreeMap<String, AppliedMap>,
    /// Every plain set by name, including [`CANARY_SET`].
    pub sets: BTreeSet<String>,
    /// The generation held by [`CANARY_SET`].
    pub generation: Option<u32>,
}

impl AppliedState {
    /// The state right after `desired` was applied with `generation`.
    pub fn from_ruleset(desired: &Ruleset, generation: u32) -> Self {
        let chains = desired
            .chains
            .iter()
            .map(|(name, spec)| (name.clone(), spec.digest()))
            .collect();
        let maps = MapName::ALL
            .into_iter()
            .map(|m| {
                let elements = desired.maps.get(&m).cloned().unwrap_or_default();
                let map = AppliedMap {
                    elements,
                    unreadable: false,
                };
                (m.as_str().to_owned(), map)
            })
            .collect();
        let mut sets: BTreeSet<String> = desired.affinity_sets.keys().cloned().collect();
        sets.insert(CANARY_SET.to_owned());
        Self {
            table_exists: true,
            chains,
            maps,
            sets,
            generation: Some(generation),
        }
    }
}
