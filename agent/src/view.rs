//! The agent's picture of the cluster: every Service as the control plane
//! last pushed it. Pushes fold into it purely ([`ClusterView::fold`]); the
//! data path, DNS and probes each derive what they need from it.
//!
//! The view takes every push, whether or not the data path then applies
//! it, so the next apply carries any change a failed one missed.

use imbl::OrdMap;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::sync::Arc;

use switchyard_api::v1::{ClusterConfig, PodProbe, Push, ServiceState};

use crate::model::{
    EndpointEntry, EndpointPortEntry, Hints, Protocol, ServiceEntry, ServiceKey, ServicePortEntry,
    Snapshot,
};

/// Services a push changed, counted as kube-proxy counts its changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub services: u64,
    pub endpoints: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    pub version: u64,
    pub cluster: ClusterConfig,
    /// A persistent map: folding a delta into a view of 10,000 Services
    /// shares all but the changed entries instead of copying them.
    pub services: OrdMap<ServiceKey, Arc<ServiceState>>,
    /// Readiness probes for the pods on this node.
    pub probes: Arc<Vec<PodProbe>>,
}

impl ClusterView {
    /// The view after `push`: a full push replaces everything, a delta patches.
    pub fn fold(&self, push: Push) -> ClusterView {
        let mut next = if push.full {
            ClusterView::default()
        } else {
            self.clone()
        };
        next.version = push.version;
        if let Some(cluster) = push.cluster {
            next.cluster = cluster;
        }
        if push.full {
            next.probes = Arc::default();
        }
        if let Some(probes) = push.probes {
            next.probes = Arc::new(probes.pods);
        }
        for r in push.removed {
            next.services.remove(&ServiceKey::new(r.namespace, r.name));
        }
        for mut s in push.services {
            // Decoding grows the list by doubling; the view keeps it for long.
            s.endpoints.shrink_to_fit();
            next.services.insert(
                ServiceKey::new(s.namespace.clone(), s.name.clone()),
                Arc::new(s),
            );
        }
        next
    }

    /// How many Services `push` changes in this view: in their endpoints,
    /// and otherwise (added, removed, spec changed).
    pub fn changes(&self, push: &Push) -> Changes {
        let mut changes = Changes::default();
        for s in &push.services {
            let key = ServiceKey::new(s.namespace.clone(), s.name.clone());
            match self.services.get(&key) {
                None => changes.services += 1,
                Some(old) => {
                    if old.endpoints != s.endpoints || old.port_sets != s.port_sets {
                        changes.endpoints += 1;
                    }
                    if !same_spec(old, s) {
                        changes.services += 1;
                    }
                }
            }
        }
        changes.services += push
            .removed
            .iter()
            .filter(|r| {
                self.services
                    .contains_key(&ServiceKey::new(r.namespace.clone(), r.name.clone()))
            })
            .count() as u64;
        changes
    }

    /// What the nftables data path programs. Services whose addresses do not
    /// parse are skipped (validation makes that impossible for stored ones).
    pub fn data_path_snapshot(&self) -> Snapshot {
        Snapshot {
            version: self.version,
            services: self
                .services
                .iter()
                .filter_map(|(k, s)| Some((k.clone(), data_path_entry(s)?)))
                .collect(),
        }
    }
}

/// Equal but for the endpoints. Spelled out field by field (no `..`), so a
/// new field cannot be forgotten here.
fn same_spec(a: &ServiceState, b: &ServiceState) -> bool {
    let ServiceState {
        namespace,
        name,
        r#type,
        cluster_ip,
        external_ips,
        load_balancer_ips,
        external_name,
        ports,
        affinity_timeout_seconds,
        internal_traffic_local,
        external_traffic_local,
        endpoints: _,
        headless,
        publish_not_ready,
        port_sets: _,
        proxied_elsewhere,
        health_check_node_port,
        load_balancer_source_ranges,
        cluster_ips,
    } = a;
    *namespace == b.namespace
        && *name == b.name
        && *r#type == b.r#type
        && *cluster_ip == b.cluster_ip
        && *cluster_ips == b.cluster_ips
        && *external_ips == b.external_ips
        && *load_balancer_ips == b.load_balancer_ips
        && *external_name == b.external_name
        && *ports == b.ports
        && *affinity_timeout_seconds == b.affinity_timeout_seconds
        && *internal_traffic_local == b.internal_traffic_local
        && *external_traffic_local == b.external_traffic_local
        && *headless == b.headless
        && *publish_not_ready == b.publish_not_ready
        && *proxied_elsewhere == b.proxied_elsewhere
        && *health_check_node_port == b.health_check_node_port
        && *load_balancer_source_ranges == b.load_balancer_source_ranges
}

fn protocol(s: &str) -> Option<Protocol> {
    match s {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => None,
    }
}

fn ips(list: &[String]) -> Vec<Ipv4Addr> {
    list.iter().filter_map(|s| s.parse().ok()).collect()
}

fn port(n: u32) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// What the data path programs for `s`: nothing for a Service another
/// proxy serves (`service.kubernetes.io/service-proxy-name`).
pub fn data_path_entry(s: &ServiceState) -> Option<ServiceEntry> {
    (!s.proxied_elsewhere).then(|| service_entry(s))
}

pub fn service_entry(s: &ServiceState) -> ServiceEntry {
    let programmed = s.r#type != "ExternalName" && !s.headless;
    ServiceEntry {
        cluster_ip: s.ipv4_cluster_ip().filter(|_| programmed),
        external_ips: ips(&s.external_ips),
        load_balancer_ips: ips(&s.load_balancer_ips),
        ports: s
            .ports
            .iter()
            .filter_map(|p| {
                Some(ServicePortEntry {
                    name: p.name.clone(),
                    protocol: protocol(&p.protocol)?,
                    port: port(p.port)?,
                    node_port: port(p.node_port),
                })
            })
            .collect(),
        session_affinity_timeout: (s.affinity_timeout_seconds > 0)
            .then_some(s.affinity_timeout_seconds),
        internal_traffic_local: s.internal_traffic_local,
        external_traffic_local: s.external_traffic_local,
        endpoints: endpoint_entries(s),
        load_balancer_source_ranges: s
            .load_balancer_source_ranges
            .iter()
            .filter_map(|r| r.parse::<Ipv4Net>().ok())
            .map(|r| r.trunc())
            .collect(),
    }
}

/// The endpoints as the data path sees them. Each distinct port list is
/// converted once and shared, so 100,000 endpoints do not hold 100,000
/// copies of the same few ports.
fn endpoint_entries(s: &ServiceState) -> Vec<EndpointEntry> {
    let port_sets: Vec<Arc<[EndpointPortEntry]>> = s
        .port_sets
        .iter()
        .map(|set| {
            set.ports
                .iter()
                .filter_map(|p| {
                    Some(EndpointPortEntry {
                        name: p.name.clone(),
                        protocol: protocol(&p.protocol)?,
                        port: port(p.port)?,
                    })
                })
                .collect()
        })
        .collect();
    let mut entries = Vec::with_capacity(s.endpoints.len());
    for e in &s.endpoints {
        let Ok(ip) = e.ip.parse() else {
            continue;
        };
        let ports = usize::try_from(e.port_set)
            .ok()
            .and_then(|i| port_sets.get(i))
            .cloned()
            .unwrap_or_else(|| Arc::from([]));
        let hinted = !e.zone_hints.is_empty() || !e.node_hints.is_empty();
        entries.push(EndpointEntry {
            hints: hinted.then(|| {
                Arc::new(Hints {
                    zones: e.zone_hints.clone(),
                    nodes: e.node_hints.clone(),
                })
            }),
            ip,
            node_name: Some(e.node_name.clone()).filter(|n| !n.is_empty()),
            ready: e.ready,
            serving: e.serving,
            terminating: e.terminating,
            ports,
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::v1::{
        Endpoint, EndpointPort, EndpointPorts, ProbeSet, ServicePort, ServiceRef,
    };

    fn state(name: &str, ip: &str, endpoints: &[&str]) -> ServiceState {
        ServiceState {
            namespace: "default".into(),
            name: name.into(),
            r#type: "NodePort".into(),
            cluster_ip: ip.into(),
            ports: vec![ServicePort {
                name: String::new(),
                protocol: "TCP".into(),
                port: 80,
                node_port: 30080,
            }],
            endpoints: endpoints
                .iter()
                .map(|e| Endpoint {
                    ip: e.to_string(),
                    node_name: "node-1".into(),
                    ready: true,
                    serving: true,
                    ..Default::default()
                })
                .collect(),
            port_sets: vec![EndpointPorts {
                ports: vec![EndpointPort {
                    name: String::new(),
                    protocol: "TCP".into(),
                    port: 5000,
                }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn changes_are_counted_apart_for_endpoints_and_the_rest() {
        let view = ClusterView::default().fold(Push {
            version: 1,
            full: true,
            services: vec![
                state("a", "10.96.0.1", &["10.244.1.10"]),
                state("b", "10.96.0.2", &[]),
                state("c", "10.96.0.3", &[]),
            ],
            ..Default::default()
        });
        let mut both = state("b", "10.96.0.2", &["10.244.1.11"]);
        both.affinity_timeout_seconds = 60;
        let push = Push {
            version: 2,
            services: vec![
                state("a", "10.96.0.1", &["10.244.1.10", "10.244.1.12"]),
                both,
                state("c", "10.96.0.3", &[]),
                state("d", "10.96.0.4", &[]),
            ],
            removed: vec![
                ServiceRef {
                    namespace: "default".into(),
                    name: "c".into(),
                },
                ServiceRef {
                    namespace: "default".into(),
                    name: "never-there".into(),
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            view.changes(&push),
            Changes {
                services: 3,
                endpoints: 2
            }
        );
    }

    #[test]
    fn full_then_delta() {
        let full = Push {
            version: 5,
            full: true,
            services: vec![
                state("a", "10.96.0.1", &["10.244.1.10"]),
                state("b", "10.96.0.2", &[]),
            ],
            probes: Some(ProbeSet::default()),
            ..Default::default()
        };
        let v1 = ClusterView::default().fold(full);
        assert_eq!(v1.version, 5);
        assert_eq!(v1.services.len(), 2);
        let delta = Push {
            version: 7,
            services: vec![state("a", "10.96.0.1", &["10.244.1.10", "10.244.2.10"])],
            removed: vec![ServiceRef {
                namespace: "default".into(),
                name: "b".into(),
            }],
            ..Default::default()
        };
        let v2 = v1.fold(delta);
        assert_eq!(v2.version, 7);
        assert_eq!(
            v2.services
                .keys()
                .map(|k| k.to_string())
                .collect::<Vec<_>>(),
            vec!["default/a"]
        );
        let snap = v2.data_path_snapshot();
        let a = &snap.services[&ServiceKey::new("default", "a")];
        assert_eq!(a.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!(a.ports[0].node_port, Some(30080));
        assert_eq!(a.endpoints.len(), 2);
        assert_eq!(a.endpoints[1].ports[0].port, 5000);
    }

    #[test]
    fn services_left_to_another_proxy_stay_in_the_view_but_out_of_the_data_path() {
        let mut other = state("other", "10.96.0.2", &["10.244.1.11"]);
        other.proxied_elsewhere = true;
        let view = ClusterView::default().fold(Push {
            version: 1,
            full: true,
            services: vec![state("ours", "10.96.0.1", &["10.244.1.10"]), other],
            ..Default::default()
        });
        assert_eq!(view.services.len(), 2);
        let keys: Vec<String> = view
            .data_path_snapshot()
            .services
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(keys, ["default/ours"]);
    }

    #[test]
    fn headless_services_program_nothing() {
        let mut s = state("h", "", &["10.244.1.10"]);
        s.headless = true;
        assert_eq!(service_entry(&s).cluster_ip, None);
    }
}
