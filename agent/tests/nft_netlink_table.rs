//! A whole table over netlink: the first transaction the agent builds for
//! a rich snapshot, and a delta after it, applied with `nft -f` in one
//! network namespace and as one netlink batch in another, must leave
//! identical tables (`nft list` and `nft -j list`, handles aside). The
//! encoder must cover both transactions: no fallback to `nft -f` is left.
//!
//! Runs inside throwaway network namespaces (never the root namespace).
//! Needs root; without it the test prints `SKIPPED` and passes, unless
//! `SWITCHYARD_E2E=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::net::Ipv4Addr;

use support::Netns;
use switchyard_agent::model::*;
use switchyard_agent::nft::netlink::{encode, Socket};
use switchyard_agent::nft::{compile, plan, AppliedState, Transaction};

const TABLE: &str = "switchyard";

fn ctx() -> NodeContext {
    NodeContext {
        zone: None,
        node_name: "node-a".into(),
        node_ips: vec![Ipv4Addr::new(192, 168, 1, 10)],
        pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
    }
}

/// How an endpoint is doing, as its EndpointSlice conditions say.
#[derive(Clone, Copy)]
enum State {
    Ready,
    Terminating,
}

fn endpoint(
    ip: [u8; 4],
    node: &str,
    state: State,
    ports: &[(&str, Protocol, u16)],
) -> EndpointEntry {
    EndpointEntry {
        hints: None,
        ip: ip.into(),
        node_name: Some(node.into()),
        ready: matches!(state, State::Ready),
        serving: true,
        terminating: matches!(state, State::Terminating),
        ports: ports
            .iter()
            .map(|(name, protocol, port)| EndpointPortEntry {
                name: (*name).into(),
                protocol: *protocol,
                port: *port,
            })
            .collect(),
    }
}

fn port(name: &str, protocol: Protocol, port: u16, node_port: Option<u16>) -> ServicePortEntry {
    ServicePortEntry {
        name: name.into(),
        protocol,
        port,
        node_port,
    }
}

const WEB_PORTS: [(&str, Protocol, u16); 3] = [
    ("http", Protocol::Tcp, 8080),
    ("dns", Protocol::Udp, 5353),
    ("assoc", Protocol::Sctp, 9999),
];

/// Every kind of Service the compiler handles, plus enough plain ones
/// that element lists span several netlink messages.
fn snapshot() -> Snapshot {
    let web = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
        external_ips: vec![Ipv4Addr::new(203, 0, 113, 7)],
        load_balancer_ips: vec![Ipv4Addr::new(198, 51, 100, 1)],
        ports: vec![
            port("http", Protocol::Tcp, 80, Some(30080)),
            port("dns", Protocol::Udp, 53, Some(30053)),
            port("assoc", Protocol::Sctp, 9, Some(30009)),
        ],
        endpoints: vec![
            endpoint([10, 244, 1, 5], "node-a", State::Ready, &WEB_PORTS),
            endpoint([10, 244, 2, 5], "node-b", State::Ready, &WEB_PORTS),
            endpoint([10, 244, 2, 6], "node-b", State::Terminating, &WEB_PORTS),
        ],
        ..Default::default()
    };
    let http = [("http", Protocol::Tcp, 8080)];
    let local = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 11)),
        load_balancer_ips: vec![Ipv4Addr::new(198, 51, 100, 2)],
        ports: vec![port("http", Protocol::Tcp, 80, Some(30081))],
        internal_traffic_local: true,
        external_traffic_local: true,
        endpoints: vec![
            endpoint([10, 244, 1, 7], "node-a", State::Ready, &http),
            endpoint([10, 244, 2, 7], "node-b", State::Ready, &http),
        ],
        ..Default::default()
    };
    // Local policies with no endpoint on this node: drop, not reject.
    let elsewhere = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 12)),
        external_ips: vec![Ipv4Addr::new(203, 0, 113, 8)],
        ports: vec![port("http", Protocol::Tcp, 80, Some(30082))],
        internal_traffic_local: true,
        external_traffic_local: true,
        endpoints: vec![endpoint([10, 244, 2, 8], "node-b", State::Ready, &http)],
        ..Default::default()
    };
    let sticky = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 13)),
        ports: vec![
            port("http", Protocol::Tcp, 80, Some(30083)),
            port("dns", Protocol::Udp, 53, None),
        ],
        session_affinity_timeout: Some(10800),
        external_traffic_local: true,
        endpoints: vec![
            endpoint([10, 244, 1, 9], "node-a", State::Ready, &WEB_PORTS),
            endpoint([10, 244, 2, 9], "node-b", State::Ready, &WEB_PORTS),
            endpoint([10, 244, 3, 9], "node-c", State::Ready, &WEB_PORTS),
        ],
        ..Default::default()
    };
    let empty = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 14)),
        external_ips: vec![Ipv4Addr::new(203, 0, 113, 9)],
        ports: vec![
            port("http", Protocol::Tcp, 80, Some(30084)),
            port("dns", Protocol::Udp, 53, None),
        ],
        ..Default::default()
    };
    let draining = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 15)),
        ports: vec![port("http", Protocol::Tcp, 80, None)],
        endpoints: vec![endpoint(
            [10, 244, 1, 10],
            "node-a",
            State::Terminating,
            &http,
        )],
        ..Default::default()
    };
    let headless = ServiceEntry {
        ports: vec![port("http", Protocol::Tcp, 80, None)],
        endpoints: vec![endpoint([10, 244, 1, 11], "node-a", State::Ready, &http)],
        ..Default::default()
    };
    let mut services: std::collections::BTreeMap<ServiceKey, ServiceEntry> = [
        ("web", web),
        ("local", local),
        ("elsewhere", elsewhere),
        ("sticky", sticky),
        ("empty", empty),
        ("draining", draining),
        ("headless", headless),
    ]
    .into_iter()
    .map(|(name, svc)| (ServiceKey::new("default", name), svc))
    .collect();
    for i in 0..600u16 {
        let (hi, lo) = ((i / 200) as u8, (i % 200) as u8);
        let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][usize::from(i % 3)];
        let target = [("p", protocol, 8000 + i)];
        let svc = ServiceEntry {
            cluster_ip: Some(Ipv4Addr::new(10, 97, hi, lo + 1)),
            ports: vec![port("p", protocol, 80, (i % 4 == 0).then_some(31000 + i))],
            endpoints: vec![
                endpoint([10, 245, hi, lo], "node-a", State::Ready, &target),
                endpoint([10, 246, hi, lo], "node-b", State::Ready, &target),
            ],
            ..Default::default()
        };
        services.insert(ServiceKey::new("gen", format!("svc-{i}")), svc);
    }
    Snapshot {
        version: 1,
        services,
    }
}

/// A later snapshot: Services removed and added, endpoints scaled and
/// moved, the affinity timeout changed (new sets, old ones deleted), a
/// policy flipped, and the service without endpoints given some.
fn changed(mut snap: Snapshot) -> Snapshot {
    let key = |name: &str| ServiceKey::new("default", name);
    let services = &mut snap.services;
    services.remove(&key("elsewhere"));
    for i in (0..600).step_by(7) {
        services.remove(&ServiceKey::new("gen", format!("svc-{i}")));
    }
    let web = services.get_mut(&key("web")).unwrap();
    web.endpoints.remove(0);
    web.endpoints.push(endpoint(
        [10, 244, 1, 20],
        "node-a",
        State::Ready,
        &WEB_PORTS,
    ));
    let sticky = services.get_mut(&key("sticky")).unwrap();
    sticky.session_affinity_timeout = Some(600);
    sticky.endpoints.truncate(2);
    services
        .get_mut(&key("local"))
        .unwrap()
        .internal_traffic_local = false;
    services.get_mut(&key("empty")).unwrap().endpoints = vec![endpoint(
        [10, 244, 1, 30],
        "node-a",
        State::Ready,
        &[("http", Protocol::Tcp, 80), ("dns", Protocol::Udp, 53)],
    )];
    let http = [("http", Protocol::Tcp, 8080)];
    services.insert(
        key("fresh"),
        ServiceEntry {
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 16)),
            ports: vec![port("http", Protocol::Tcp, 8080, Some(30085))],
            session_affinity_timeout: Some(60),
            endpoints: vec![endpoint([10, 244, 1, 31], "node-a", State::Ready, &http)],
            ..Default::default()
        },
    );
    snap.version = 2;
    snap
}

/// Runs an nft script inside the namespace.
fn nft_script(ns: &Netns, text: &str) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    ns.nft(&format!("-f {}", file.path().display())).unwrap();
}

/// Applies `tx` to `a` with `nft -f`, and as one netlink batch on
/// `socket` (opened in the other namespace).
fn apply_both(a: &Netns, socket: &mut Socket, tx: &Transaction) {
    let mut batch = encode(tx.table(), tx.commands()).expect("netlink covers every command");
    nft_script(a, &tx.script());
    socket.send(&mut batch).unwrap();
}

/// Drops `handle` keys, recursively.
fn without_handles(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("handle");
            map.values_mut().for_each(without_handles);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_handles),
        _ => {}
    }
}

/// The table as `nft list` and as `nft -j list` (handles dropped) show it.
fn views(ns: &Netns) -> (String, serde_json::Value) {
    let text = ns.nft(&format!("list table ip {TABLE}")).unwrap();
    let json = ns.nft(&format!("-j list table ip {TABLE}")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&json).unwrap();
    without_handles(&mut json);
    (text, json)
}

fn assert_same_table(a: &Netns, b: &Netns) -> String {
    let (text_a, json_a) = views(a);
    let (text_b, json_b) = views(b);
    assert_eq!(text_a, text_b);
    assert_eq!(json_a, json_b);
    assert_eq!(a.state(TABLE), b.state(TABLE));
    text_a
}

#[test]
fn first_load_and_delta_over_netlink_match_nft() {
    let test = "first_load_and_delta_over_netlink_match_nft";
    let (Some(a), Some(b)) = (Netns::create(test), Netns::create(test)) else {
        return;
    };
    let mut socket = Socket::open(Some(&b.name)).unwrap();
    let ctx = ctx();

    // The first transaction, as `DataPath::apply` builds it on an empty node.
    let snap = snapshot();
    let mut first = plan(TABLE, &AppliedState::default(), &compile(&ctx, &snap));
    first.set_generation(1);
    apply_both(&a, &mut socket, &first);
    let text = assert_same_table(&a, &b);
    for shape in [
        "typeof numgen random mod 1 : ip daddr . tcp dport",
        "numgen random mod 3 vmap {",
        "update @aff-",
        "dnat to 10.244.1.9:8080",
        "masquerade fully-random",
        "goto reject-chain",
        "ct state new jump service-endpoints-check",
    ] {
        assert!(text.contains(shape), "{shape}: {text}");
    }

    // A delta against the table read back, as `DataPath::resync` does.
    let applied = a.state(TABLE);
    assert_eq!(applied.generation, Some(1));
    let mut delta = plan(TABLE, &applied, &compile(&ctx, &changed(snap)));
    delta.set_generation(2);
    let stats = delta.stats;
    assert!(stats.chains_created > 0 && stats.chains_deleted > 0 && stats.chains_rewritten > 0);
    assert!(stats.sets_created > 0 && stats.sets_deleted > 0);
    assert!(stats.elements_added > 0 && stats.elements_deleted > 0);
    apply_both(&a, &mut socket, &delta);
    let text = assert_same_table(&a, &b);
    assert!(text.contains("timeout 10m"), "{text}");
    assert!(!text.contains("timeout 3h"), "{text}");
    assert_eq!(a.state(TABLE).generation, Some(2));

    // Nothing left to do: both agree with the desired table.
    let again = plan(TABLE, &b.state(TABLE), &compile(&ctx, &changed(snapshot())));
    assert!(!again.has_changes(), "{}", again.script());
}
