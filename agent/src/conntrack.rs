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

use crate::model::{Protocol, ServiceEntry, ServiceKey, Snapshot};

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
                // Entries created while the service rejected traffic: never
                // translated, their replies come from the address itself.
                // Flows already DNATed to a backend are left alone, so the
                // first apply of a restarted agent, which sees every Service
                // as new, cuts no flow the table it found was serving (a
                // NodePort's node address is not known here: all its flows go).
                out.extend(dports.iter().map(|(dst, dport)| Flush {
                    orig_dst: *dst,
                    orig_dport: Some(*dport),
                    reply_src: *dst,
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

/// `conntrack` processes run at once by one flush.
const FLUSHES_AT_ONCE: usize = 4;

/// What the kernel still holds of Services whose changes the data path
/// failed to apply. Stale flows must be computed against that, not against
/// the snapshot that never reached the kernel; and only for the Services
/// changed since (a Service missing here is one nobody changed, not a new
/// one: taking it for new would flush the flows of every UDP Service,
/// cluster DNS included).
#[derive(Debug, Default)]
pub struct Unapplied {
    /// Their entries as last applied; a key absent here did not exist then.
    held: Snapshot,
    touched: BTreeSet<ServiceKey>,
}

impl Unapplied {
    /// A change of `keys` failed; `before` held their entries before it.
    /// For a key that failed before, the older entry (the applied one) stays.
    pub fn failed(&mut self, keys: impl IntoIterator<Item = ServiceKey>, before: &Snapshot) {
        for key in keys {
            if self.touched.insert(key.clone()) {
                if let Some(entry) = before.services.get(&key) {
                    self.held.services.insert(key, entry.clone());
                }
            }
        }
    }

    /// The flows made stale once `now` is applied after the failures, by a
    /// change of `keys` whose entries were `before`.
    pub fn stale_after(
        mut self,
        keys: impl IntoIterator<Item = ServiceKey>,
        before: &Snapshot,
        now: &Snapshot,
    ) -> BTreeSet<Flush> {
        self.failed(keys, before);
        let services = self
            .touched
            .iter()
            .filter_map(|k| now.services.get(k).map(|e| (k.clone(), e.clone())))
            .collect();
        let now = Snapshot {
            version: now.version,
            services,
        };
        stale_flows(&self.held, &now)
    }
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

    /// Deletes the flows in a task of its own, a few `conntrack` runs at a
    /// time, so a change that leaves hundreds of stale flows never holds up
    /// the next push. Failures are logged, never fatal: a missing
    /// `conntrack` tool costs only the fast failover of UDP clients.
    pub fn flush_in_background(&self, flows: BTreeSet<Flush>) {
        if self.disabled || flows.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            futures::stream::iter(flows)
                .for_each_concurrent(FLUSHES_AT_ONCE, |flow| this.flush_one(flow))
                .await;
        });
    }

    async fn flush_one(&self, flow: Flush) {
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
                    hints: None,
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

    /// Cluster DNS and one other UDP Service, both with endpoints.
    fn two(other: Option<ServiceEntry>) -> Snapshot {
        let mut s = snap(Some(svc(&[("10.244.1.10", true)])));
        if let Some(other) = other {
            let mut other = other;
            other.cluster_ip = Some(Ipv4Addr::new(10, 96, 0, 99));
            s.services
                .insert(ServiceKey::new("default", "other"), other);
        }
        s
    }

    #[test]
    fn after_a_failed_change_only_the_changed_services_are_compared() {
        let applied = two(None);
        let key = ServiceKey::new("default", "other");
        // A new Service fails to apply; the next push (another change to it) succeeds.
        let mut unapplied = Unapplied::default();
        unapplied.failed([key.clone()], &applied);
        let pending = two(Some(svc(&[("10.244.2.10", true)])));
        let now = two(Some(svc(&[("10.244.2.10", true), ("10.244.2.11", true)])));
        let flows = unapplied.stale_after([key], &pending, &now);
        // The new Service's VIP and NodePort are flushed (it rejected traffic
        // until now); cluster DNS, which nobody changed, keeps its flows.
        assert_eq!(
            flows,
            BTreeSet::from([
                flush(Some("10.96.0.99"), 53, Some("10.96.0.99")),
                flush(None, 30053, None)
            ])
        );
    }

    #[test]
    fn the_applied_entry_is_the_one_compared_across_several_failures() {
        let key = ServiceKey::new("default", "dns");
        let applied = snap(Some(svc(&[("10.244.1.10", true), ("10.244.2.10", true)])));
        let mut unapplied = Unapplied::default();
        unapplied.failed([key.clone()], &applied);
        // A second failed change started from the unapplied snapshot.
        let pending = snap(Some(svc(&[("10.244.1.10", true)])));
        unapplied.failed([key.clone()], &pending);
        let now = snap(Some(svc(&[("10.244.1.10", true)])));
        let flows = unapplied.stale_after([key], &pending, &now);
        assert_eq!(
            flows,
            BTreeSet::from([
                flush(Some("10.96.0.53"), 53, Some("10.244.2.10")),
                flush(None, 30053, Some("10.244.2.10")),
            ])
        );
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
                flush(Some("10.96.0.53"), 53, Some("10.96.0.53"))
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
                "53",
                "--reply-src",
                "10.96.0.53"
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
