//! The nftables data path against a real kernel, inside throwaway network
//! namespaces (never the root namespace's nftables or addresses).
//!
//! Needs root. Without it each test prints `SKIPPED` and passes, unless
//! `SWITCHYARD_E2E=1`, which turns the skip into a failure (CI sets it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use support::Netns;
use switchyard_agent::model::*;
use switchyard_agent::nft::{layout, DataPath, NftCommand, NftError, NftRunner, Transaction};

const TABLE: &str = "switchyard";

// === runners ===

/// Real nft, recording every script (full loads) and optionally corrupting
/// the next transaction.
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

    /// Changes go over netlink as the agent's do, unrecorded, unless the
    /// next one is to fail.
    async fn apply(&self, tx: &Transaction) -> Result<(), NftError> {
        match self.corrupt.load(Ordering::SeqCst) {
            true => self.run_script(&tx.script()).await,
            false => self.inner.apply(tx).await,
        }
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

/// Whether the live table holds exactly what `snap` compiles to.
fn holds(ns: &Netns, snap: &Snapshot) -> bool {
    ns.live(TABLE)
        .holds(&layout::compile(&ctx(), snap), ctx().pod_cidr)
}

fn keys(names: &[&str]) -> BTreeSet<ServiceKey> {
    names
        .iter()
        .map(|n| ServiceKey::new("default", *n))
        .collect()
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

    let cluster = ns.nft(&format!("list set ip {TABLE} cluster-ips")).unwrap();
    for element in ["10.96.0.10 . tcp . 80", "10.96.0.10 . udp . 53"] {
        assert!(cluster.contains(element), "missing {element} in\n{cluster}");
    }
    let external = ns
        .nft(&format!("list set ip {TABLE} external-ips"))
        .unwrap();
    assert!(external.contains("203.0.113.7 . tcp . 80"), "{external}");
    let local = ns
        .nft(&format!("list set ip {TABLE} external-ips-local"))
        .unwrap();
    assert!(local.contains("198.51.100.1 . tcp . 80"), "{local}");
    let rejects = ns.nft(&format!("list set ip {TABLE} reject-ips")).unwrap();
    assert!(rejects.contains("10.96.0.12 . tcp . 80"), "{rejects}");
    let rejects = ns
        .nft(&format!("list set ip {TABLE} reject-node-ports"))
        .unwrap();
    assert!(rejects.contains("tcp . 30082"), "{rejects}");
    let sticky = ns
        .nft(&format!("list set ip {TABLE} affinity-600"))
        .unwrap();
    assert!(sticky.contains("10.96.0.11 . tcp . 80"), "{sticky}");

    // Everything reads back as written: chains, rule counts, elements.
    assert!(holds(&ns, &snap));
    assert_eq!(ns.live(TABLE).generation, Some(dp.generation()));
}

#[tokio::test]
async fn a_change_is_only_its_elements_and_equals_a_fresh_apply() {
    let Some(ns) = Netns::create("a_change_is_only_its_elements") else {
        return;
    };
    let tee = Tee::new(&ns);
    let mut dp = DataPath::open(TABLE, tee.clone()).await.unwrap();
    dp.apply(&ctx(), &snapshot(1, two_web_endpoints()))
        .await
        .unwrap();
    tee.take();
    let chains = ns.live(TABLE).chains;

    // This node's web endpoint replaced: its DNAT targets (both ports at
    // the ClusterIP and the external IP, and the NodePort) and its hairpin
    // pair change, nothing else.
    let next = snapshot(
        2,
        vec![
            endpoint([10, 244, 1, 6], "node-a"),
            endpoint([10, 244, 2, 7], "node-b"),
        ],
    );
    let stats = dp
        .apply_changes(&ctx(), &next, &keys(&["web"]))
        .await
        .unwrap();
    assert_eq!(
        (stats.elements_added, stats.elements_deleted),
        (6, 6),
        "{stats:?}"
    );
    assert_eq!(stats.chains_rewritten, 0, "{stats:?}");
    assert!(
        tee.take().is_empty(),
        "the change went over netlink, not nft -f"
    );
    assert_eq!(ns.live(TABLE).chains, chains, "no chain or rule changed");
    assert!(holds(&ns, &next));

    // The same table as a fresh full load of `next`.
    let mut fresh = DataPath::open("fresh", ns.runner()).await.unwrap();
    fresh.apply(&ctx(), &next).await.unwrap();
    assert_eq!(ns.live(TABLE).table, ns.live("fresh").table);
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

    // The next attempt succeeds.
    dp.apply(&ctx(), &snapshot(2, vec![])).await.unwrap();
    assert!(holds(&ns, &snapshot(2, vec![])));
}

/// The agent's own runner sends changes over netlink: a change the kernel
/// refuses names the refused command, changes nothing, and the next apply
/// loads the table in full.
#[tokio::test]
async fn a_refused_netlink_change_names_the_command_and_changes_nothing() {
    let Some(ns) = Netns::create("a_refused_netlink_change") else {
        return;
    };
    let mut dp = DataPath::open(TABLE, ns.runner()).await.unwrap();
    dp.apply(&ctx(), &snapshot(1, two_web_endpoints()))
        .await
        .unwrap();
    // Someone else takes the slot the next change adds, with another target.
    ns.nft(&format!(
        "add element ip {TABLE} service-backends {{ 10.96.0.10 . tcp . 80 . 65536 : 192.0.2.1 . 80 }}"
    ))
    .unwrap();
    let before = ns.nft(&format!("list table ip {TABLE}")).unwrap();

    let one = snapshot(2, vec![endpoint([10, 244, 1, 5], "node-a")]);
    let err = dp
        .apply_changes(&ctx(), &one, &keys(&["web"]))
        .await
        .unwrap_err();
    let stderr = err.nft_stderr().expect("the kernel's refusal");
    assert!(
        stderr.starts_with(&format!("add element ip {TABLE} service-backends {{ ")),
        "{stderr}"
    );
    assert!(stderr.ends_with(": File exists"), "{stderr}");
    assert_eq!(
        ns.nft(&format!("list table ip {TABLE}")).unwrap(),
        before,
        "atomic: nothing changed"
    );

    dp.apply_changes(&ctx(), &one, &keys(&["web"]))
        .await
        .unwrap();
    assert!(holds(&ns, &one));
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
        assert!(holds(&ns, &snap), "after {vandalism}");
    }

    // Edits the canary cannot see are found by a full resync, from a
    // listing taken off the caller's loop: a chain edited by hand makes it
    // rewrite the table (one nft -f), an element deleted by hand is added
    // back alone (over netlink).
    for (vandalism, scripts) in [
        (format!("flush chain ip {TABLE} services"), 1),
        (
            format!("delete element ip {TABLE} cluster-ips {{ 10.96.0.10 . tcp . 80 }}"),
            0,
        ),
    ] {
        ns.nft(&vandalism).unwrap();
        tee.take();
        let live = dp.read_live_later().await.unwrap();
        let stats = dp.resync_from(&ctx(), &snap, live).await.unwrap().unwrap();
        assert!(!stats.is_empty(), "{vandalism}: {stats:?}");
        assert_eq!(tee.take().len(), scripts, "{vandalism}");
        assert!(holds(&ns, &snap), "after {vandalism}");
    }
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
    dp.apply_changes(&ctx(), &next, &keys(&["web"]))
        .await
        .unwrap();
    assert_eq!(dp.resync_from(&ctx(), &next, before).await.unwrap(), None);
    assert!(tee.take().is_empty());
    assert!(holds(&ns, &next));

    // After a failed transaction the resync applies the snapshot that
    // failed, without waiting for another push.
    let third = snapshot(3, two_web_endpoints());
    tee.corrupt.store(true, Ordering::SeqCst);
    dp.apply(&ctx(), &third).await.unwrap_err();
    assert!(holds(&ns, &next));
    let live = dp.read_live_later().await.unwrap();
    let stats = dp.resync_from(&ctx(), &third, live).await.unwrap().unwrap();
    assert!(!stats.is_empty(), "{stats:?}");
    assert!(holds(&ns, &third));
}

#[tokio::test]
async fn a_restart_keeps_an_intact_table_and_the_remembered_clients() {
    let Some(ns) = Netns::create("a_restart_keeps_an_intact_table") else {
        return;
    };
    let snap = snapshot(1, two_web_endpoints());
    let mut first = DataPath::open(TABLE, ns.runner()).await.unwrap();
    first.apply(&ctx(), &snap).await.unwrap();
    let generation = first.generation();
    drop(first);
    // A client the kernel remembered for the affinity Service.
    let remembered = "192.0.2.1 . 10.96.0.11 . tcp . 80 timeout 10m : 10.244.1.9 . 8080";
    ns.nft(&format!(
        "add element ip {TABLE} affinity {{ {remembered} }}"
    ))
    .unwrap();

    let tee = Tee::new(&ns);
    let mut restarted = DataPath::open(TABLE, tee.clone()).await.unwrap();
    assert_eq!(restarted.generation(), generation);
    assert!(restarted.apply(&ctx(), &snap).await.unwrap().is_empty());
    assert!(
        tee.take().is_empty(),
        "an intact table needs no transaction"
    );
    assert!(!restarted.check_drift().await.unwrap());

    // A restart that finds an older table sends just the differing
    // elements; the clients it remembers stay.
    let tee = Tee::new(&ns);
    let mut again = DataPath::open(TABLE, tee.clone()).await.unwrap();
    let next = snapshot(2, vec![endpoint([10, 244, 1, 5], "node-a")]);
    let stats = again.apply(&ctx(), &next).await.unwrap();
    assert!(
        stats.elements_deleted > 0 && stats.chains_rewritten == 0,
        "{stats:?}"
    );
    assert!(tee.take().is_empty(), "no nft -f");
    assert!(holds(&ns, &next));
    let affinity = ns.nft(&format!("list map ip {TABLE} affinity")).unwrap();
    assert!(
        affinity.contains("192.0.2.1 . 10.96.0.11 . tcp . 80"),
        "{affinity}"
    );
}

#[tokio::test]
async fn clients_remembered_on_a_removed_backend_are_forgotten() {
    let Some(ns) = Netns::create("clients_remembered_on_a_removed_backend") else {
        return;
    };
    let mut dp = DataPath::open(TABLE, ns.runner()).await.unwrap();
    dp.apply(&ctx(), &snapshot(1, two_web_endpoints()))
        .await
        .unwrap();
    for client in [
        "192.0.2.1 . 10.96.0.11 . tcp . 80 timeout 10m : 10.244.1.9 . 8080",
        "192.0.2.2 . 10.96.0.11 . tcp . 80 timeout 10m : 10.244.2.9 . 8080",
        "192.0.2.3 . 192.168.1.10 . tcp . 30081 timeout 10m : 10.244.2.9 . 8080",
    ] {
        ns.nft(&format!("add element ip {TABLE} affinity {{ {client} }}"))
            .unwrap();
    }
    let mut next = snapshot(2, two_web_endpoints());
    let local = next
        .services
        .get_mut(&ServiceKey::new("default", "local"))
        .unwrap();
    local
        .endpoints
        .retain(|e| e.ip == Ipv4Addr::new(10, 244, 1, 9));
    dp.apply_changes(&ctx(), &next, &keys(&["local"]))
        .await
        .unwrap();
    let affinity = ns.nft(&format!("list map ip {TABLE} affinity")).unwrap();
    assert!(affinity.contains("192.0.2.1 . 10.96.0.11"), "{affinity}");
    assert!(!affinity.contains("192.0.2.2"), "{affinity}");
    assert!(!affinity.contains("192.0.2.3"), "{affinity}");
}

#[tokio::test]
async fn absent_table_is_created_and_other_tables_are_left_alone() {
    let Some(ns) = Netns::create("absent_table_is_created") else {
        return;
    };
    ns.nft("add table ip other").unwrap();
    ns.nft("add chain ip other c").unwrap();
    let mut dp = DataPath::open(TABLE, ns.runner()).await.unwrap();
    dp.apply(&ctx(), &Snapshot::default()).await.unwrap();
    assert!(ns.nft("list chain ip other c").is_ok());
    assert_eq!(ns.live(TABLE).generation, Some(1));
    assert!(holds(&ns, &Snapshot::default()));
}

/// An agent of the per-Service-chain layout left its table: the new one
/// replaces it whole, leaving none of its chains or maps behind.
#[tokio::test]
async fn an_older_agents_table_is_replaced() {
    let Some(ns) = Netns::create("an_older_agents_table_is_replaced") else {
        return;
    };
    for command in [
        format!("add table ip {TABLE}"),
        format!("add map ip {TABLE} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; }}"),
        format!("add chain ip {TABLE} svc-85208ae619feec63"),
        format!("add element ip {TABLE} service-ips {{ 10.96.0.10 . tcp . 80 : goto svc-85208ae619feec63 }}"),
        format!("add chain ip {TABLE} services"),
        format!("add rule ip {TABLE} services ip daddr . meta l4proto . th dport vmap @service-ips"),
    ] {
        ns.nft(&command).unwrap();
    }
    let snap = snapshot(1, two_web_endpoints());
    let mut dp = DataPath::open(TABLE, ns.runner()).await.unwrap();
    dp.apply(&ctx(), &snap).await.unwrap();
    assert!(holds(&ns, &snap));
    let live = ns.live(TABLE);
    assert!(!live.sets.contains("service-ips"), "{:?}", live.sets);
    assert!(!live.chains.contains_key("svc-85208ae619feec63"));
}

/// Someone else's table of the same name is not ours to delete: loading
/// into it fails with the kernel's words and leaves it as it was.
#[tokio::test]
async fn a_foreign_object_in_the_way_is_refused_not_deleted() {
    let Some(ns) = Netns::create("a_foreign_object_in_the_way") else {
        return;
    };
    ns.nft(&format!("add table ip {TABLE}")).unwrap();
    ns.nft(&format!(
        "add set ip {TABLE} cluster-ips {{ type inet_service; }}"
    ))
    .unwrap();
    let mut dp = DataPath::open(TABLE, ns.runner()).await.unwrap();
    let err = dp
        .apply(&ctx(), &snapshot(1, two_web_endpoints()))
        .await
        .unwrap_err();
    let stderr = err.nft_stderr().unwrap();
    assert!(stderr.contains("@cluster-ips"), "{stderr}");
    let listing = ns.nft(&format!("list set ip {TABLE} cluster-ips")).unwrap();
    assert!(listing.contains("type inet_service"), "{listing}");
}
