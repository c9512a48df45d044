//! `systemctl restart` of an agent drops no DNS query: the agent runs as a
//! `Type=notify` service under a fake systemd (the lab's
//! [`ServiceManager`]) that keeps the sockets it stores and passes them to
//! the next start, and is stopped, then started, five times while a pod
//! asks the cluster DNS address every 5 ms. No process reads the sockets
//! between the stop and the start; the queries wait in them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::Duration;

use e2e::*;
use switchyard_lab::{DnsQueries, DnsTally, ServiceManager};

const CLUSTER_DNS: &str = "10.96.0.10";
/// What the unit is to have: room for dns-udp, dns-tcp, healthz, metrics
/// and as many again.
const FILE_DESCRIPTOR_STORE_MAX: usize = 8;
/// glibc's resolver timeout: a query the agent answers within it was not
/// lost (the stop-to-start gap includes the new agent's first snapshot).
const RESOLVER_TIMEOUT_MS: u32 = 5000;
/// How often the query loop reports its answers.
const PROGRESS_EVERY: u64 = 10;
/// Answers from each agent before it is restarted (~0.25 s of queries).
const ANSWERS_BETWEEN_RESTARTS: u64 = 50;

#[test]
fn dns_answers_every_query_across_five_systemctl_restarts() {
    let Some(mut c) = cluster(
        "dns_answers_every_query_across_five_systemctl_restarts",
        &[],
    ) else {
        return;
    };
    let many: String = (0..500)
        .map(|i| service_yaml(&format!("svc-{i}"), ""))
        .collect::<Vec<_>>()
        .join("---\n");
    c.apply(&many).unwrap();
    c.wait_synced(Duration::from_secs(30)).unwrap();

    // Node 1's agent as systemd's service: the first start binds, stores.
    let mut systemd = ServiceManager::bind(
        &c.lab.log_dir().join("notify-agent-1.sock"),
        FILE_DESCRIPTOR_STORE_MAX,
    )
    .unwrap();
    c.stop_agent(1);
    c.start_agent_as_service(1, &mut systemd).unwrap();
    let mut stored = systemd.stored_names();
    stored.sort();
    assert_eq!(
        stored,
        ["dns-tcp", "dns-udp", "healthz"],
        "{}",
        c.agent_log(1)
    );

    let server = format!("{CLUSTER_DNS}:53");
    let progress = PROGRESS_EVERY.to_string();
    let queries = DnsQueries::start(
        &c,
        (1, 2),
        &server,
        "svc-499.default.svc.cluster.local",
        RESOLVER_TIMEOUT_MS,
        &["--progress-every", &progress],
    )
    .unwrap();
    let queries_child = queries.child();
    queries_child
        .wait_for_log(DnsTally::FIRST_ANSWER, Duration::from_secs(10))
        .unwrap();
    // Each agent answers a while before the next restart: a restart takes
    // tens of milliseconds, and back to back the queries would mostly
    // find no agent at all.
    let answers_between_restarts = |queries: &switchyard_lab::ChildGuard| {
        let so_far = DnsTally::answered_so_far(&queries.log());
        let target = (so_far / PROGRESS_EVERY + 1) * PROGRESS_EVERY + ANSWERS_BETWEEN_RESTARTS;
        queries
            .wait_for_log(
                &format!("{}\n", DnsTally::progress_line(target)),
                Duration::from_secs(30),
            )
            .unwrap();
    };
    answers_between_restarts(queries_child);

    for restart in 1..=5 {
        c.restart_agent_as_service(1, &mut systemd)
            .unwrap_or_else(|e| panic!("restart {restart}: {e}"));
        let log = c.agent_log(1);
        assert!(
            log.contains("took sockets from the service manager")
                && log.contains("answering DNS on the sockets passed to this agent"),
            "restart {restart}: the new agent did not take the stored sockets:\n{log}"
        );
        let mut stored = systemd.stored_names();
        stored.sort();
        assert_eq!(
            stored,
            ["dns-tcp", "dns-udp", "healthz"],
            "restart {restart}"
        );
        answers_between_restarts(queries_child);
    }
    // Every stop said STOPPING=1 and every start READY=1, each from the
    // service's main process (the fake hears no one else).
    let said = |line: &str| {
        systemd
            .heard()
            .iter()
            .filter(|(_, m)| m.lines().any(|l| l == line))
            .count()
    };
    assert_eq!(said("READY=1"), 6, "{:?}", systemd.heard());
    assert_eq!(said("STOPPING=1"), 5, "{:?}", systemd.heard());

    let (tally, log) = queries.finish().unwrap();
    println!("across 5 systemctl restarts: {tally}");
    assert_eq!(tally.unanswered, 0, "{log}");
    assert_eq!(tally.failed, 0, "{log}");
    assert!(
        tally.queries >= 200,
        "too few queries to show anything:\n{log}"
    );
}

/// A unit whose `--healthz-listen` changed: the stored socket, on the old
/// address, would hold the port the new one binds (0.0.0.0:10256 blocks
/// <node-ip>:10256); the agent closes it, takes it out of the store and
/// stores the new one, and DNS keeps its sockets.
#[test]
fn a_stored_socket_the_agent_no_longer_listens_on_leaves_the_store() {
    let Some(mut c) = cluster(
        "a_stored_socket_the_agent_no_longer_listens_on_leaves_the_store",
        &[],
    ) else {
        return;
    };
    let mut systemd = ServiceManager::bind(
        &c.lab.log_dir().join("notify-agent-1.sock"),
        FILE_DESCRIPTOR_STORE_MAX,
    )
    .unwrap();
    c.stop_agent(1);
    c.start_agent_as_service(1, &mut systemd).unwrap();
    let addr = |systemd: &ServiceManager, name: &str| {
        let stored: Vec<_> = systemd
            .stored_addrs()
            .into_iter()
            .filter(|(n, _)| n == name)
            .collect();
        assert_eq!(stored.len(), 1, "{name}: {stored:?}");
        stored[0].1.unwrap()
    };
    assert_eq!(addr(&systemd, "healthz").to_string(), "0.0.0.0:10256");
    let dns = addr(&systemd, "dns-udp");

    let node_ip = c.lab.node(1).ip.to_string();
    let healthz = format!("{node_ip}:10256");
    c.stop_agent_as_service(1, &mut systemd, Duration::from_secs(10))
        .unwrap();
    c.start_agent_as_service_with(1, &mut systemd, &["--healthz-listen", &healthz])
        .unwrap();
    let log = c.agent_log(1);
    assert!(
        log.contains(
            "closing sockets the service manager passed that this agent does not listen on"
        ),
        "{log}"
    );
    assert!(!log.contains("cannot listen for /healthz"), "{log}");
    assert!(
        log.contains("answering DNS on the sockets passed to this agent"),
        "{log}"
    );
    assert_eq!(addr(&systemd, "healthz").to_string(), healthz);
    assert_eq!(addr(&systemd, "dns-udp"), dns);
    let node = c.lab.node(1).ns.clone();
    probe(&c, &node, &format!("http://{healthz}/healthz"))
        .unwrap_or_else(|code| panic!("curl /healthz failed ({code}):\n{log}"));
}
