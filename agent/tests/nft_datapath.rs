//! The nftables data path against a real kernel, inside throwaway network
//! namespaces (never the root namespace's nftables or addresses).
//!
//! Needs root. Without it each test prints `SKIPPED` and passes, unless
//! `SWITCHYARD_E2E=1`, which turns the skip into a failure (CI sets it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use support::Netns;
use switchyard_agent::model::*;
use switchyard_agent::nft::{compile, AppliedState, DataPath, NftCommand, NftError, NftRunner};

const TABLE: &str = "switchyard";

// === runners ===

/// Real nft, recording every script and optionally corrupting the next one.
#[derive(Clone)]
struct Tee {
    inner: NftCommand,
    scripts: Arc<Mutex<Vec<String>>>,
    corrupt: Arc<AtomicBool>,
}

impl Tee {
    fn new(ns: &Netns) -> Self {
        Self {
            inner: ns.runner(),
            scripts: Arc::default(),
            corrupt: Arc::default(),
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.scripts.lock().unwrap())
    }
}

impl NftRunner for Tee {
    async fn run_script(&self, script: &str) -> Result<(), NftError> {
        let mut script = script.to_owned();
        if self.corrupt.swap(false, Ordering::SeqCst) {
            script.push_str(&format!("add rule ip {TABLE} no-such-chain accept\n"));
        }
        self.scripts.lock().unwrap().push(script.clone());
        self.inner.run_script(&script).await
    }

    async fn list_json(&self, object: &str) -> Result<Option<String>, NftError> {
        self.inner.list_json(object).await
    }
}

// === fixtures ===

fn ctx() -> NodeContext {
    NodeContext {
        zone: None,
        node_name: "node-a".into(),
        node_ips: vec![Ipv4Addr::new(192, 168, 1, 10)],
        pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
    }
}

fn endpoint(ip: [u8; 4], node: &str) -> EndpointEntry {
    EndpointEntry {
        hints: None,
        ip: ip.into(),
        node_name: Some(node.into()),
        ready: true,
        serving: true,
        terminating: false,
        ports: vec![
            EndpointPortEntry {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 8080,
            },
            EndpointPortEntry {
                name: "dns".into(),
                protocol: Protocol::Udp,
                port: 5353,
            },
        ]
        .into(),
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

/// A mixed snapshot: multi-port NodePort + external IP, Local policies,
/// affinity, a service without endpoints, a headless one.
fn snapshot(version: u64, web_endpoints: Vec<EndpointEntry>) -> Snapshot {
    let web = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
        external_ips: vec![Ipv4Addr::new(203, 0, 113, 7)],
        ports: vec![
            port("http", Protocol::Tcp, 80, Some(30080)),
            port("dns", Protocol::Udp, 53, None),
        ],
        endpoints: web_endpoints,
        ..Default::default()
    };
    let local = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 11)),
        load_balancer_ips: vec![Ipv4Addr::new(198, 51, 100, 1)],
        ports: vec![port("http", Protocol::Tcp, 80, Some(30081))],
        internal_traffic_local: true,
        external_traffic_local: true,
        session_affinity_timeout: Some(600),
        endpoints: vec![
            endpoint([10, 244, 1, 9], "node-a"),
            endpoint([10, 244, 2, 9], "node-b"),
        ],
        ..Default::default()
    };
    let empty = ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 12)),
        ports: vec![port("http", Protocol::Tcp, 80, Some(30082))],
        ..Default::default()
    };
    let headless = ServiceEntry {
        ports: vec![port("http", Protocol::Tcp, 80, None)],
        endpoints: vec![endpoint([10, 244, 1, 5], "node-a")],
        ..Default::default()
    };
    let services = [
        ("web", web),
        ("local", local),
        ("empty", empty),
        ("headless", headless),
    ]
    .into_iter()
    .map(|(name, svc)| (ServiceKey::new("default", name), svc))
    .collect();
    Snapshot { version, services }
}

fn two_web_endpoints() -> Vec<EndpointEntry> {
    vec![
        endpoint([10, 244, 1, 5], "node-a"),
        endpoint([10, 244, 2, 7], "node-b"),
    ]
}

/// What the table must hold after applying `snap` (generation aside).
fn expected(snap: &Snapshot) -> AppliedState {
    AppliedState::from_ruleset(&compile(&ctx(), snap), 0)
}

fn without_generation(mut s: AppliedState) -> AppliedState {
    s.generation = Some(0);
    s
}

// === tests ===

#[tokio::test]
async fn apply_programs_the_expected_table() {
    let Some(ns) = Netns::create("apply_programs_the_expected_table") else {
        return;
    };
    let mut dp = DataPath::open(TABLE, ns.runner()).await.unwrap();
    let snap = snapshot(1, two_web_endpoints());
    dp.apply(&ctx(), &snap).await.unwrap();

    let ips = ns.nft(&format!("list map ip {TABLE} service-ips")).unwrap();
    for element in [
        "10.96.0.10 . tcp . 80 : goto svc-",
        "10.96.0.10 . udp . 53 : goto svc-",
        "203.0.113.7 . tcp . 80 : goto ext-",
        "10.96.0.11 . tcp . 80 : goto local-",
        "198.51.100.1 . tcp . 80 : goto ext-",
    ] {
        assert!(ips.contains(element), "missing {element} in\n{ips}");
    }
    let nodeports = ns
        .nft(&format!("list map ip {TABLE} no-endpoint-nodeports"))
        .unwrap();
    assert!(
        nodeports.contains("tcp . 30082 : goto reject-chain"),
        "{nodeports}"
    );
    let rejects = ns
        .nft(&format!("list map ip {TABLE} no-endpoint-services"))
        .unwrap();
    assert!(
        rejects.contains("10.96.0.12 . tcp . 80 : goto reject-chain"),
        "{rejects}"
    );

    // Everything reads back as written: fingerprints, rule counts, elements, sets.
    assert_eq!(without_generation(ns.state(TABLE)), expected(&snap));
    assert_eq!(ns.state(TABLE).generation, Some(dp.generation()));
}

#[tokio::test]
async fn delta_holds_only_the_difference_and_equals_a_fresh_apply() {
    let Some(ns) = Netns::create("delta_holds_only_the_difference") else {
        return;
    };
    let tee = Tee::new(&ns);
    let mut dp = DataPath::open(TABLE, tee.clone()).await.unwrap();
    dp.apply(&ctx(), &snapshot(1, two_web_endpoints()))
        .await
        .unwrap();
    tee.take();

    // This node's web endpoint replaced: web's chains pick endpoints by
    // index, so no chain changes; only its DNAT targets (one per port) and
    // its hairpin pair.
    let next = snapshot(
        2,
        vec![
            endpoint([10, 244, 1, 6], "node-a"),
            endpoint([10, 244, 2, 7], "node-b"),
        ],
    );
    let stats = dp.apply(&ctx(), &next).await.unwrap();
    assert_eq!(
        (stats.elements_added, stats.elements_deleted),
        (3, 3),
        "{stats:?}"
    );
    assert_eq!(
        (
            stats.chains_created,
            stats.chains_rewritten,
            stats.chains_deleted
        ),
        (0, 0, 0),
        "{stats:?}"
    );
    let scripts = tee.take();
    assert_eq!(scripts.len(), 1);
    let script = &scripts[0];
    assert!(
        !script.contains("add table") && !script.contains("add map"),
        "{script}"
    );
    assert!(
        !script.contains("10.96.0.11"),
        "untouched service in delta:\n{script}"
    );
    assert!(
        script.contains("10.244.1.6 . 8080")
            && script.contains("10.244.1.6 . 5353")
            && script.contains("10.244.1.6 . 10.244.1.6"),
        "{script}"
    );

    // The incrementally reached table equals a fresh full apply of `next`.
    let mut fresh = DataPath::open("fresh", ns.runner()).await.unwrap();
    fresh.apply(&ctx(), &next).await.unwrap();
    assert_eq!(
        without_generation(ns.state(TABLE)),
        without_generation(ns.state("fresh"))
    );
    assert_eq!(without_generation(ns.state(TABLE)), expected(&next));
}

#[tokio::test]
async fn failed_transaction_leaves_the_table_and_reports_nft_stderr() {
    let Some(ns) = Netns::create("failed_transaction_leaves_the_table") else {
        return;
    };
    let tee = Tee::new(&ns);
    let mut dp = DataPath::open(TABLE, tee.clone()).await.unwrap();
    dp.apply(&ctx(), &snapshot(1, two_web_endpoints()))
        .await
        .unwrap();
    let before = ns.nft(&format!("list table ip {TABLE}")).unwrap();

    tee.corrupt.store(true, Ordering::SeqCst);
    let err = dp.apply(&ctx(), &snapshot(2, vec![])).await.unwrap_err();
    let stderr = err.nft_stderr().expect("nft's own message");
    assert!(stderr.contains("no-such-chain"), "{stderr}");
    assert_eq!(
        ns.nft(&format!("list table ip {TABLE}")).unwrap(),
        before,
        "atomic: nothing changed"
    );

    // The next attempt reconciles from the live table and succeeds.
    dp.apply(&ctx(), &snapshot(2, vec![])).await.unwrap();
    assert_eq!(
        without_generation(ns.state(TABLE)),
        expected(&snapshot(2, vec![]))
    );
}

/// The agent's own runner sends deltas over netlink: a delta the kernel
/// refuses names the refused command, changes nothing, and the next apply
/// repairs the table from a fresh read.
#[tokio::test]
async fn refused_netlink_delta_names_the_command_and_changes_nothing() {
    let Some(ns) = Netns::create("refused_netlink_delta_names_the_command") else {
        return;
    };
    let mut dp = DataPath::open(TABLE, ns.runner()).await.unwrap();
    dp.apply(&ctx(), &snapshot(1, two_web_endpoints()))
        .await
        .unwrap();
    // Someone else takes the key the next delta adds, with another verdict.
    ns.nft(&format!(
        "add element ip {TABLE} no-endpoint-services {{ 10.96.0.10 . tcp . 80 : drop }}"
    ))
    .unwrap();
    let before = ns.nft(&format!("list table ip {TABLE}")).unwrap();

    let web = std::collections::BTreeSet::from([ServiceKey::new("default", "web")]);
    let err = dp
        .apply_changes(&ctx(), &snapshot(2, vec![]), &web)
        .await
        .unwrap_err();
    let stderr = err.nft_stderr().expect("the kernel's refusal");
    assert!(
        stderr.starts_with(&format!(
            "add element ip {TABLE} no-endpoint-services {{ 10.96.0.10 . tcp . 80 : goto reject-chain"
        )),
        "{stderr}"
    );
    assert!(stderr.ends_with(": File exists"), "{stderr}");
    assert_eq!(
        ns.nft(&format!("list table ip {TABLE}")).unwrap(),
        before,
        "atomic: nothing changed"
    );

    dp.apply_changes(&ctx(), &snapshot(2, vec![]), &web)
        .await
        .unwrap();
    assert_eq!(
        without_generation(ns.state(TABLE)),
        expected(&snapshot(2, vec![]))
    );
}

#[tokio::test]
async fn drift_is_detected_cheaply_and_repaired() {
    let Some(ns) = Netns::create("drift_is_detected_cheaply_and_repaired") else {
        return;
    };
    let tee = Tee::new(&ns);
    let mut dp = DataPath::open(TABLE, tee.clone()).await.unwrap();
    let snap = snapshot(1, two_web_endpoints());
    dp.apply(&ctx(), &snap).await.unwrap();
    assert!(!dp.check_drift().await.unwrap());
    assert!(!dp.repair_if_drifted(&ctx(), &snap).await.unwrap());

    for vandalism in [
        format!("delete table ip {TABLE}"),
        "flush ruleset".to_owned(),
        format!("flush set ip {TABLE} canary"),
    ] {
        ns.nft(&vandalism).unwrap();
        assert!(dp.check_drift().await.unwrap(), "{vandalism} not noticed");
        assert!(dp.repair_if_drifted(&ctx(), &snap).await.unwrap());
        assert!(
            !dp.check_drift().await.unwrap(),
            "still drifted after {vandalism}"
        );
        assert_eq!(
            without_generation(ns.state(TABLE)),
            expected(&snap),
            "after {vandalism}"
        );
    }

    // Edits the canary cannot see are found by a full resync, from a
    // listing taken off the caller's loop.
    let chain = compile(&ctx(), &snap)
        .chains
        .keys()
        .find(|c| c.starts_with("svc-"))
        .cloned()
        .unwrap();
    ns.nft(&format!("flush chain ip {TABLE} {chain}")).unwrap();
    tee.take();
    let live = dp.read_live_later().await.unwrap();
    let stats = dp.resync_from(&ctx(), &snap, live).await.unwrap().unwrap();
    assert_eq!(stats.chains_rewritten, 1, "{stats:?}");
    assert_eq!(tee.take().len(), 1);
    assert_eq!(without_generation(ns.state(TABLE)), expected(&snap));
    let live = dp.read_live_later().await.unwrap();
    let stats = dp.resync_from(&ctx(), &snap, live).await.unwrap().unwrap();
    assert!(stats.is_empty(), "{stats:?}");
    assert!(
        tee.take().is_empty(),
        "an intact table needs no transaction"
    );

    // A listing taken before an apply is out of date: it repairs nothing.
    let before = dp.read_live_later().await.unwrap();
    let next = snapshot(2, vec![endpoint([10, 244, 1, 5], "node-a")]);
    dp.apply(&ctx(), &next).await.unwrap();
    tee.take();
    assert_eq!(dp.resync_from(&ctx(), &next, before).await.unwrap(), None);
    assert!(tee.take().is_empty());
    assert_eq!(without_generation(ns.state(TABLE)), expected(&next));

    // After a failed transaction the listing is the truth: the resync
    // applies the snapshot that failed, without waiting for another push.
    let third = snapshot(3, two_web_endpoints());
    tee.corrupt.store(true, Ordering::SeqCst);
    dp.apply(&ctx(), &third).await.unwrap_err();
    assert_eq!(without_generation(ns.state(TABLE)), expected(&next));
    let live = dp.read_live_later().await.unwrap();
    let stats = dp.resync_from(&ctx(), &third, live).await.unwrap().unwrap();
    assert!(!stats.is_empty(), "{stats:?}");
    assert_eq!(without_generation(ns.state(TABLE)), expected(&third));
    let next = third;

    // The synchronous resync (drift repair) finds the same edits.
    ns.nft(&format!("flush chain ip {TABLE} {chain}")).unwrap();
    let stats = dp.resync(&ctx(), &next).await.unwrap();
    assert_eq!(stats.chains_rewritten, 1, "{stats:?}");
    assert_eq!(without_generation(ns.state(TABLE)), expected(&next));
}

#[tokio::test]
async fn restart_reconciles_without_touching_an_intact_table() {
    let Some(ns) = Netns::create("restart_reconciles") else {
        return;
    };
    let snap = snapshot(1, two_web_endpoints());
    let mut first = DataPath::open(TABLE, ns.runner()).await.unwrap();
    first.apply(&ctx(), &snap).await.unwrap();
    let generation = first.generation();
    drop(first);

    let tee = Tee::new(&ns);
    let mut restarted = DataPath::open(TABLE, tee.clone()).await.unwrap();
    assert_eq!(restarted.generation(), generation);
    assert!(
        restarted.plan(&ctx(), &snap).is_empty(),
        "{}",
        restarted.plan(&ctx(), &snap).script()
    );
    assert!(restarted.apply(&ctx(), &snap).await.unwrap().is_empty());
    assert!(
        tee.take().is_empty(),
        "an intact table needs no transaction"
    );
    assert!(!restarted.check_drift().await.unwrap());

    // A restart that finds an older table applies just the difference:
    // one endpoint fewer changes backend ranges, never the chain's rule.
    let next = snapshot(2, vec![endpoint([10, 244, 1, 5], "node-a")]);
    let stats = restarted.apply(&ctx(), &next).await.unwrap();
    assert!(
        stats.elements_deleted > 0 && stats.chains_created == 0 && stats.chains_rewritten == 0,
        "{stats:?}"
    );
    assert_eq!(without_generation(ns.state(TABLE)), expected(&next));
}

#[tokio::test]
async fn absent_table_is_created_and_other_tables_are_left_alone() {
    let Some(ns) = Netns::create("absent_table_is_created") else {
        return;
    };
    ns.nft("add table ip other").unwrap();
    ns.nft("add chain ip other c").unwrap();
    let mut dp = DataPath::open(TABLE, ns.runner()).await.unwrap();
    assert!(dp
        .plan(&ctx(), &Snapshot::default())
        .script()
        .starts_with("add table ip switchyard\n"));
    dp.apply(&ctx(), &Snapshot::default()).await.unwrap();
    assert!(ns.nft("list chain ip other c").is_ok());
    assert_eq!(ns.state(TABLE).generation, Some(1));
}

#[tokio::test]
async fn a_table_with_one_key_per_endpoint_maps_is_upgraded_in_place() {
    let Some(ns) = Netns::create("upgrade_backend_maps") else {
        return;
    };
    let snap = snapshot(1, two_web_endpoints());
    DataPath::open(TABLE, ns.runner())
        .await
        .unwrap()
        .apply(&ctx(), &snap)
        .await
        .unwrap();
    // Rewrite a Service chain the way agents before backend ranges did: a
    // hash map keyed by one numgen value per endpoint.
    let desired = compile(&ctx(), &snap);
    let chain = desired
        .chains
        .keys()
        .find(|c| c.starts_with("svc-"))
        .unwrap();
    for command in [
        "add map ip switchyard backends-tcp-19 { typeof numgen random mod 1 : ip daddr . tcp dport ; }".to_owned(),
        "add element ip switchyard backends-tcp-19 { 0 : 10.244.1.5 . 8080 , 1 : 10.244.2.5 . 8080 }".to_owned(),
        format!("flush chain ip switchyard {chain}"),
        format!("add rule ip switchyard {chain} meta l4proto tcp dnat ip to numgen random mod 2 map @backends-tcp-19"),
    ] {
        ns.nft(&command).unwrap();
    }

    let mut upgraded = DataPath::open(TABLE, ns.runner()).await.unwrap();
    let stats = upgraded.apply(&ctx(), &snap).await.unwrap();
    assert_eq!(stats.chains_rewritten, 1, "{stats:?}");
    assert!(ns.nft("list map ip switchyard backends-tcp-19").is_err());
    assert_eq!(without_generation(ns.state(TABLE)), expected(&snap));
}
