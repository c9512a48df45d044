//! The pure address plan: which namespaces exist and which addresses they get.
//!
//! Every host has an IPv4 and an IPv6 address (dual-stack, ULA): the IPv6
//! one spells the IPv4 one's last octet in its last group, so node 1 is
//! 172.18.0.11 and fd00:172:18::11, its pod 1 10.244.1.11 and
//! fd00:10:244:1::11.
//!
//! Kept free of IO so the plan can be unit-tested without root.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{LabError, Result};

/// Most nodes the plan supports: node IPs are 172.18.0.11.. and must stay
/// below the client's 172.18.0.100.
pub const MAX_NODES: usize = 80;
/// Most pods per node: pod IPs are 10.244.i.(10+j) and must stay below .255.
pub const MAX_PODS_PER_NODE: usize = 200;
/// Prefix length of the node network.
pub const NODE_PREFIX_LEN: u8 = 24;
/// Prefix length of the IPv6 node network and of each node's IPv6 pod CIDR.
pub const IPV6_PREFIX_LEN: u8 = 64;
/// Control-plane host address.
pub const CONTROL_PLANE_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
/// Nodes' default gateway. Nothing answers there (the lab has no uplink), but
/// like a real host's default route it makes node-local traffic to service
/// VIPs routable: the route lookup happens before nftables' output DNAT.
pub const NODE_GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);
/// External client address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 100);
/// The IPv6 twins of the addresses above.
pub const CONTROL_PLANE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x172, 0x18, 0, 0, 0, 0, 0x2);
pub const NODE_GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x172, 0x18, 0, 0, 0, 0, 0x1);
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x172, 0x18, 0, 0, 0, 0, 0x100);
/// Name of the bridge inside the bridge namespace.
pub const BRIDGE: &str = "br0";

/// Size of the lab to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabConfig {
    /// Number of node hosts (1..=80).
    pub nodes: usize,
    /// Pods per node (0..=200).
    pub pods_per_node: usize,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            nodes: 2,
            pods_per_node: 2,
        }
    }
}

/// One simulated machine (control plane, node, pod or client) = one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Logical name: `control-plane`, `client`, `node-<i>` or `pod-<i>-<j>`.
    pub name: String,
    /// Network namespace the host lives in (use with `ip netns exec`).
    pub ns: String,
    /// Address on the host's `eth0`.
    pub ip: Ipv4Addr,
    /// IPv6 address on the host's `eth0`.
    pub ip6: Ipv6Addr,
    /// Pod CIDR owned by the host (nodes only).
    pub pod_cidr: Option<Ipv4Net>,
    /// IPv6 pod CIDR owned by the host (nodes only).
    pub pod_cidr6: Option<Ipv6Net>,
    /// Index of the node this host is (nodes) or runs on (pods).
    pub node: Option<usize>,
    /// Name of this host's veth peer on the other side (bridge port or node `vp<j>`).
    pub peer_if: String,
}

/// The complete plan of one lab instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    pub bridge_ns: String,
    pub control_plane: Host,
    pub client: Host,
    pub nodes: Vec<Host>,
    /// `pods[i - 1][j - 1]` is pod j of node i.
    pub pods: Vec<Vec<Host>>,
}

/// Address of node `i` (1-based) on the node network.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 18, 0, octet(10 + i))
}

/// Pod CIDR owned by node `i`.
pub fn pod_cidr(i: usize) -> Ipv4Net {
    // A /24 is always a valid prefix length, so this never falls back.
    Ipv4Net::new(Ipv4Addr::new(10, 244, octet(i), 0), 24).unwrap_or_default()
}

/// Node-side gateway address that every pod of node `i` routes through.
pub fn pod_gateway(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, octet(i), 1)
}

/// Address of pod `j` on node `i`.
pub fn pod_ip(i: usize, j: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, octet(i), octet(10 + j))
}

/// IPv6 address of node `i` (1-based) on the node network.
pub fn node_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x172, 0x18, 0, 0, 0, 0, spelled(10 + i))
}

/// IPv6 pod CIDR owned by node `i`.
pub fn pod_cidr6(i: usize) -> Ipv6Net {
    let network = Ipv6Addr::new(0xfd00, 0x10, 0x244, spelled(i), 0, 0, 0, 0);
    // A /64 is always a valid prefix length, so this never falls back.
    Ipv6Net::new(network, IPV6_PREFIX_LEN).unwrap_or_default()
}

/// Node-side IPv6 gateway of node `i`'s pods.
pub fn pod_gateway6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x10, 0x244, spelled(i), 0, 0, 0, 1)
}

/// IPv6 address of pod `j` on node `i`.
pub fn pod_ip6(i: usize, j: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x10, 0x244, spelled(i), 0, 0, 0, spelled(10 + j))
}

/// `n`'s decimal digits read as a hex group (11 → 0x11), so an IPv6 address
/// reads like its IPv4 twin. `n` is at most 280 here.
fn spelled(n: usize) -> u16 {
    u16::from_str_radix(&n.to_string(), 16).unwrap_or(u16::MAX)
}

/// Narrows an index that [`Topology::plan`] already bounded to an address octet.
fn octet(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// Checks that a prefix keeps namespace and file names short and shell-safe.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let ok_chars = prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if prefix.is_empty() || prefix.len() > 16 || !ok_chars {
        return Err(LabError::Config(format!(
            "prefix `{prefix}` must be 1-16 characters of [a-z0-9]"
        )));
    }
    Ok(())
}

fn validate(cfg: &LabConfig) -> Result<()> {
    if cfg.nodes == 0 || cfg.nodes > MAX_NODES {
        return Err(LabError::Config(format!(
            "nodes must be 1..={MAX_NODES}, got {}",
            cfg.nodes
        )));
    }
    if cfg.pods_per_node > MAX_PODS_PER_NODE {
        return Err(LabError::Config(format!(
            "pods_per_node must be 0..={MAX_PODS_PER_NODE}, got {}",
            cfg.pods_per_node
        )));
    }
    Ok(())
}

impl Topology {
    /// Computes the plan for `cfg` with every namespace named `<prefix>-…`.
    pub fn plan(cfg: &LabConfig, prefix: &str) -> Result<Self> {
        validate(cfg)?;
        validate_prefix(prefix)?;
        let ns = |suffix: &str| format!("{prefix}-{suffix}");
        let nodes = (1..=cfg.nodes)
            .map(|i| Host {
                name: format!("node-{i}"),
                ns: ns(&format!("n{i}")),
                ip: node_ip(i),
                ip6: node_ip6(i),
                pod_cidr: Some(pod_cidr(i)),
                pod_cidr6: Some(pod_cidr6(i)),
                node: Some(i),
                peer_if: format!("n{i}"),
            })
            .collect();
        let pods = (1..=cfg.nodes)
            .map(|i| {
                (1..=cfg.pods_per_node)
                    .map(|j| Host {
                        name: format!("pod-{i}-{j}"),
                        ns: ns(&format!("n{i}-p{j}")),
                        ip: pod_ip(i, j),
                        ip6: pod_ip6(i, j),
                        pod_cidr: None,
                        pod_cidr6: None,
                        node: Some(i),
                        peer_if: format!("vp{j}"),
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            prefix: prefix.to_string(),
            bridge_ns: ns("br"),
            control_plane: plain_host(
                "control-plane",
                ns("cp"),
                (CONTROL_PLANE_IP, CONTROL_PLANE_IP6),
                "cp",
            ),
            client: plain_host("client", ns("client"), (CLIENT_IP, CLIENT_IP6), "cl"),
            nodes,
            pods,
        })
    }

    /// Every namespace of the lab, bridge first (its creation doubles as the
    /// lock on the prefix), then hosts in the order they get wired.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = vec![self.bridge_ns.clone()];
        all.extend(self.bridge_hosts().map(|h| h.ns.clone()));
        all.extend(self.pods.iter().flatten().map(|h| h.ns.clone()));
        all
    }

    /// Hosts plugged into the bridge: control plane, nodes, client.
    pub fn bridge_hosts(&self) -> impl Iterator<Item = &Host> {
        std::iter::once(&self.control_plane)
            .chain(self.nodes.iter())
            .chain(std::iter::once(&self.client))
    }
}

fn plain_host(name: &str, ns: String, (ip, ip6): (Ipv4Addr, Ipv6Addr), peer_if: &str) -> Host {
    Host {
        name: name.to_string(),
        ns,
        ip,
        ip6,
        pod_cidr: None,
        pod_cidr6: None,
        node: None,
        peer_if: peer_if.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_matches_address_plan() -> Result<()> {
        let t = Topology::plan(&LabConfig::default(), "sy1")?;
        assert_eq!(t.nodes[1].ip, Ipv4Addr::new(172, 18, 0, 12));
        assert_eq!(t.nodes[1].ns, "sy1-n2");
        assert_eq!(
            t.nodes[1].pod_cidr.map(|c| c.to_string()).as_deref(),
            Some("10.244.2.0/24")
        );
        assert_eq!(t.pods[1][0].ip, Ipv4Addr::new(10, 244, 2, 11));
        assert_eq!(t.nodes[1].ip6.to_string(), "fd00:172:18::12");
        assert_eq!(
            t.nodes[1].pod_cidr6.map(|c| c.to_string()).as_deref(),
            Some("fd00:10:244:2::/64")
        );
        assert_eq!(t.pods[1][0].ip6.to_string(), "fd00:10:244:2::11");
        assert_eq!(t.client.ip6.to_string(), "fd00:172:18::100");
        assert_eq!(t.pods[1][0].ns, "sy1-n2-p1");
        assert_eq!(t.pods[1][0].node, Some(2));
        assert_eq!(t.namespaces().len(), 1 + 1 + 2 + 1 + 4);
        assert_eq!(t.namespaces()[0], "sy1-br");
        Ok(())
    }

    #[test]
    fn rejects_out_of_plan_sizes_and_bad_prefixes() {
        let too_many = LabConfig {
            nodes: 81,
            pods_per_node: 1,
        };
        assert!(Topology::plan(&too_many, "sy1").is_err());
        let none = LabConfig {
            nodes: 0,
            pods_per_node: 1,
        };
        assert!(Topology::plan(&none, "sy1").is_err());
        assert!(Topology::plan(&LabConfig::default(), "").is_err());
        assert!(Topology::plan(&LabConfig::default(), "a/b").is_err());
    }

    #[test]
    fn largest_plan_stays_inside_ranges() -> Result<()> {
        let cfg = LabConfig {
            nodes: MAX_NODES,
            pods_per_node: MAX_PODS_PER_NODE,
        };
        let t = Topology::plan(&cfg, "sy1")?;
        assert!(t.nodes.iter().all(|n| n.ip < CLIENT_IP));
        assert_eq!(
            t.pods[MAX_NODES - 1][MAX_PODS_PER_NODE - 1].ip,
            Ipv4Addr::new(10, 244, 80, 210)
        );
        assert_eq!(
            t.pods[MAX_NODES - 1][MAX_PODS_PER_NODE - 1].ip6.to_string(),
            "fd00:10:244:80::210"
        );
        Ok(())
    }
}
