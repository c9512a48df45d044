//! `trafficDistribution` end to end on a lab of three nodes in two zones
//! (node-1 and node-2 in zone a, node-3 in zone b): agents register their
//! `--node-labels`, the endpoints controller hints each endpoint for its
//! zone (and node), and each agent prefers the endpoints hinted for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::Duration;

use e2e::*;
use switchyard_lab::cluster::{Cluster, ClusterConfig};
use switchyard_lab::{require_root, ChildGuard, LabConfig};

const ZONES: [&str; 3] = ["a", "a", "b"];

fn zoned_cluster(test: &str) -> Option<Cluster> {
    if !require_root(test) {
        return None;
    }
    let labels = |i: usize| {
        vec![
            "--node-labels".to_string(),
            format!("topology.kubernetes.io/zone={},rack=r{}", ZONES[i], i + 1),
        ]
    };
    let cfg = ClusterConfig {
        lab: LabConfig {
            nodes: 3,
            pods_per_node: 2,
        },
        node_agent_args: (0..3).map(labels).collect(),
        ..Default::default()
    };
    Some(Cluster::start(cfg).expect("cluster starts"))
}

/// `web-<i>` on the first pod of every node.
fn backends(c: &Cluster) -> Vec<ChildGuard> {
    let manifests: String = (1..=3)
        .map(|i| c.pod_manifest(i, 1, &format!("web-{i}"), "web", 8080))
        .collect();
    c.apply(&manifests).unwrap();
    (1..=3)
        .map(|i| c.backend(i, 1, &format!("web-{i}"), 8080).unwrap())
        .collect()
}

/// The backends that answer requests from the second pod of node `i`.
fn answering(c: &Cluster, i: usize, url: &str) -> Vec<String> {
    spread(c, &c.lab.pod(i, 2).ns, url, 24)
        .into_keys()
        .collect()
}

fn apply_web(c: &Cluster, distribution: &str) -> String {
    let extra = format!("  trafficDistribution: {distribution}\n");
    c.apply(&service_yaml("web", &extra)).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    format!("http://{}/", cluster_ip(c, "web"))
}

#[test]
fn traffic_distribution_keeps_traffic_in_the_zone_or_on_the_node() {
    let Some(c) = zoned_cluster("traffic_distribution_keeps_traffic_in_the_zone_or_on_the_node")
    else {
        return;
    };
    let nodes = c.swctl_ok(&["get", "nodes", "--show-labels"]).unwrap();
    let labels: Vec<&str> = nodes
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "LABELS",
            "rack=r1,topology.kubernetes.io/zone=a",
            "rack=r2,topology.kubernetes.io/zone=a",
            "rack=r3,topology.kubernetes.io/zone=b",
        ],
        "{nodes}"
    );
    let _backends = backends(&c);

    let url = apply_web(&c, "PreferClose");
    let slices = json(&c, &["get", "endpointslices"]);
    let mut hinted: Vec<(String, String, String)> = slices["items"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
            (
                text(&e["nodeName"]),
                text(&e["zone"]),
                text(&e["hints"]["forZones"][0]["name"]),
            )
        })
        .collect();
    hinted.sort();
    assert_eq!(
        hinted,
        [
            ("node-1", "a", "a"),
            ("node-2", "a", "a"),
            ("node-3", "b", "b")
        ]
        .map(|(n, z, h)| (n.to_string(), z.to_string(), h.to_string()))
    );
    assert_eq!(answering(&c, 1, &url), ["web-1", "web-2"]);
    assert_eq!(answering(&c, 3, &url), ["web-3"]);

    let url = apply_web(&c, "PreferSameNode");
    assert_eq!(answering(&c, 1, &url), ["web-1"]);
    assert_eq!(answering(&c, 2, &url), ["web-2"]);
    assert_eq!(answering(&c, 3, &url), ["web-3"]);

    // Zone b loses its only endpoint: node-3 uses the others rather than none.
    c.swctl_ok(&["delete", "pod", "web-3"]).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    assert_eq!(answering(&c, 3, &url), ["web-1", "web-2"]);
    let url = apply_web(&c, "PreferClose");
    assert_eq!(answering(&c, 3, &url), ["web-1", "web-2"]);
    assert_eq!(answering(&c, 2, &url), ["web-1", "web-2"]);
}
