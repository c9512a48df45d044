//! Which endpoints serve a Service port, with kube-proxy's rules: an endpoint
//! serves a port when it has a port of the same name and protocol; `ready`
//! endpoints are used, and only when none is ready do serving-and-terminating
//! ones take over (so connections drain gracefully during a rollout). The
//! `Local` set applies the same fallback to this node's endpoints alone.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::model::{EndpointEntry, ServiceEntry, ServicePortEntry};

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

/// Conditions of a candidate after merging duplicates from several slices.
#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    local: bool,
    ready: bool,
    serving_terminating: bool,
}

pub fn backends_for(svc: &ServiceEntry, port: &ServicePortEntry, node: &str) -> PortBackends {
    let candidates = candidates(svc, port, node);
    let pick = |local_only: bool| {
        let pool = || {
            candidates
                .iter()
                .filter(move |(_, c)| !local_only || c.local)
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
fn candidates(
    svc: &ServiceEntry,
    port: &ServicePortEntry,
    node: &str,
) -> BTreeMap<Backend, Candidate> {
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

    fn ep(last: u8, node: &str, ready: bool, terminating: bool) -> EndpointEntry {
        EndpointEntry {
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

    fn ips(b: &[Backend]) -> Vec<u8> {
        b.iter().map(|b| b.ip.octets()[3]).collect()
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
        let b = backends_for(&svc, &http(), "a");
        assert_eq!(ips(&b.cluster), [2, 3]);
        assert_eq!(ips(&b.local), [2]);
    }

    #[test]
    fn falls_back_to_serving_terminating_per_scope() {
        let svc = ServiceEntry {
            endpoints: vec![ep(1, "a", false, true), ep(2, "b", true, false)],
            ..Default::default()
        };
        let b = backends_for(&svc, &http(), "a");
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
        assert_eq!(backends_for(&svc, &http(), "a"), PortBackends::default());
    }
}
