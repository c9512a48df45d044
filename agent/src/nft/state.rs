//! The vocabulary shared by the compiler, the differ and the live-table reader:
//! a desired [`Ruleset`] (full rule text) and an [`AppliedState`] (what is in
//! the kernel, reduced to what the differ compares: chain fingerprints, map
//! elements, set names).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::LazyLock;

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
/// `endpoint . endpoint` pairs: traffic an endpoint sends to a Service
/// that lands back on itself (hairpin) must be masqueraded.
pub const HAIRPIN_SET: &str = "hairpin";
/// DNAT targets live in this many named maps per protocol
/// (`backend-ranges-tcp-00`…), keyed by `numgen` value ranges. One map
/// referenced by every Service chain would make the kernel check each
/// element against each referencing rule (quadratic at 10,000 Services);
/// one map per Service would make every nft run list thousands of sets.
/// Shards keep both small.
pub const BACKEND_SHARDS: u32 = 64;
/// Low key bits index a chain's range: up to 16,384 endpoints per chain.
pub const ENDPOINT_BITS: u32 = 14;
/// Keys in one chain's range: its rule draws `numgen random mod CHAIN_KEYS`
/// whatever the endpoint count, and the endpoints split the range.
pub const CHAIN_KEYS: u32 = 1 << ENDPOINT_BITS;
/// Chains per shard (the key's middle bits): 262,144 chains per node.
pub const SLOTS_PER_SHARD: u32 = 1 << 12;

/// Protocols with backend maps: nft ties a map's port type to one protocol.
pub const BACKEND_PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

/// Backend maps are named `backend-ranges-<protocol>-<shard>`. Agents
/// before ranges had `backends-…` maps with one key per endpoint: a
/// different name makes them foreign, so the first sync after an upgrade
/// deletes them once their chains are rewritten.
const BACKENDS_PREFIX: &str = "backend-ranges-";

/// Name of the `protocol` backend map holding `key`. Looked up for every
/// element a change writes, so the names are formatted once.
pub fn backends_map(protocol: Protocol, key: u32) -> String {
    static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
        let mut names = vec![String::new(); BACKEND_PROTOCOLS.len() * BACKEND_SHARDS as usize];
        for p in BACKEND_PROTOCOLS {
            for shard in 0..BACKEND_SHARDS {
                names[map_index(p, shard)] = format!("{BACKENDS_PREFIX}{p}-{shard:02}");
            }
        }
        names
    });
    // A u32 shifted right by 26 is below 64 = BACKEND_SHARDS: always in range.
    NAMES[map_index(protocol, key >> (ENDPOINT_BITS + 12))].clone()
}

fn map_index(protocol: Protocol, shard: u32) -> usize {
    let protocol = match protocol {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
    };
    protocol * BACKEND_SHARDS as usize + shard as usize
}

/// The protocol of one of our backend maps, by name.
pub fn backends_map_protocol(name: &str) -> Option<Protocol> {
    let rest = name.strip_prefix(BACKENDS_PREFIX)?;
    let (proto, shard) = rest.split_once('-')?;
    let shard: u32 = shard.parse().ok()?;
    let protocol = BACKEND_PROTOCOLS
        .into_iter()
        .find(|p| p.as_str() == proto)?;
    (shard < BACKEND_SHARDS && name == backends_map(protocol, shard << (ENDPOINT_BITS + 12)))
        .then_some(protocol)
}

/// Whether a map of our table is one of the backend maps.
pub fn is_backends_map(name: &str) -> bool {
    backends_map_protocol(name).is_some()
}

/// Every backend map, for declaring them with the table.
pub fn all_backend_maps() -> impl Iterator<Item = (Protocol, String)> {
    BACKEND_PROTOCOLS.into_iter().flat_map(|p| {
        (0..BACKEND_SHARDS).map(move |shard| (p, backends_map(p, shard << (ENDPOINT_BITS + 12))))
    })
}

/// One DNAT target: `address . port`, in the map of its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} . {}", self.ip, self.port)
    }
}

/// A backend-map element: keys `first..=last` of a chain's range (the
/// element's key, held by the map) DNAT to `target`. Ranges instead of one
/// key per endpoint keep the chain's rule the same when endpoints come and
/// go, so endpoint churn changes elements only: a commit that replaces a
/// NAT rule makes the kernel re-validate the whole table, one that changes
/// elements of a data map does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendRange {
    pub last: u32,
    pub target: Target,
}

/// Assigns each dispatching chain its own key range in the backend maps.
/// A chain prefers the slot its name hashes to, so the same table compiles
/// to the same keys after a restart (only the rare collision moves).
#[derive(Debug, Clone, Default)]
pub struct Slots {
    by_chain: HashMap<String, u32>,
    taken: HashSet<u32>,
}

impl Slots {
    /// The first key of `chain`'s range.
    pub fn base(&mut self, chain: &str) -> u32 {
        if let Some(slot) = self.by_chain.get(chain) {
            return slot << ENDPOINT_BITS;
        }
        let total = BACKEND_SHARDS * SLOTS_PER_SHARD;
        let mut slot = (fnv1a(chain.as_bytes()) % u64::from(total)) as u32;
        while self.taken.contains(&slot) {
            slot = (slot + 1) % total;
        }
        self.taken.insert(slot);
        self.by_chain.insert(chain.to_owned(), slot);
        slot << ENDPOINT_BITS
    }

    /// Frees `chain`'s range (the chain is gone or being recompiled).
    pub fn release(&mut self, chain: &str) {
        if let Some(slot) = self.by_chain.remove(chain) {
            self.taken.remove(&slot);
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The five verdict maps, declared once with the table.
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
    /// `address . protocol . port` of LB IPs with source ranges: checked
    /// before DNAT, sources outside the ranges dropped.
    FirewallIps,
}

impl MapName {
    pub const ALL: [MapName; 5] = [
        MapName::ServiceIps,
        MapName::ServiceNodePorts,
        MapName::NoEndpointServices,
        MapName::NoEndpointNodePorts,
        MapName::FirewallIps,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MapName::ServiceIps => "service-ips",
            MapName::ServiceNodePorts => "service-nodeports",
            MapName::NoEndpointServices => "no-endpoint-services",
            MapName::NoEndpointNodePorts => "no-endpoint-nodeports",
            MapName::FirewallIps => "firewall-ips",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether keys start with an address (`ip . proto . port`) or not.
    pub fn keyed_by_address(self) -> bool {
        matches!(
            self,
            MapName::ServiceIps | MapName::NoEndpointServices | MapName::FirewallIps
        )
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
    /// Elements of the backend maps: first key → range and DNAT target.
    pub backends: BTreeMap<u32, BackendRange>,
    /// Endpoint addresses whose hairpin traffic is masqueraded.
    pub hairpin: BTreeSet<Ipv4Addr>,
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
    /// Elements of the backend maps (which maps exist is in `maps`).
    pub backends: BTreeMap<u32, BackendRange>,
    /// Elements of [`HAIRPIN_SET`] (whether it exists is in `sets`).
    pub hairpin: BTreeSet<Ipv4Addr>,
    /// Some hairpin element could not be read back: flush and refill.
    pub hairpin_unreadable: bool,
}

impl AppliedState {
    /// Brings a recorded state in line with `desired` for the `touched`
    /// parts, after an incremental transaction of just those succeeded.
    pub fn patch(&mut self, desired: &Ruleset, touched: &Touched, generation: u32) {
        for name in &touched.chains {
            match desired.chains.get(name) {
                Some(spec) => self.chains.insert(name.clone(), spec.digest()),
                None => self.chains.remove(name),
            };
        }
        for name in &touched.sets {
            match desired.affinity_sets.contains_key(name) {
                true => self.sets.insert(name.clone()),
                false => self.sets.remove(name),
            };
        }
        for key in &touched.backends {
            match desired.backends.get(key) {
                Some(r) => self.backends.insert(*key, *r),
                None => self.backends.remove(key),
            };
        }
        for ip in &touched.hairpin {
            match desired.hairpin.contains(ip) {
                true => self.hairpin.insert(*ip),
                false => self.hairpin.remove(ip),
            };
        }
        for (map, key) in &touched.elements {
            let have = &mut self
                .maps
                .entry(map.as_str().to_owned())
                .or_default()
                .elements;
            match desired.maps.get(map).and_then(|m| m.get(key)) {
                Some(v) => have.insert(*key, v.clone()),
                None => have.remove(key),
            };
        }
        self.generation = Some(generation);
    }

    /// The state right after `desired` was applied with `generation`.
    pub fn from_ruleset(desired: &Ruleset, generation: u32) -> Self {
        let chains = desired
            .chains
            .iter()
            .map(|(name, spec)| (name.clone(), spec.digest()))
            .collect();
        let mut maps: BTreeMap<String, AppliedMap> = MapName::ALL
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
        for (_, name) in all_backend_maps() {
            maps.insert(name, AppliedMap::default());
        }
        let mut sets: BTreeSet<String> = desired.affinity_sets.keys().cloned().collect();
        sets.insert(CANARY_SET.to_owned());
        sets.insert(HAIRPIN_SET.to_owned());
        Self {
            table_exists: true,
            chains,
            maps,
            sets,
            generation: Some(generation),
            backends: desired.backends.clone(),
            hairpin: desired.hairpin.clone(),
            hairpin_unreadable: false,
        }
    }
}

/// One map element's identity.
pub type ElementId = (MapName, MapKey);

/// What one update changed: only these names and keys need diffing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    pub chains: BTreeSet<String>,
    pub elements: BTreeSet<ElementId>,
    pub sets: BTreeSet<String>,
    pub backends: BTreeSet<u32>,
    pub hairpin: BTreeSet<Ipv4Addr>,
}
