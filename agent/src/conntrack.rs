//! Stale UDP conntrack entries, as kube-proxy clears them: UDP has no
//! connection to reset, so a client sending from a fixed source port keeps
//! hitting a conntrack entry that points at a removed endpoint (or at the
//! reject verdict of a service that had none) until the entry is deleted.
//!
//! [`stale_flows`] is pure: it compares the snapshot before and after an
//! apply. [`Conntrack`] runs the `conntrack` tool at the edge.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use tokio::process::Command;

use crate::model::{Protocol, ServiceEntry, Snapshot};

/// One `conntrack -D -p udp …` filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flush {
    pub orig_dst: Option<Ipv4Addr>,
    pub orig_dport: Option<u16>,
    pub reply_src: Option<Ipv4Addr>,
}

impl Flush {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["-D".to_string(), "-p".to_string(), "udp".to_string()];
        if let Some(ip) = self.orig_dst {
            args.extend(["--orig-dst".to_string(), ip.to_string()]);
        }
        if let Some(port) = self.orig_dport {
            args.extend(["--orig-port-dst".to_string(), port.to_string()]);
        }
        if let Some(ip) = self.reply_src {
            args.extend(["--reply-src".to_string(), ip.to_string()]);
        }
        args
    }
}

/// Addresses a service port answers on: ClusterIP, external and LB IPs.
fn front_ips(s: &ServiceEntry) -> Vec<Ipv4Addr> {
    s.cluster_ip
        .iter()
        .chain(&s.external_ips)
        .chain(&s.load_balancer_ips)
        .copied()
        .collect()
}

/// Endpoint IPs that serve `port_name` over UDP and receive traffic.
fn udp_backends(s: &ServiceEntry, port_name: &str) -> BTreeSet<Ipv4Addr> {
    s.endpoints
        .iter()
        .filter(|e| e.ready)
        .filter(|e| {
            e.ports
                .iter()
                .any(|p| p.protocol == Protocol::Udp && p.name == port_name)
        })
        .map(|e| e.ip)
        .collect()
}

/// Flows to delete after moving from `old` to `new`.
pub fn stale_flows(old: &Snapshot, new: &Snapshot) -> BTreeSet<Flush> {
    let mut out = BTreeSet::new();
    for (key, svc) in &new.services {
        let before = old.services.get(key);
        for port in svc.ports.iter().filter(|p| p.protocol == Protocol::Udp) {
            let now = udp_backends(svc, &port.name);
            // Only a UDP port of the same name could have had UDP flows.
            let then = before
                .filter(|b| {
                    b.ports
                        .iter()
                        .any(|p| p.protocol == Protocol::Udp && p.name == port.name)
                })
                .map(|b| udp_backends(b, &port.name))
                .unwrap_or_default();
            let dports: Vec<(Option<Ipv4Addr>, u16)> = front_ips(svc)
                .into_iter()
                .map(|ip| (Some(ip), port.port))
                .chain(port.node_port.map(|np| (None, np)))
                .collect();
            if then.is_empty() && !now.is_empty() {
                // Entries created while the service rejected traffic.
                out.extend(dports.iter().map(|(dst, dport)| Flush {
                    orig_dst: *dst,
                    orig_dport: Some(*dport),
                    reply_src: None,
                }));
            }
            for gone in then.difference(&now) {
                out.extend(dports.iter().map(|(dst, dport)| Flush {
                    orig_dst: *dst,
                    orig_dport: Some(*dport),
                    reply_src: Some(*gone),
                }));
            }
        }
    }
    for (key, svc) in &old.services {
        if new.services.contains_key(key) {
            continue;
        }
        for port in svc.ports.iter().filter(|p| p.protocol == Protocol::Udp) {
            for ip in front_ips(svc) {
                out.insert(Flush {
                    orig_dst: Some(ip),
                    orig_dport: Some(port.port),
                    reply_src: None,
                });
            }
        }
    }
    out
}

/// Runs `conntrack`, optionally inside a network namespace (tests), or not
/// at all (hollow agents in benchmarks, which have no kernel state).
#[derive(Debug, Clone, Default)]
pub struct Conntrack {
    netns: Option<String>,
    disabled: bool,
}

impl Conntrack {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn in_netns(netns: impl Into<String>) -> Self {
        Self {
            netns: Some(netns.into()),
            disabled: false,
        }
    }

    pub fn disabled() -> Self {
        Self {
            netns: None,
            disabled: true,
        }
    }

    /// Deletes each flow; failures are logged, never fatal: a missing
    /// `conntrack` tool costs only the fast failover of UDP clients.
    pub async fn flush(&self, flows: &BTreeSet<Flush>) {
        if self.disabled {
            return;
        }
        for flow in flows {
            let mut cmd = match &self.netns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, "conntrack"]);
                    c
                }
                None => Command::new("conntrack"),
            };
            match cmd.args(flow.args()).output().await {
                // conntrack exits 1 when nothing matched: that is fine.
                Ok(out) if out.status.success() || out.status.code() == Some(1) => {
                    tracing::debug!(?flow, "flushed conntrack entries");
                }
                Ok(out) => {
                    tracing::warn!(?flow, stderr = %String::from_utf8_lossy(&out.stderr), "conntrack failed")
                }
                Err(e) => tracing::warn!(?flow, error = %e, "cannot run conntrack"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EndpointEntry, EndpointPortEntry, ServiceKey, ServicePortEntry};

    fn svc(endpoints: &[(&str, bool)]) -> ServiceEntry {
        ServiceEntry {
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 53)),
            ports: vec![ServicePortEntry {
                name: "dns".into(),
                protocol: Protocol::Udp,
                port: 53,
                node_port: Some(30053),
            }],
            endpoints: endpoints
                .iter()
                .map(|(ip, ready)| EndpointEntry {
                    ip: ip.parse().unwrap(),
                    node_name: None,
                    ready: *ready,
                    serving: *ready,
                    terminating: false,
                    ports: vec![EndpointPortEntry {
                        name: "dns".into(),
                        protocol: Protocol::Udp,
                        port: 5353,
                    }]
                    .into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn snap(s: Option<ServiceEntry>) -> Snapshot {
        Snapshot {
            version: 1,
            services: s
                .into_iter()
                .map(|s| (ServiceKey::new("default", "dns"), s))
                .collect(),
        }
    }

    fn flush(dst: Option<&str>, dport: u16, reply: Option<&str>) -> Flush {
        Flush {
            orig_dst: dst.map(|d| d.parse().unwrap()),
            orig_dport: Some(dport),
            reply_src: reply.map(|r| r.parse().unwrap()),
        }
    }

    #[test]
    fn removed_endpoint_flushes_its_flows() {
        let old = snap(Some(svc(&[("10.244.1.10", true), ("10.244.2.10", true)])));
        let new = snap(Some(svc(&[("10.244.1.10", true), ("10.244.2.10", false)])));
        let got: Vec<Flush> = stale_flows(&old, &new).into_iter().collect();
        assert_eq!(
            got,
            vec![
                flush(None, 30053, Some("10.244.2.10")),
                flush(Some("10.96.0.53"), 53, Some("10.244.2.10")),
            ]
        );
    }

    #[test]
    fn first_endpoint_flushes_rejected_flows() {
        let old = snap(Some(svc(&[])));
        let new = snap(Some(svc(&[("10.244.1.10", true)])));
        let got: Vec<Flush> = stale_flows(&old, &new).into_iter().collect();
        assert_eq!(
            got,
            vec![
                flush(None, 30053, None),
                flush(Some("10.96.0.53"), 53, None)
            ]
        );
        assert_eq!(
            got[1].args(),
            vec![
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.53",
                "--orig-port-dst",
                "53"
            ]
        );
    }

    #[test]
    fn unchanged_and_tcp_services_flush_nothing() {
        let s = snap(Some(svc(&[("10.244.1.10", true)])));
        assert!(stale_flows(&s, &s).is_empty());
        let mut tcp = svc(&[("10.244.1.10", true)]);
        tcp.ports[0].protocol = Protocol::Tcp;
        assert!(stale_flows(&snap(Some(tcp.clone())), &snap(Some(svc(&[])))).is_empty());
        assert!(stale_flows(&snap(Some(tcp)), &snap(None)).is_empty());
    }
}
