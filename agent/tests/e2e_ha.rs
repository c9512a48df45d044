//! High availability end to end: two control planes on a three-member etcd
//! (Debian's etcd, in the control-plane host's namespace), two nodes whose
//! agents know both. Each control plane is killed in turn while a pod
//! requests a ClusterIP: agents fail over, the data path never stops, and
//! a Service made during a failover serves on the nodes. Then etcd loses
//! its quorum: writes fail with the reason, reads, agent streams and the
//! data path go on, and writes resume with a member back. Then etcd loses
//! its quorum: writes fail with the reason, reads, agent streams and the
//! data path go on, and writes resume with a member back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::{Duration, Instant};

use e2e::*;
use switchyard_lab::cluster::{Cluster, ClusterConfig};
use switchyard_lab::{require_etcd, require_root, LabConfig};

#[test]
fn agents_fail_over_between_control_planes_on_etcd_and_no_request_fails() {
    let test = "agents_fail_over_between_control_planes_on_etcd_and_no_request_fails";
    if !require_root(test) || !require_etcd(test) {
        return;
    }
    let mut c = Cluster::start(ClusterConfig {
        lab: LabConfig {
            nodes: 2,
            pods_per_node: 2,
        },
        etcd_members: 3,
        control_planes: 2,
        // Short, so a failover that forgot to give nodes a full grace
        // period would flap them within the test.
        control_plane_args: vec!["--node-monitor-grace-period".into(), "5s".into()],
        ..Default::default()
    })
    .expect("cluster starts");
    let (_backends, url) = serve_web(&c, "");
    let ready_since = ready_transitions(&c);
    let from_pod = request_loop(&c, &c.lab.pod(1, 2).ns, &url, 240, "0.05");
    let mut reachable_after = Vec::new();
    for (round, victim) in [1, 2].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(1500));
        c.kill_control_plane(victim);
        let killed = Instant::now();
        let name = format!("during-{round}");
        c.apply(&service_yaml(&name, "")).unwrap();
        let during = format!("http://{}/", cluster_ip(&c, &name));
        for node in [1, 2] {
            eventually(
                &format!("{name} serves on node-{node}"),
                Duration::from_secs(30),
                || {
                    curl(&c, &c.lab.pod(node, 2).ns, &during)
                        .is_ok_and(|body| body.starts_with("web-"))
                },
            );
        }
        reachable_after.push(killed.elapsed());
        c.start_control_plane_n(victim).unwrap();
    }
    let log = loop_result(&from_pod);
    println!(
        "control planes killed in turn: Services made then served on both nodes after {:?}; {} of 240 requests ok",
        reachable_after,
        log.matches("ok").count()
    );
    assert_eq!(log.matches("ok").count(), 240, "failed requests:\n{log}");
    for took in &reachable_after {
        assert!(
            *took < Duration::from_secs(5),
            "a Service made during a failover took {took:?}"
        );
    }
    // Each control plane shows both nodes synced, whichever it streams to.
    for cp in [1, 2] {
        eventually(
            &format!("cp-{cp} shows both nodes SYNCED"),
            Duration::from_secs(15),
            || {
                c.swctl_on(cp, &["get", "nodes", "--no-headers"])
                    .is_ok_and(|out| out.matches(" SYNCED ").count() == 2)
            },
        );
    }
    let table = c
        .swctl_ok(&["get", "controlplanes", "--no-headers"])
        .unwrap();
    let names: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["cp-1", "cp-2"], "{table}");
    // No node turned NotReady across the leader kills.
    assert_eq!(ready_transitions(&c), ready_since);

    // etcd loses its quorum: writes fail, everything else goes on.
    let from_pod = request_loop(&c, &c.lab.pod(2, 2).ns, &url, 100, "0.05");
    let etcd = c.etcd().expect("an etcd cluster");
    etcd.kill(0);
    etcd.kill(1);
    let refused = c.apply(&service_yaml("no-quorum", ""));
    let message = format!("{refused:?}");
    assert!(
        message.contains("is a quorum of its members up?"),
        "a write without quorum: {message}"
    );
    let nodes = c.swctl_ok(&["get", "nodes", "--no-headers"]).unwrap();
    assert_eq!(nodes.matches(" SYNCED ").count(), 2, "{nodes}");
    c.etcd().expect("an etcd cluster").restart(1).unwrap();
    eventually("writes resume", Duration::from_secs(30), || {
        c.apply(&service_yaml("after-quorum", "")).is_ok()
    });
    let after = format!("http://{}/", cluster_ip(&c, "after-quorum"));
    eventually(
        "a Service made after the quorum returned serves",
        Duration::from_secs(10),
        || curl(&c, &c.lab.pod(1, 2).ns, &after).is_ok_and(|body| body.starts_with("web-")),
    );
    let log = loop_result(&from_pod);
    println!(
        "etcd without quorum: {} of 100 requests ok",
        log.matches("ok").count()
    );
    assert_eq!(
        log.matches("ok").count(),
        100,
        "requests while etcd had no quorum:\n{log}"
    );
}

/// Each node's Ready status and when it last changed.
fn ready_transitions(c: &Cluster) -> Vec<(String, String, String)> {
    let nodes = json(c, &["get", "nodes"]);
    nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap();
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                ready["status"].as_str().unwrap().to_string(),
                ready["lastTransitionTime"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
