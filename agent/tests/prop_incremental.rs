//! Property: however Services, their endpoints (pods coming, going, turning
//! ready or not) and their specs change, the table the agent keeps by
//! recompiling only what each change names is the one a from-scratch
//! compile of the final snapshot gives — no leftover element or affinity
//! set, nothing missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use switchyard_agent::model::{
    EndpointEntry, EndpointPortEntry, NodeContext, Protocol, ServiceEntry, ServiceKey,
    ServicePortEntry, Snapshot,
};
use switchyard_agent::nft::layout;

/// Services are drawn from a small universe, so changes hit the same ones
/// again and collide on addresses and NodePorts now and then.
const SERVICES: u8 = 6;
const PORT_NAMES: [&str; 3] = ["http", "dns", "metrics"];

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Sctp)
    ]
}

fn ports() -> impl Strategy<Value = Vec<ServicePortEntry>> {
    proptest::sample::subsequence(PORT_NAMES.to_vec(), 1..=3).prop_flat_map(|names| {
        let n = names.len();
        (
            Just(names),
            proptest::collection::vec(
                (protocol(), 80u16..84, proptest::option::of(30000u16..30004)),
                n,
            ),
        )
            .prop_map(|(names, specs)| {
                names
                    .into_iter()
                    .zip(specs)
                    .map(|(name, (protocol, port, node_port))| ServicePortEntry {
                        name: name.to_string(),
                        protocol,
                        port,
                        node_port,
                    })
                    .collect()
            })
    })
}

fn endpoint(ports: Vec<ServicePortEntry>) -> impl Strategy<Value = EndpointEntry> {
    (
        0u8..2,
        1u8..6,
        proptest::option::of(prop_oneof![Just("n1"), Just("n2")]),
        any::<(bool, bool, bool)>(),
        8080u16..8083,
    )
        .prop_map(
            move |(node, host, node_name, (ready, serving, terminating), target)| EndpointEntry {
                hints: None,
                ip: Ipv4Addr::new(10, 244, node, host),
                node_name: node_name.map(str::to_string),
                ready,
                serving,
                terminating,
                ports: ports
                    .iter()
                    .map(|p| EndpointPortEntry {
                        name: p.name.clone(),
                        protocol: p.protocol,
                        port: target,
                    })
                    .collect::<Vec<_>>()
                    .into(),
            },
        )
}

fn service(slot: u8) -> impl Strategy<Value = ServiceEntry> {
    (
        prop_oneof![4 => Just(true), 1 => Just(false)],
        0u8..3,
        proptest::option::of(Just(Ipv4Addr::new(172, 18, 0, 200))),
        ports(),
        proptest::option::of(prop_oneof![Just(10u32), Just(10800u32)]),
        any::<(bool, bool)>(),
        proptest::sample::select(vec![
            &[][..],
            &["10.0.0.0/8"],
            &["172.18.0.0/24", "192.0.2.0/24"],
        ]),
    )
        .prop_flat_map(
            move |(has_ip, ip_pick, lb, ports, affinity, (itp, etp), ranges)| {
                let endpoints = proptest::collection::vec(endpoint(ports.clone()), 0..4);
                (
                    Just((has_ip, ip_pick, lb, ports, affinity, itp, etp, ranges)),
                    endpoints,
                )
            },
        )
        .prop_map(
            move |((has_ip, ip_pick, lb, ports, affinity, itp, etp, ranges), endpoints)| {
                // Mostly its own ClusterIP; sometimes another Service's (a conflict).
                let ip = if ip_pick == 0 { 1 } else { slot + 1 };
                ServiceEntry {
                    cluster_ip: has_ip.then(|| Ipv4Addr::new(10, 96, 0, ip)),
                    external_ips: Vec::new(),
                    load_balancer_ips: lb.into_iter().collect(),
                    ports,
                    session_affinity_timeout: affinity,
                    internal_traffic_local: itp,
                    external_traffic_local: etp,
                    endpoints: dedup(endpoints),
                    load_balancer_source_ranges: ranges
                        .iter()
                        .map(|r| r.parse().unwrap())
                        .collect(),
                }
            },
        )
}

/// An EndpointSlice lists an address once.
fn dedup(endpoints: Vec<EndpointEntry>) -> Vec<EndpointEntry> {
    let mut seen = BTreeSet::new();
    endpoints
        .into_iter()
        .filter(|e| seen.insert(e.ip))
        .collect()
}

/// One change: some Services created, updated or deleted (`None`) at once.
fn change() -> impl Strategy<Value = Vec<(u8, Option<ServiceEntry>)>> {
    proptest::collection::vec(
        (0..SERVICES)
            .prop_flat_map(|slot| (Just(slot), proptest::option::weighted(0.8, service(slot)))),
        1..4,
    )
}

fn key(slot: u8) -> ServiceKey {
    ServiceKey::new("default", format!("svc-{slot}"))
}

fn node() -> NodeContext {
    NodeContext {
        zone: None,
        node_name: "n1".to_string(),
        node_ips: vec![Ipv4Addr::new(172, 18, 0, 11)],
        pod_cidr: Some("10.244.0.0/24".parse().unwrap()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The constant layout: the changes `layout::Index::update` reports,
    /// applied one after the other to the first table, give the table a
    /// from-scratch compile of the final snapshot gives.
    #[test]
    fn constant_layout_changes_add_up_to_a_from_scratch_compile(
        first in proptest::collection::vec(proptest::option::of(service(0)), SERVICES as usize),
        changes in proptest::collection::vec(change(), 1..25),
    ) {
        let ctx = node();
        let mut snap = Snapshot::default();
        for (slot, entry) in first.into_iter().enumerate() {
            if let Some(entry) = entry {
                snap.services.insert(key(slot as u8), entry);
            }
        }
        let mut index = layout::Index::build(&ctx, &snap);
        let mut applied = index.table();
        for (step, change) in changes.into_iter().enumerate() {
            let mut changed = BTreeSet::new();
            for (slot, entry) in change {
                match entry {
                    Some(entry) => snap.services.insert(key(slot), entry),
                    None => snap.services.remove(&key(slot)),
                };
                changed.insert(key(slot));
            }
            let layout::Change { before, after } = index.update(&ctx, &snap, &changed);
            for tuple in before.tuples.keys() {
                applied.tuples.remove(tuple);
            }
            applied.tuples.extend(after.tuples);
            for ip in &before.hairpin {
                applied.hairpin.remove(ip);
            }
            applied.hairpin.extend(after.hairpin);
            let want = layout::compile(&ctx, &snap);
            prop_assert_eq!(&applied.tuples, &want.tuples, "after change {}", step + 1);
            prop_assert_eq!(&applied.hairpin, &want.hairpin, "after change {}", step + 1);
            prop_assert_eq!(index.table(), want);
        }
    }
}

/// The strategies are what the property claims: services with endpoints,
/// conflicts and deletions all occur.
#[test]
fn changes_cover_endpoints_conflicts_and_deletions() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut with_endpoints, mut deleted, mut shared_ip) = (0, 0, 0);
    for _ in 0..200 {
        let change = change().new_tree(&mut runner).unwrap().current();
        for (slot, entry) in change {
            match entry {
                None => deleted += 1,
                Some(e) => {
                    with_endpoints += usize::from(!e.endpoints.is_empty());
                    shared_ip +=
                        usize::from(slot != 0 && e.cluster_ip == Some(Ipv4Addr::new(10, 96, 0, 1)));
                }
            }
        }
    }
    assert!(with_endpoints > 50, "{with_endpoints}");
    assert!(deleted > 20, "{deleted}");
    assert!(shared_ip > 20, "{shared_ip}");
}
