//! What happens when things break, end to end on the namespace lab: agent
//! restarts under load, a control-plane outage, missed deletions, someone
//! deleting the agent's table, and per-node sync status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::{Duration, Instant};

use e2e::*;

#[test]
fn agent_restart_under_load_fails_no_request() {
    let Some(mut c) = cluster("agent_restart_under_load_fails_no_request", &[]) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "  type: NodePort\n");
    let node_url = format!("http://{}:{}/", c.lab.node(1).ip, node_port(&c, "web"));
    let from_pod = request_loop(&c, &c.lab.pod(1, 2).ns, &url, 60, "0.05");
    let from_client = request_loop(&c, &c.lab.client().ns, &node_url, 60, "0.05");
    std::thread::sleep(Duration::from_millis(500));
    c.stop_agent(1);
    std::thread::sleep(Duration::from_millis(500));
    c.start_agent(1).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    for (what, guard) in [("pod", &from_pod), ("client", &from_client)] {
        let log = loop_result(guard);
        assert_eq!(
            log.matches("ok").count(),
            60,
            "failed requests from {what}:\n{log}"
        );
        assert!(!log.contains("FAIL"), "{what}:\n{log}");
    }
    assert!(c.agent_log(1).contains("applied"), "{}", c.agent_log(1));
}

#[test]
fn data_path_survives_a_control_plane_outage_and_resyncs() {
    let Some(mut c) = cluster("data_path_survives_a_control_plane_outage_and_resyncs", &[]) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    c.stop_control_plane();
    let during = request_loop(&c, &c.lab.pod(2, 2).ns, &url, 30, "0.1");
    let log = loop_result(&during);
    assert_eq!(
        log.matches("ok").count(),
        30,
        "requests failed while the control plane was down:\n{log}"
    );
    let nodes = c.swctl(&["get", "nodes"]).unwrap();
    assert!(
        !nodes.status.success(),
        "swctl should fail while the control plane is down"
    );

    c.start_control_plane().unwrap();
    c.wait_synced(Duration::from_secs(20)).unwrap();
    c.apply(&service_yaml("web-after", "")).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let after = format!("http://{}/", cluster_ip(&c, "web-after"));
    assert!(curl(&c, &c.lab.pod(1, 2).ns, &after)
        .unwrap()
        .starts_with("web-"));
}

#[test]
fn a_restarted_agent_drops_services_deleted_while_it_was_away() {
    let Some(mut c) = cluster(
        "a_restarted_agent_drops_services_deleted_while_it_was_away",
        &[],
    ) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    let from = c.lab.pod(1, 2).ns.clone();
    c.stop_agent(1);
    c.swctl_ok(&["delete", "svc", "web"]).unwrap();
    // The stopped agent's table still serves the old service.
    assert!(curl(&c, &from, &url).is_ok());
    c.start_agent(1).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    eventually(
        "the deleted service disappears from node 1",
        Duration::from_secs(5),
        || curl(&c, &from, &url).is_err(),
    );
}

#[test]
fn a_deleted_table_is_repaired_within_seconds() {
    let Some(c) = cluster("a_deleted_table_is_repaired_within_seconds", &[]) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    let node = c.lab.node(1).ns.clone();
    c.lab
        .exec_ok(&node, &["nft", "delete", "table", "ip", "switchyard"])
        .unwrap();
    // Whether a request lands before the repair is a race (the drift check
    // runs every 2 s); the agent's log says the table was missing.
    let started = Instant::now();
    eventually(
        "the agent restores its table",
        Duration::from_secs(6),
        || curl(&c, &c.lab.pod(1, 2).ns, &url).is_ok(),
    );
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(c.agent_log(1).contains("repaired"), "{}", c.agent_log(1));
}

#[test]
fn a_hand_edited_chain_is_repaired_by_the_periodic_full_resync() {
    let Some(c) = cluster_with(
        "a_hand_edited_chain_is_repaired_by_the_periodic_full_resync",
        &[],
        &["--full-resync-seconds", "1"],
    ) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    let node = c.lab.node(1).ns.clone();
    let table = c
        .lab
        .exec_ok(&node, &["nft", "list", "table", "ip", "switchyard"])
        .unwrap();
    assert!(table.contains("chain services {"), "{table}");
    let repaired = "periodic full resync repaired the table";
    assert!(!c.agent_log(1).contains(repaired), "{}", c.agent_log(1));

    // An emptied chain keeps the canary: only a full resync sees it.
    c.lab
        .exec_ok(
            &node,
            &["nft", "flush", "chain", "ip", "switchyard", "services"],
        )
        .unwrap();
    eventually(
        "the full resync repairs the chains",
        Duration::from_secs(10),
        || c.agent_log(1).contains(repaired),
    );
    let restored = c
        .lab
        .exec_ok(&node, &["nft", "list", "table", "ip", "switchyard"])
        .unwrap();
    // The repair moved the canary to a new generation; all else is as it was.
    let without_canary = |listing: &str| {
        listing
            .lines()
            .filter(|l| !l.trim().starts_with("elements = { 0x"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_canary(&restored), without_canary(&table));
    assert_ne!(restored, table, "the repair wrote a new generation");
    assert_eq!(
        curl(&c, &c.lab.pod(1, 2).ns, &url).map(|body| !body.is_empty()),
        Ok(true)
    );
}

#[test]
fn get_nodes_reports_sync_state() {
    let Some(mut c) = cluster("get_nodes_reports_sync_state", &[]) else {
        return;
    };
    let out = c.swctl_ok(&["get", "nodes"]).unwrap();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        vec!["NAME", "STATUS", "SYNC", "ADDRESSES", "VERSION", "AGE"]
    );
    assert_eq!(rows[1][..4], ["node-1", "Ready", "SYNCED", "172.18.0.11"]);
    assert_eq!(rows[2][..4], ["node-2", "Ready", "SYNCED", "172.18.0.12"]);
    c.stop_agent(2);
    eventually("node-2 shows DISCONNECTED", Duration::from_secs(5), || {
        c.swctl_ok(&["get", "nodes", "node-2", "--no-headers"])
            .unwrap()
            .contains("DISCONNECTED")
    });
}

#[test]
fn sigterm_stops_the_control_plane_within_5s_whatever_is_open() {
    let Some(mut c) = cluster(
        "sigterm_stops_the_control_plane_within_5s_whatever_is_open",
        &[],
    ) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    // A reconnected agent, a watch and a port-forward keep streams open.
    c.stop_agent(1);
    c.start_agent(1).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let mut watch = c.swctl_command();
    watch.extend(["get", "svc", "-w"].map(String::from));
    let _watch = c.lab.spawn(&c.lab.control_plane().ns, &watch).unwrap();
    let mut forward = c.swctl_command();
    forward.extend(["port-forward", "svc/web", "18080:80"].map(String::from));
    let fwd = c.lab.spawn(&c.lab.control_plane().ns, &forward).unwrap();
    fwd.wait_for_log("Forwarding from", Duration::from_secs(10))
        .unwrap();
    let held = c
        .lab
        .spawn(
            &c.lab.control_plane().ns,
            &[
                "bash",
                "-c",
                "exec 3<>/dev/tcp/127.0.0.1/18080 && echo held && sleep 30",
            ],
        )
        .unwrap();
    held.wait_for_log("held", Duration::from_secs(10)).unwrap();
    fwd.wait_for_log("Handling connection for 18080", Duration::from_secs(10))
        .unwrap();

    let pid = c.control_plane_pid().unwrap();
    let sent = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    while c.control_plane_running() {
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "the control plane was still running 5 s after SIGTERM:\n{}",
            c.control_plane_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        c.control_plane_log().contains("shut down cleanly"),
        "{}",
        c.control_plane_log()
    );
    drop(held);

    // The data path never noticed; the agents come back by themselves.
    assert!(curl(&c, &c.lab.pod(2, 2).ns, &url)
        .unwrap()
        .starts_with("web-"));
    c.start_control_plane().unwrap();
    c.wait_synced(Duration::from_secs(20)).unwrap();
    c.apply(&service_yaml("web-after-restart", "")).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let after = format!("http://{}/", cluster_ip(&c, "web-after-restart"));
    assert!(curl(&c, &c.lab.pod(1, 2).ns, &after)
        .unwrap()
        .starts_with("web-"));
}

/// A field of a node's status as `get nodes -o json` shows it.
fn node_status(c: &switchyard_lab::cluster::Cluster, node: &str, field: &str) -> String {
    json(c, &["get", "nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["metadata"]["name"] == node)
        .map(|n| n["status"][field].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Drops every packet between `ns` and `ip`, inside `ns` only (table
/// `inet lab_partition`, which deleting heals).
fn cut_off(c: &switchyard_lab::cluster::Cluster, ns: &str, ip: &str) {
    let table = format!(
        "table inet lab_partition {{ chain in {{ type filter hook input priority -300; ip saddr {ip} drop; }}; chain out {{ type filter hook output priority -300; ip daddr {ip} drop; }}; }}"
    );
    c.lab.exec_ok(ns, &["nft", &table]).unwrap();
}

fn sync_state(c: &switchyard_lab::cluster::Cluster, node: &str) -> String {
    node_status(c, node, "syncState")
}

fn last_error(c: &switchyard_lab::cluster::Cluster, node: &str) -> String {
    node_status(c, node, "lastError")
}

/// All packets between node-1 and the control plane are dropped for 30 s
/// (nftables in node-1's namespace) under a request loop: no request to a
/// Service fails, `get nodes` shows node-1 cut off within the keepalive,
/// and a Service created meanwhile serves on node-1 soon after healing.
#[test]
fn a_partitioned_node_keeps_serving_shows_disconnected_and_catches_up() {
    let Some(c) = cluster(
        "a_partitioned_node_keeps_serving_shows_disconnected_and_catches_up",
        &[],
    ) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    let node = c.lab.node(1).ns.clone();
    let cp_ip = c.lab.control_plane().ip.to_string();
    let from_pod = request_loop(&c, &c.lab.pod(1, 2).ns, &url, 350, "0.1");
    cut_off(&c, &node, &cp_ip);
    let cut = Instant::now();
    eventually("node-1 shown cut off", Duration::from_secs(25), || {
        matches!(sync_state(&c, "node-1").as_str(), "DISCONNECTED" | "STALE")
    });
    let noticed = cut.elapsed();
    c.apply(&service_yaml("web-during", "")).unwrap();
    let during = format!("http://{}/", cluster_ip(&c, "web-during"));
    std::thread::sleep(Duration::from_secs(30).saturating_sub(cut.elapsed()));
    // Not there yet: node-1 has not heard of it.
    assert!(curl(&c, &c.lab.pod(1, 2).ns, &during).is_err());

    c.lab
        .exec_ok(&node, &["nft", "delete", "table", "inet", "lab_partition"])
        .unwrap();
    let healed = Instant::now();
    eventually(
        "the Service made during the partition serves on node-1",
        Duration::from_secs(20),
        || curl(&c, &c.lab.pod(1, 2).ns, &during).is_ok_and(|body| body.starts_with("web-")),
    );
    let caught_up = healed.elapsed();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let log = loop_result(&from_pod);
    println!(
        "partition of 30 s: node-1 shown cut off after {:.1} s, the Service created meanwhile served {:.1} s after healing, {} of 350 requests ok",
        noticed.as_secs_f64(),
        caught_up.as_secs_f64(),
        log.matches("ok").count()
    );
    assert_eq!(log.matches("ok").count(), 350, "failed requests:\n{log}");
    assert!(!log.contains("FAIL"), "{log}");
}

/// Someone else's `ip switchyard` table is in the way (its `cluster-ips`
/// a set of another type), then `nft` is missing: each time the
/// agent NACKs with the kernel's (or the system's) words, the node shows
/// it, and once fixed the agent is SYNCED again by itself.
#[test]
fn a_foreign_table_and_a_missing_nft_are_nacked_and_heal_once_fixed() {
    let Some(mut c) = cluster(
        "a_foreign_table_and_a_missing_nft_are_nacked_and_heal_once_fixed",
        &[],
    ) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    let node = c.lab.node(1).ns.clone();
    let nft = |c: &switchyard_lab::cluster::Cluster, args: &[&str]| {
        let mut full = vec!["nft"];
        full.extend(args);
        c.lab.exec_ok(&node, &full).unwrap()
    };
    block_with_foreign_table(&mut c, 1);
    eventually("node-1 NACKed", Duration::from_secs(20), || {
        sync_state(&c, "node-1") == "NACKED"
    });
    let error = last_error(&c, "node-1");
    println!("foreign table: {error}");
    assert!(
        error.contains("Error: datatype mismatch") && error.contains("@cluster-ips"),
        "{error}"
    );
    // The operator removes the foreign table; the agent's retry takes over.
    nft(&c, &["delete", "table", "ip", "switchyard"]);
    c.wait_synced(Duration::from_secs(40)).unwrap();
    assert!(curl(&c, &c.lab.pod(1, 2).ns, &url)
        .unwrap()
        .starts_with("web-"));

    // nft is missing (the agent writes over netlink, but reads with nft).
    c.stop_agent(1);
    let bin = tempfile::tempdir().unwrap();
    let path = format!("PATH={}", bin.path().display());
    c.start_agent_with_env(1, &[&path]).unwrap();
    c.apply(&service_yaml("web-2", "")).unwrap();
    eventually("node-1 NACKed without nft", Duration::from_secs(20), || {
        sync_state(&c, "node-1") == "NACKED"
    });
    println!("nft missing: {}", last_error(&c, "node-1"));
    assert!(
        last_error(&c, "node-1").starts_with("could not run nft: No such file or directory"),
        "{}",
        last_error(&c, "node-1")
    );
    // The last good ruleset serves meanwhile.
    assert!(curl(&c, &c.lab.pod(1, 2).ns, &url)
        .unwrap()
        .starts_with("web-"));
    let real_nft = switchyard_lab::find_tool("nft").unwrap();
    std::os::unix::fs::symlink(real_nft, bin.path().join("nft")).unwrap();
    c.wait_synced(Duration::from_secs(40)).unwrap();
    let during = format!("http://{}/", cluster_ip(&c, "web-2"));
    assert!(curl(&c, &c.lab.pod(1, 2).ns, &during)
        .unwrap()
        .starts_with("web-"));
}

/// An agent given two control-plane addresses (`--control-plane A
/// --control-plane B`: here one control plane, B a relay on the client)
/// fails over when A stops answering: the data path serves throughout, and
/// changes reach it through B, resumed from the version it holds (a delta,
/// not a full push).
#[test]
fn an_agent_fails_over_to_its_next_control_plane_address() {
    use switchyard_lab::cluster::CONTROL_PLANE_PORT;
    use switchyard_lab::CLIENT_IP;
    let relay = format!("{CLIENT_IP}:{CONTROL_PLANE_PORT}");
    let Some(c) = cluster_with(
        "an_agent_fails_over_to_its_next_control_plane_address",
        &["--advertise-address", &CLIENT_IP.to_string()],
        &["--control-plane", &format!("https://{relay}")],
    ) else {
        return;
    };
    let cp_ip = c.lab.control_plane().ip.to_string();
    let to = format!("{cp_ip}:{CONTROL_PLANE_PORT}");
    let relay_args = [
        c.bin("switchyard-lab"),
        "relay".into(),
        "--listen".into(),
        relay,
        "--to".into(),
        to,
    ];
    let relaying = c.lab.spawn(&c.lab.client().ns, &relay_args).unwrap();
    relaying
        .wait_for_log("relaying", Duration::from_secs(10))
        .unwrap();
    let (_backends, url) = serve_web(&c, "");
    let from_pod = request_loop(&c, &c.lab.pod(1, 2).ns, &url, 200, "0.1");
    let full_pushes = |log: &str| log.matches("full=true").count();
    let before = full_pushes(&c.agent_log(1));
    assert!(
        before > 0,
        "the first push is a full one:\n{}",
        c.agent_log(1)
    );

    // node-1 loses its path to A; B still reaches the control plane.
    cut_off(&c, &c.lab.node(1).ns, &cp_ip);
    let cut = Instant::now();
    c.apply(&service_yaml("web-during", "")).unwrap();
    let during = format!("http://{}/", cluster_ip(&c, "web-during"));
    eventually(
        "the Service made after the cut serves on node-1",
        Duration::from_secs(40),
        || curl(&c, &c.lab.pod(1, 2).ns, &during).is_ok_and(|body| body.starts_with("web-")),
    );
    let failed_over = cut.elapsed();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let log = loop_result(&from_pod);
    println!(
        "node-1 cut off from its first control-plane address: a Service made then served on it {:.1} s later through the second; {} of 200 requests ok",
        failed_over.as_secs_f64(),
        log.matches("ok").count()
    );
    assert_eq!(log.matches("ok").count(), 200, "failed requests:\n{log}");
    assert_eq!(
        full_pushes(&c.agent_log(1)),
        before,
        "the agent resumed with deltas:\n{}",
        c.agent_log(1)
    );
}
