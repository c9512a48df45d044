//! What the constant layout holds, per Service address tuple.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::nft::endpoints::Backend;
use crate::nft::state::{MapKey, Target};

/// Endpoint counts with a dispatch rule of their own (exact shares).
pub const EXACT_MAX: u32 = 64;
/// Slots of a tuple with more endpoints than [`EXACT_MAX`].
pub const MANY_SLOTS: u32 = 16_384;
/// First slot key of a tuple with more than [`EXACT_MAX`] endpoints: above
/// every exact key (`EXACT_MAX << 16 | EXACT_MAX - 1`).
pub const MANY_BASE: u32 = 1 << 24;
/// Set in the keys of the Local dispatch (this node's endpoints only).
pub const LOCAL_SLOTS: u32 = 1 << 31;

/// Which set a tuple is in: what the packet to it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    /// A ClusterIP with internal policy Cluster.
    ClusterIp,
    /// A ClusterIP with internal policy Local and local endpoints.
    ClusterIpLocal,
    /// An external or LB IP, or a NodePort, with external policy Cluster.
    External,
    /// The same with external policy Local.
    ExternalLocal,
    /// No endpoint at all: TCP reset, else ICMP port unreachable.
    Reject,
    /// Internal policy Local with endpoints, none of them here: dropped.
    Drop,
    /// An LB IP with source ranges.
    Firewalled,
}

impl Fact {
    pub const ALL: [Fact; 7] = [
        Fact::ClusterIp,
        Fact::ClusterIpLocal,
        Fact::External,
        Fact::ExternalLocal,
        Fact::Reject,
        Fact::Drop,
        Fact::Firewalled,
    ];

    /// The set holding this fact's tuples; NodePorts (keyed without an
    /// address) have sets of their own. `None`: no such NodePort set.
    pub fn set_name(self, by_address: bool) -> Option<&'static str> {
        Some(match (self, by_address) {
            (Fact::ClusterIp, true) => "cluster-ips",
            (Fact::ClusterIpLocal, true) => "cluster-ips-local",
            (Fact::External, true) => "external-ips",
            (Fact::ExternalLocal, true) => "external-ips-local",
            (Fact::Reject, true) => "reject-ips",
            (Fact::Drop, true) => "drop-ips",
            (Fact::Firewalled, true) => "firewalled-ips",
            (Fact::External, false) => "node-ports",
            (Fact::ExternalLocal, false) => "node-ports-local",
            (Fact::Reject, false) => "reject-node-ports",
            _ => return None,
        })
    }
}

/// Everything one tuple contributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TupleFacts {
    pub facts: BTreeSet<Fact>,
    /// DNAT slots: key → target, see [`dispatch_slots`].
    pub slots: BTreeMap<u32, Target>,
    /// Allowed sources of a firewalled LB IP.
    pub allow: BTreeSet<Ipv4Net>,
    /// ClientIP affinity timeout (seconds): each client's backend is
    /// remembered for it and reused for its next connections.
    pub affinity: Option<u32>,
}

/// The whole desired table: the facts of every tuple, the first Service
/// (in Service order) owning a tuple two Services want.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub tuples: BTreeMap<MapKey, TupleFacts>,
    /// Endpoint addresses whose hairpin traffic is masqueraded.
    pub hairpin: BTreeSet<Ipv4Addr>,
    /// Tuples wanted by two Services, for logging.
    pub conflicts: Vec<String>,
    /// Every affinity timeout some Service wants: each has its own sets
    /// and record rules (a timeout is a constant of the rule recording it).
    pub affinity_timeouts: BTreeSet<u32>,
}

/// The set of the tuples whose clients are remembered for `timeout`
/// seconds; NodePorts have their own.
pub fn affinity_set(timeout: u32, by_address: bool) -> String {
    match by_address {
        true => format!("affinity-{timeout}"),
        false => format!("affinity-node-ports-{timeout}"),
    }
}

/// The slot keys of `backends`: exact (`n << 16 | i`) up to [`EXACT_MAX`],
/// else [`MANY_SLOTS`] filled in turn; `flavor` is 0 or [`LOCAL_SLOTS`].
pub fn dispatch_slots(backends: &[Backend], flavor: u32) -> Vec<(u32, Backend)> {
    let n = backends.len().min(MANY_SLOTS as usize);
    if n == 0 {
        return Vec::new();
    }
    // n ≤ MANY_SLOTS, so it fits a u32.
    let count = n as u32;
    if count <= EXACT_MAX {
        return (0..count)
            .zip(backends)
            .map(|(i, b)| (flavor | count << 16 | i, *b))
            .collect();
    }
    (0..MANY_SLOTS)
        .map(|i| (flavor | MANY_BASE | i, backends[i as usize % n]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u8) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend {
                ip: Ipv4Addr::new(10, 244, 1, i),
                port: 8080,
            })
            .collect()
    }

    #[test]
    fn exact_slots_name_their_count() {
        let slots = dispatch_slots(&backends(3), 0);
        let keys: Vec<u32> = slots.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [0x3_0000, 0x3_0001, 0x3_0002]);
        let local = dispatch_slots(&backends(1), LOCAL_SLOTS);
        assert_eq!(local[0].0, 0x8001_0000);
        assert!(dispatch_slots(&[], 0).is_empty());
    }

    #[test]
    fn many_endpoints_share_sixteen_thousand_slots_in_turn() {
        let slots = dispatch_slots(&backends(100), 0);
        assert_eq!(slots.len(), MANY_SLOTS as usize);
        assert_eq!(slots[0].0, MANY_BASE);
        let mut per_backend = BTreeMap::new();
        for (_, b) in &slots {
            *per_backend.entry(b.ip).or_insert(0) += 1;
        }
        let counts: BTreeSet<i32> = per_backend.values().copied().collect();
        assert_eq!(
            counts,
            BTreeSet::from([163, 164]),
            "16384 = 84 × 164 + 16 × 163"
        );
    }
}
