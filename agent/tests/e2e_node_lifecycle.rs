//! Hosts die: in a three-node lab, node-2's cable is pulled and its agent
//! killed (a host losing power) under request loops from node-1 and node-3
//! to a ClusterIP and a NodePort. Once the grace period has passed, node-2
//! is NotReady, its endpoint is not ready and the failures stop; plugged
//! back in with its agent, it is Ready and served again once its probe
//! passes. A control-plane restart with every node alive turns no node
//! NotReady and fails no request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::{Duration, Instant};

use e2e::*;
use switchyard_lab::cluster::{Cluster, ClusterConfig};
use switchyard_lab::{require_root, LabConfig};

const GRACE_SECS: f64 = 6.0;

/// Lab pod (i, 1) as `web-<i>`, with a readiness probe on its port.
fn probed_pod(c: &Cluster, i: usize) -> String {
    let manifest = c.pod_manifest(i, 1, &format!("web-{i}"), "web", 8080);
    manifest.replace(
        "status:\n",
        "      readinessProbe:\n        tcpSocket:\n          port: 8080\n        periodSeconds: 1\nstatus:\n",
    )
}

fn node_status(c: &Cluster, node: &str) -> String {
    let out = c.swctl_ok(&["get", "nodes", node, "--no-headers"]).unwrap();
    out.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn endpoints(c: &Cluster) -> String {
    c.swctl_ok(&["get", "endpoints", "web", "--no-headers"])
        .unwrap()
}

#[test]
fn a_dead_host_leaves_the_data_path_after_the_grace_period_and_comes_back() {
    let test = "a_dead_host_leaves_the_data_path_after_the_grace_period_and_comes_back";
    if !require_root(test) {
        return;
    }
    let mut c = Cluster::start(ClusterConfig {
        lab: LabConfig {
            nodes: 3,
            pods_per_node: 2,
        },
        control_plane_args: vec!["--node-monitor-grace-period".into(), "6s".into()],
        ..Default::default()
    })
    .expect("cluster starts");
    let manifests: String = (1..=3).map(|i| probed_pod(&c, i)).collect();
    c.apply(&manifests).unwrap();
    let _backends: Vec<_> = (1..=3)
        .map(|i| c.backend(i, 1, &format!("web-{i}"), 8080).unwrap())
        .collect();
    c.apply(&service_yaml("web", "")).unwrap();
    c.apply(&service_yaml("web-np", "  type: NodePort\n"))
        .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let web2 = c.lab.pod(2, 1).ip.to_string();
    eventually("all three endpoints ready", Duration::from_secs(15), || {
        endpoints(&c).contains(&web2) && endpoints(&c).matches(":8080").count() == 3
    });
    let cluster_url = format!("http://{}/", cluster_ip(&c, "web"));
    let port = node_port(&c, "web-np");
    let loops = [
        (c.lab.pod(1, 2).ns.clone(), cluster_url.clone()),
        (c.lab.pod(3, 2).ns.clone(), cluster_url.clone()),
        (
            c.lab.client().ns.clone(),
            format!("http://{}:{port}/", c.lab.node(1).ip),
        ),
        (
            c.lab.client().ns.clone(),
            format!("http://{}:{port}/", c.lab.node(3).ip),
        ),
    ];
    let running: Vec<_> = loops
        .iter()
        .map(|(ns, url)| timed_request_loop(&c, ns, url, 150, "0.1"))
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let cut = unix_now();
    c.lab.set_node_link(2, false).unwrap();
    c.kill_agent(2);
    let started = Instant::now();
    eventually("node-2 NotReady", Duration::from_secs(20), || {
        node_status(&c, "node-2") == "NotReady"
    });
    println!("node-2 NotReady {:?} after the cut", started.elapsed());
    assert!(
        started.elapsed() >= Duration::from_secs_f64(GRACE_SECS - 1.0),
        "judged before the grace period"
    );
    let eps = endpoints(&c);
    assert!(!eps.contains(&web2), "{eps}");
    let slice = json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
    );
    let web2_ready: Vec<_> = slice["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["endpoints"].as_array().unwrap().clone())
        .filter(|e| e["addresses"][0] == web2.as_str())
        .map(|e| e["conditions"]["ready"].clone())
        .collect();
    assert_eq!(web2_ready, vec![serde_json::json!(false)]);
    assert_eq!(node_status(&c, "node-1"), "Ready");
    assert_eq!(node_status(&c, "node-3"), "Ready");

    // Every loop goes on past grace + 3 s; none fails after that.
    std::thread::sleep(Duration::from_secs_f64(
        (cut + GRACE_SECS + 6.0 - unix_now()).max(0.0),
    ));
    let mut last_failure = 0.0_f64;
    for ((ns, url), guard) in loops.iter().zip(&running) {
        let (failures, total) = loop_failures(&guard.log());
        let last = failures.iter().copied().fold(0.0, f64::max);
        if last > 0.0 {
            last_failure = last_failure.max(last - cut);
        }
        println!(
            "{ns} → {url}: {} of {total} failed, the last {:.2}s after the cut",
            failures.len(),
            if last > 0.0 { last - cut } else { 0.0 }
        );
        assert!(failures.iter().all(|t| *t >= cut), "failed before the cut");
    }
    println!("last failure {last_failure:.2}s after the cut (grace {GRACE_SECS}s)");
    assert!(last_failure <= GRACE_SECS + 3.0, "{last_failure}");
    drop(running);

    // Plugged back in, agent restarted: Ready, and served once probed.
    c.lab.set_node_link(2, true).unwrap();
    c.start_agent(2).unwrap();
    let back = Instant::now();
    eventually("node-2 Ready again", Duration::from_secs(20), || {
        node_status(&c, "node-2") == "Ready"
    });
    eventually("web-2's endpoint back", Duration::from_secs(20), || {
        endpoints(&c).contains(&web2)
    });
    println!(
        "node-2 Ready and web-2 served {:?} after it came back",
        back.elapsed()
    );
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let served = spread(&c, &c.lab.pod(1, 2).ns, &cluster_url, 30);
    assert!(served.contains_key("web-2"), "{served:?}");

    // A control-plane restart with every node alive: no NotReady, no failure.
    let during = timed_request_loop(&c, &c.lab.pod(1, 2).ns, &cluster_url, 100, "0.1");
    c.stop_control_plane();
    c.start_control_plane().unwrap();
    let restarted = Instant::now();
    while restarted.elapsed() < Duration::from_secs_f64(GRACE_SECS + 3.0) {
        if let Ok(out) = c.swctl_ok(&["get", "nodes", "--no-headers"]) {
            assert!(!out.contains("NotReady"), "flapped after a restart:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (failures, total) = loop_failures(&loop_result(&during));
    println!(
        "control-plane restart: {} of {total} requests failed",
        failures.len()
    );
    assert_eq!((failures.len(), total), (0, 100));
}
