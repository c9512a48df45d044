//! Which endpoints serve a Service port, with kube-proxy's rules: an endpoint
//! serves a port when it has a port of the same name and protocol; `ready`
//! endpoints are used, and only when none is ready do serving-and-terminating
//! ones take over (so connections drain gracefully during a rollout). The
//! `Local` set applies the same fallback to this node's endpoints alone.
//!
//! Under `trafficDistribution` the cluster set keeps, as kube-proxy does,
//! the endpoints hinted for this node when every ready endpoint has a node
//! hint and one is for this node, else those hinted for this node's zone
//! when every ready one has a zone hint and one is for this zone, else all.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::model::{EndpointEntry, Hints, NodeContext, ServiceEntry, ServicePortEntry};

/// One DNAT target of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// Usable backends of one Service port, sorted by address so that the
/// `numgen` index of each backend (and so the rule text) is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortBackends {
    /// Cluster-wide set (policy `Cluster`).
    pub cluster: Vec<Backend>,
    /// This node's set (policy `Local`).
    pub local: Vec<Backend>,
}

impl PortBackends {
    /// Whether `b` can be the source of its own DNATed traffic here
    /// unmarked, so its hairpin traffic must be marked for masquerade.
    /// Other nodes' endpoints reach this node's hooks only from outside
    /// the pod CIDR, which the cluster masquerade rule marks. A loopback
    /// endpoint (the node's own DNS responder on 127.0.0.1, say) never:
    /// marking 127.0.0.1 → 127.0.0.1 would masquerade every loopback
    /// connection of the host.
    pub fn may_hairpin(&self, ctx: &NodeContext, b: &Backend) -> bool {
        if b.ip.is_loopback() {
            return false;
        }
        match ctx.pod_cidr {
            Some(cidr) => cidr.contains(&b.ip) || self.local.binary_search(b).is_ok(),
            None => true,
        }
    }
}

/// Conditions of a candidate after merging duplicates from several slices.
#[derive(Debug, Clone, Default)]
struct Candidate<'a> {
    local: bool,
    ready: bool,
    serving_terminating: bool,
    hints: Option<&'a Hints>,
}

/// Which hinted endpoints the cluster set keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology<'a> {
    Any,
    Node(&'a str),
    Zone(&'a str),
}

impl Topology<'_> {
    fn admits(&self, c: &Candidate<'_>) -> bool {
        let hints = c.hints.map(|h| (&h.nodes, &h.zones));
        match (self, hints) {
            (Topology::Any, _) => true,
            (Topology::Node(n), Some((nodes, _))) => nodes.iter().any(|x| x == n),
            (Topology::Zone(z), Some((_, zones))) => zones.iter().any(|x| x == z),
            (_, None) => false,
        }
    }
}

/// kube-proxy's `topologyModeFromHints`, over the ready endpoints.
fn topology<'a>(
    candidates: &BTreeMap<Backend, Candidate<'_>>,
    ctx: &'a NodeContext,
) -> Topology<'a> {
    let ready: Vec<&Candidate<'_>> = candidates.values().filter(|c| c.ready).collect();
    let node = Topology::Node(&ctx.node_name);
    let all_node_hinted = ready
        .iter()
        .all(|c| c.hints.is_some_and(|h| !h.nodes.is_empty()));
    if !ready.is_empty() && all_node_hinted && ready.iter().any(|c| node.admits(c)) {
        return node;
    }
    let Some(zone) = ctx.zone.as_deref() else {
        return Topology::Any;
    };
    let zone = Topology::Zone(zone);
    let all_zone_hinted = ready
        .iter()
        .all(|c| c.hints.is_some_and(|h| !h.zones.is_empty()));
    if !ready.is_empty() && all_zone_hinted && ready.iter().any(|c| zone.admits(c)) {
        return zone;
    }
    Topology::Any
}

pub fn backends_for(
    svc: &ServiceEntry,
    port: &ServicePortEntry,
    ctx: &NodeContext,
) -> PortBackends {
    let candidates = candidates(svc, port, &ctx.node_name);
    let topology = topology(&candidates, ctx);
    let pick = |local_only: bool| {
        let pool = || {
            candidates.iter().filter(move |(_, c)| match local_only {
                true => c.local,
                false => topology.admits(c),
            })
        };
        let ready: Vec<Backend> = pool().filter(|(_, c)| c.ready).map(|(b, _)| *b).collect();
        if !ready.is_empty() {
            return ready;
        }
        pool()
            .filter(|(_, c)| c.serving_terminating)
            .map(|(b, _)| *b)
            .collect()
    };
    PortBackends {
        cluster: pick(false),
        local: pick(true),
    }
}

/// Endpoints exposing the port, deduplicated by `ip:port` (the same address
/// may appear in two slices while a slice is being rewritten).
fn candidates<'a>(
    svc: &'a ServiceEntry,
    port: &ServicePortEntry,
    node: &str,
) -> BTreeMap<Backend, Candidate<'a>> {
    let mut out: BTreeMap<Backend, Candidate> = BTreeMap::new();
    for ep in &svc.endpoints {
        let Some(target) = target_port(ep, port) else {
            continue;
        };
        let c = out
            .entry(Backend {
                ip: ep.ip,
                port: target,
            })
            .or_default();
        c.local |= ep.node_name.as_deref() == Some(node);
        c.ready |= ep.ready;
        c.serving_terminating |= ep.serving && ep.terminating;
        c.hints = c.hints.or(ep.hints.as_deref());
    }
    out
}

fn target_port(ep: &EndpointEntry, port: &ServicePortEntry) -> Option<u16> {
    ep.ports
        .iter()
        .find(|p| p.name == port.name && p.protocol == port.protocol)
        .map(|p| p.port)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{EndpointPortEntry, Protocol};
    use std::sync::Arc;

    fn ep(last: u8, node: &str, ready: bool, terminating: bool) -> EndpointEntry {
        EndpointEntry {
            hints: None,
            ip: Ipv4Addr::new(10, 0, 0, last),
            node_name: Some(node.into()),
            ready,
            serving: true,
            terminating,
            ports: vec![EndpointPortEntry {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 8080,
            }]
            .into(),
        }
    }

    fn http() -> ServicePortEntry {
        ServicePortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            node_port: None,
        }
    }

    fn node(name: &str, zone: Option<&str>) -> NodeContext {
        NodeContext {
            zone: zone.map(str::to_string),
            node_name: name.into(),
            node_ips: Vec::new(),
            pod_cidr: None,
        }
    }

    fn hinted(mut e: EndpointEntry, zone: &str, node: Option<&str>) -> EndpointEntry {
        e.hints = Some(Arc::new(Hints {
            zones: vec![zone.to_string()],
            nodes: node.into_iter().map(str::to_string).collect(),
        }));
        e
    }

    fn ips(b: &[Backend]) -> Vec<u8> {
        b.iter().map(|b| b.ip.octets()[3]).collect()
    }

    #[test]
    fn loopback_endpoints_never_hairpin() {
        let backend = |ip: [u8; 4]| Backend {
            ip: ip.into(),
            port: 53,
        };
        let loopback = backend([127, 0, 0, 1]);
        let pod = backend([10, 244, 1, 5]);
        let backends = PortBackends {
            cluster: vec![pod, loopback],
            local: vec![pod, loopback],
        };
        let unknown_cidr = node("a", None);
        assert!(!backends.may_hairpin(&unknown_cidr, &loopback));
        assert!(backends.may_hairpin(&unknown_cidr, &pod));
        let mut with_cidr = node("a", None);
        with_cidr.pod_cidr = "10.244.1.0/24".parse().ok();
        assert!(!backends.may_hairpin(&with_cidr, &loopback));
        assert!(backends.may_hairpin(&with_cidr, &pod));
    }

    #[test]
    fn ready_endpoints_win_over_terminating_ones() {
        let svc = ServiceEntry {
            endpoints: vec![
                ep(3, "b", true, false),
                ep(1, "a", false, true),
                ep(2, "a", true, false),
            ],
            ..Default::default()
        };
        let b = backends_for(&svc, &http(), &node("a", None));
        assert_eq!(ips(&b.cluster), [2, 3]);
        assert_eq!(ips(&b.local), [2]);
    }

    #[test]
    fn falls_back_to_serving_terminating_per_scope() {
        let svc = ServiceEntry {
            endpoints: vec![ep(1, "a", false, true), ep(2, "b", true, false)],
            ..Default::default()
        };
        let b = backends_for(&svc, &http(), &node("a", None));
        assert_eq!(ips(&b.cluster), [2]);
        assert_eq!(
            ips(&b.local),
            [1],
            "no ready local endpoint: local terminating one"
        );
    }

    #[test]
    fn port_must_match_by_name_and_protocol() {
        let mut other = ep(1, "a", true, false);
        other.ports = vec![EndpointPortEntry {
            protocol: Protocol::Udp,
            ..other.ports[0].clone()
        }]
        .into();
        let svc = ServiceEntry {
            endpoints: vec![other],
            ..Default::default()
        };
        assert_eq!(
            backends_for(&svc, &http(), &node("a", None)),
            PortBackends::default()
        );
    }

    /// Two zones, a and b; endpoints 1 and 2 in a (on nodes a1 and a2),
    /// 3 in b (on b1), all hinted for their zone and node.
    fn zoned(node_hints: bool) -> ServiceEntry {
        let n = |name| node_hints.then_some(name);
        ServiceEntry {
            endpoints: vec![
                hinted(ep(1, "a1", true, false), "a", n("a1")),
                hinted(ep(2, "a2", true, false), "a", n("a2")),
                hinted(ep(3, "b1", true, false), "b", n("b1")),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn hints_keep_traffic_in_the_node_then_the_zone_then_anywhere() {
        let zone_only = zoned(false);
        let cluster = |svc: &ServiceEntry, name, zone| {
            ips(&backends_for(svc, &http(), &node(name, zone)).cluster)
        };
        assert_eq!(cluster(&zone_only, "a1", Some("a")), [1, 2]);
        assert_eq!(cluster(&zone_only, "b1", Some("b")), [3]);
        assert_eq!(
            cluster(&zone_only, "c1", Some("c")),
            [1, 2, 3],
            "no endpoint for zone c"
        );
        assert_eq!(
            cluster(&zone_only, "a1", None),
            [1, 2, 3],
            "a node without a zone"
        );

        let same_node = zoned(true);
        assert_eq!(cluster(&same_node, "a1", Some("a")), [1]);
        assert_eq!(
            cluster(&same_node, "a3", Some("a")),
            [1, 2],
            "no endpoint on a3: its zone"
        );
        assert_eq!(cluster(&same_node, "a3", None), [1, 2, 3]);

        // One ready endpoint without hints: hints are not trusted at all.
        let mut partial = zoned(false);
        partial.endpoints.push(ep(4, "b1", true, false));
        assert_eq!(cluster(&partial, "a1", Some("a")), [1, 2, 3, 4]);
        // Local policies ignore hints.
        let local = backends_for(&zone_only, &http(), &node("b1", Some("b"))).local;
        assert_eq!(ips(&local), [3]);
    }
}
