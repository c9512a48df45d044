//! Property: under any sequence of Services created, replaced and deleted,
//! with values asked for or left to the allocators, in ranges small enough
//! to run full, no ClusterIP, NodePort (health check ports included) or
//! LoadBalancer IP is ever held by two Services, a refused Service holds
//! nothing, and what the table says is held is exactly what the live
//! Services carry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use switchyard_api::resources::{Service, ServicePort};

use super::lb_ip::LbPool;
use super::node_port::NodePortRange;
use super::service::{allocate, held_by, Ranges};
use super::{AllocKey, AllocationTable};

const OWNERS: usize = 8;
/// `Local` stands for a LoadBalancer with the Local external policy, which
/// also holds a health check port.
const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "Local"];

#[derive(Debug, Clone)]
enum Op {
    /// Create or replace `owner`'s Service.
    Apply {
        owner: usize,
        type_: &'static str,
        cluster_ip: Option<u8>,
        node_ports: Vec<Option<u16>>,
    },
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (
            0..OWNERS,
            proptest::sample::select(TYPES.to_vec()),
            proptest::option::weighted(0.3, 1u8..15),
            proptest::collection::vec(proptest::option::weighted(0.3, 30000u16..30010), 1..4),
        )
            .prop_map(|(owner, type_, cluster_ip, node_ports)| Op::Apply {
                owner,
                type_,
                cluster_ip,
                node_ports,
            }),
        1 => (0..OWNERS).prop_map(Op::Delete),
    ]
}

fn ranges() -> Ranges {
    Ranges {
        cluster_ips: "10.96.0.0/28".parse().unwrap(),
        node_ports: NodePortRange::new(30000..=30009),
        lb_pool: Some(LbPool::new("172.18.0.200/29".parse().unwrap())),
    }
}

fn service(type_: &str, cluster_ip: Option<u8>, node_ports: &[Option<u16>]) -> Service {
    let mut s = Service::default();
    if type_ == "Local" {
        s.spec.type_ = Some("LoadBalancer".to_string());
        s.spec.external_traffic_policy = Some("Local".to_string());
    } else {
        s.spec.type_ = Some(type_.to_string());
    }
    s.spec.cluster_ip = cluster_ip.map(|host| format!("10.96.0.{host}"));
    s.spec.ports = node_ports
        .iter()
        .enumerate()
        .map(|(i, np)| ServicePort {
            name: Some(format!("p{i}")),
            port: 80 + i as i32,
            node_port: np.filter(|_| type_ != "ClusterIP").map(i32::from),
            ..Default::default()
        })
        .collect();
    s
}

/// The table the live Services imply; fails if any value is held twice.
fn implied(live: &BTreeMap<usize, Service>) -> Result<AllocationTable, String> {
    let mut table = AllocationTable::default();
    for (owner, svc) in live {
        for key in held_by(svc) {
            if let Some(other) = table.owner(&key) {
                return Err(format!("{key} held by {other} and owner-{owner}"));
            }
            table.insert(key, format!("owner-{owner}"));
        }
    }
    Ok(table)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_value_is_ever_held_twice(ops in proptest::collection::vec(op(), 1..60), seed in any::<u64>()) {
        let ranges = ranges();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut table = AllocationTable::default();
        let mut live: BTreeMap<usize, Service> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Apply { owner, type_, cluster_ip, node_ports } => {
                    let name = format!("owner-{owner}");
                    let mut svc = service(type_, cluster_ip, &node_ports);
                    if allocate(&mut svc, &name, &table, &ranges, &mut rng).is_err() {
                        continue;
                    }
                    for key in held_by(&svc) {
                        let holder = table.owner(&key);
                        prop_assert!(
                            holder.is_none_or(|h| h == name),
                            "{key} handed to {name} while {holder:?} holds it"
                        );
                    }
                    // The registry swaps the old claims for the new in one write.
                    if let Some(old) = live.insert(owner, svc.clone()) {
                        for key in held_by(&old) {
                            table.remove(&key);
                        }
                    }
                    for key in held_by(&svc) {
                        table.insert(key, name.clone());
                    }
                }
                Op::Delete(owner) => {
                    if let Some(old) = live.remove(&owner) {
                        for key in held_by(&old) {
                            table.remove(&key);
                        }
                    }
                }
            }
            let implied = implied(&live);
            prop_assert!(implied.is_ok(), "{implied:?}");
            prop_assert_eq!(implied.unwrap(), table.clone());
            for (key, _) in table.iter() {
                let in_range = match key {
                    AllocKey::ClusterIp(ip) => ranges.cluster_ips.primary().contains(*ip),
                    AllocKey::NodePort(p) => ranges.node_ports.ports().contains(p),
                    AllocKey::LoadBalancerIp(ip) => ranges.lb_pool.as_ref().is_some_and(|p| p.contains(*ip)),
                };
                prop_assert!(in_range, "{key} is outside its range");
            }
        }
    }
}
