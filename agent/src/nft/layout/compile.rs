//! Snapshot → [`Table`] for the constant layout. Pure: the same inputs
//! give the same table.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::index::Index;
use super::table::{dispatch_slots, Fact, Table, TupleFacts, LOCAL_SLOTS};
use crate::model::{NodeContext, Protocol, ServiceEntry, Snapshot};
use crate::nft::endpoints::{backends_for, Backend, PortBackends};
use crate::nft::state::{MapKey, Target};

/// Compiles every Service of `snap`.
pub fn compile(ctx: &NodeContext, snap: &Snapshot) -> Table {
    Index::build(ctx, snap).table()
}

/// What one Service wants: its tuples' facts, and which of its endpoints
/// join the hairpin set (a set every Service shares).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub tuples: BTreeMap<MapKey, TupleFacts>,
    pub hairpin: BTreeSet<Ipv4Addr>,
}

/// Compiles one Service; nothing for those without a cluster IP
/// (headless, ExternalName).
pub fn service(ctx: &NodeContext, svc: &ServiceEntry) -> Wanted {
    let mut wanted = Wanted::default();
    let Some(vip) = svc.cluster_ip else {
        return wanted;
    };
    for port in &svc.ports {
        let backends = backends_for(svc, port, ctx);
        let port_of = |addr| MapKey {
            addr,
            protocol: port.protocol,
            port: port.port,
        };
        let tuples = &mut wanted.tuples;
        tuples.insert(
            port_of(Some(vip)),
            cluster_ip(svc, &backends, port.protocol),
        );
        let external = external(svc, &backends, port.protocol);
        let mut addresses: Vec<_> = svc
            .external_ips
            .iter()
            .chain(&svc.load_balancer_ips)
            .copied()
            .collect();
        addresses.sort();
        addresses.dedup();
        for ip in addresses {
            let mut facts = external.clone();
            if svc.load_balancer_ips.contains(&ip) {
                firewall(ctx, svc, &mut facts);
            }
            tuples.insert(port_of(Some(ip)), facts);
        }
        if let Some(node_port) = port.node_port {
            let tuple = MapKey {
                addr: None,
                protocol: port.protocol,
                port: node_port,
            };
            tuples.insert(tuple, external.clone());
        }
        for facts in tuples.values_mut() {
            facts.affinity = svc.session_affinity_timeout;
        }
        let hairpin = backends
            .cluster
            .iter()
            .filter(|b| backends.may_hairpin(ctx, b))
            .map(|b| b.ip);
        wanted.hairpin.extend(hairpin);
    }
    wanted
}

/// ClusterIP traffic: the cluster or the local endpoints by internal
/// policy; none usable: reject (none at all) or drop (Local, none here).
fn cluster_ip(svc: &ServiceEntry, backends: &PortBackends, protocol: Protocol) -> TupleFacts {
    let (used, fact, flavor) = match svc.internal_traffic_local {
        true => (&backends.local, Fact::ClusterIpLocal, LOCAL_SLOTS),
        false => (&backends.cluster, Fact::ClusterIp, 0),
    };
    if used.is_empty() {
        return only(match backends.cluster.is_empty() {
            true => Fact::Reject,
            false => Fact::Drop,
        });
    }
    let mut facts = only(fact);
    add_slots(&mut facts, used, flavor, protocol);
    facts
}

/// External, LB and NodePort traffic: every endpoint under policy Cluster;
/// under Local this node's (traffic from its own pods and from the host
/// still goes to any, as kube-proxy does); no endpoint at all: reject.
fn external(svc: &ServiceEntry, backends: &PortBackends, protocol: Protocol) -> TupleFacts {
    if backends.cluster.is_empty() {
        return only(Fact::Reject);
    }
    let mut facts = only(match svc.external_traffic_local {
        true => Fact::ExternalLocal,
        false => Fact::External,
    });
    add_slots(&mut facts, &backends.cluster, 0, protocol);
    if svc.external_traffic_local {
        add_slots(&mut facts, &backends.local, LOCAL_SLOTS, protocol);
    }
    facts
}

/// Connections to an LB IP with source ranges are checked against them;
/// a range holding a node address also admits the LB IPs themselves (a
/// node reaching its own LB IP may come back from it).
fn firewall(ctx: &NodeContext, svc: &ServiceEntry, facts: &mut TupleFacts) {
    let ranges = &svc.load_balancer_source_ranges;
    if ranges.is_empty() {
        return;
    }
    facts.facts.insert(Fact::Firewalled);
    let mut allow = ranges.clone();
    let holds_node = ranges
        .iter()
        .any(|r| ctx.node_ips.iter().any(|ip| r.contains(ip)));
    if holds_node {
        allow.extend(svc.load_balancer_ips.iter().map(|ip| Ipv4Net::from(*ip)));
    }
    // An interval set refuses overlapping elements: a range inside another
    // (an LB IP in the node's range) is merged into it.
    facts.allow = Ipv4Net::aggregate(&allow).into_iter().collect();
}

fn only(fact: Fact) -> TupleFacts {
    let mut facts = TupleFacts::default();
    facts.facts.insert(fact);
    facts
}

fn add_slots(facts: &mut TupleFacts, backends: &[Backend], flavor: u32, protocol: Protocol) {
    for (key, b) in dispatch_slots(backends, flavor) {
        let target = Target {
            ip: b.ip,
            port: b.port,
            protocol,
        };
        facts.slots.insert(key, target);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{EndpointEntry, ServiceKey, ServicePortEntry};

    pub(in crate::nft::layout) fn ctx() -> NodeContext {
        NodeContext {
            node_name: "node-1".into(),
            node_ips: vec![Ipv4Addr::new(172, 18, 0, 11)],
            pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
            zone: None,
        }
    }

    pub(in crate::nft::layout) fn endpoint(ip: [u8; 4], node: &str) -> EndpointEntry {
        EndpointEntry {
            ip: Ipv4Addr::from(ip),
            node_name: Some(node.into()),
            ready: true,
            serving: true,
            terminating: false,
            ports: vec![crate::model::EndpointPortEntry {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 8080,
            }]
            .into(),
            hints: None,
        }
    }

    pub(in crate::nft::layout) fn web(endpoints: Vec<EndpointEntry>) -> ServiceEntry {
        ServiceEntry {
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
            ports: vec![ServicePortEntry {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: Some(30080),
            }],
            endpoints,
            ..Default::default()
        }
    }

    fn table(services: Vec<(&str, ServiceEntry)>) -> Table {
        let snap = Snapshot {
            version: 1,
            services: services
                .into_iter()
                .map(|(name, s)| (ServiceKey::new("default", name), s))
                .collect(),
        };
        compile(&ctx(), &snap)
    }

    fn key(addr: Option<[u8; 4]>, port: u16) -> MapKey {
        MapKey {
            addr: addr.map(Ipv4Addr::from),
            protocol: Protocol::Tcp,
            port,
        }
    }

    #[test]
    fn a_cluster_policy_service_is_elements_only() {
        let t = table(vec![(
            "web",
            web(vec![
                endpoint([10, 244, 1, 5], "node-1"),
                endpoint([10, 244, 2, 7], "node-2"),
            ]),
        )]);
        let vip = &t.tuples[&key(Some([10, 96, 0, 10]), 80)];
        assert_eq!(vip.facts, [Fact::ClusterIp].into());
        let slots: Vec<(u32, String)> =
            vip.slots.iter().map(|(k, t)| (*k, t.to_string())).collect();
        assert_eq!(
            slots,
            [
                (0x2_0000, "10.244.1.5 . 8080".to_string()),
                (0x2_0001, "10.244.2.7 . 8080".to_string())
            ]
        );
        let node_port = &t.tuples[&key(None, 30080)];
        assert_eq!(node_port.facts, [Fact::External].into());
        assert_eq!(node_port.slots, vip.slots);
        assert_eq!(t.hairpin, [Ipv4Addr::new(10, 244, 1, 5)].into());
    }

    #[test]
    fn local_policies_use_this_nodes_endpoints_or_drop() {
        let mut svc = web(vec![endpoint([10, 244, 2, 7], "node-2")]);
        svc.internal_traffic_local = true;
        svc.external_traffic_local = true;
        let t = table(vec![("web", svc)]);
        assert_eq!(
            t.tuples[&key(Some([10, 96, 0, 10]), 80)].facts,
            [Fact::Drop].into()
        );
        let node_port = &t.tuples[&key(None, 30080)];
        assert_eq!(node_port.facts, [Fact::ExternalLocal].into());
        assert_eq!(
            node_port.slots.keys().copied().collect::<Vec<_>>(),
            [0x1_0000]
        );
    }

    #[test]
    fn no_endpoints_rejects_and_a_taken_tuple_stays_with_the_first_service() {
        let mut other = web(vec![]);
        other.cluster_ip = Some(Ipv4Addr::new(10, 96, 0, 11));
        let t = table(vec![("a", web(vec![])), ("b", other)]);
        assert_eq!(
            t.tuples[&key(Some([10, 96, 0, 10]), 80)].facts,
            [Fact::Reject].into()
        );
        assert_eq!(t.conflicts, ["default/b: tcp . 30080 already taken"]);
    }

    #[test]
    fn lb_ips_with_source_ranges_are_firewalled() {
        let mut svc = web(vec![endpoint([10, 244, 1, 5], "node-1")]);
        svc.load_balancer_ips = vec![Ipv4Addr::new(172, 18, 0, 200)];
        svc.load_balancer_source_ranges = vec!["172.18.0.0/24".parse().unwrap()];
        let t = table(vec![("web", svc)]);
        let lb = &t.tuples[&key(Some([172, 18, 0, 200]), 80)];
        assert_eq!(lb.facts, [Fact::External, Fact::Firewalled].into());
        let allow: Vec<String> = lb.allow.iter().map(ToString::to_string).collect();
        assert_eq!(
            allow,
            ["172.18.0.0/24"],
            "the LB IP is in the range already"
        );
    }
}
