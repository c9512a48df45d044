//! End to end on the namespace lab: a real control plane, a real agent per
//! node programming real nftables, real curl from pods, nodes and an
//! external client. Root only: skipped loudly otherwise, and a failure
//! with SWITCHYARD_E2E=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::{Duration, Instant};

use e2e::*;

#[test]
fn cluster_ip_reaches_backends_on_every_node_from_pods_and_hosts() {
    let Some(c) = cluster(
        "cluster_ip_reaches_backends_on_every_node_from_pods_and_hosts",
        &[],
    ) else {
        return;
    };
    let _backends = web_backends(&c);
    c.apply(&service_yaml("web", "")).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let ip = cluster_ip(&c, "web");
    let url = format!("http://{ip}/");
    for ns in [
        c.lab.pod(1, 2).ns.clone(),
        c.lab.pod(2, 2).ns.clone(),
        c.lab.node(1).ns.clone(),
    ] {
        let counts = spread(&c, &ns, &url, 30);
        assert_eq!(
            counts.keys().cloned().collect::<Vec<_>>(),
            vec!["web-1", "web-2"],
            "from {ns}: {counts:?}"
        );
        assert!(
            counts.values().all(|n| *n >= 3),
            "uneven spread from {ns}: {counts:?}"
        );
    }
    // A pod on node 1 reaching web-2 on node 2 keeps its own address.
    let body = curl(&c, &c.lab.pod(1, 2).ns, &url).unwrap();
    let pod_ip = c.lab.pod(1, 2).ip.to_string();
    if body.starts_with("web-2") {
        assert!(body.contains(&format!(" {pod_ip}:")), "{body}");
    }
}

#[test]
fn node_port_from_outside_masquerades_and_local_policy_keeps_client_ip() {
    let Some(c) = cluster(
        "node_port_from_outside_masquerades_and_local_policy_keeps_client_ip",
        &[],
    ) else {
        return;
    };
    let _backends = web_backends(&c);
    c.apply(&service_yaml("web", "  type: NodePort\n")).unwrap();
    c.apply(&service_yaml(
        "web-local",
        "  type: NodePort\n  externalTrafficPolicy: Local\n",
    ))
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let client = c.lab.client().ns.clone();
    let node1 = c.lab.node(1).ip;
    let port = node_port(&c, "web");
    let counts = spread(&c, &client, &format!("http://{node1}:{port}/"), 30);
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        vec!["web-1", "web-2"],
        "{counts:?}"
    );
    // Cluster policy: the backend sees the node, not the client.
    let body = curl(&c, &client, &format!("http://{node1}:{port}/")).unwrap();
    assert!(
        !body.contains("172.18.0.100:"),
        "client IP leaked through SNAT: {body}"
    );

    // Local policy: only node 1's backend, and the client's own address.
    let local = node_port(&c, "web-local");
    for _ in 0..10 {
        let body = curl(&c, &client, &format!("http://{node1}:{local}/")).unwrap();
        assert!(body.starts_with("web-1 172.18.0.100:"), "{body}");
    }
}

#[test]
fn service_without_endpoints_is_rejected_at_once() {
    let Some(c) = cluster("service_without_endpoints_is_rejected_at_once", &[]) else {
        return;
    };
    c.apply(&service_yaml("empty", "  type: NodePort\n"))
        .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let ip = cluster_ip(&c, "empty");
    let started = Instant::now();
    // curl exit 7: connection refused (a reset), not 28 (timeout).
    assert_eq!(
        curl(&c, &c.lab.pod(1, 1).ns, &format!("http://{ip}/")),
        Err(7)
    );
    let port = node_port(&c, "empty");
    let node1 = c.lab.node(1).ip;
    assert_eq!(
        curl(&c, &c.lab.client().ns, &format!("http://{node1}:{port}/")),
        Err(7)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "rejection took {:?}",
        started.elapsed()
    );
}

#[test]
fn endpoints_follow_pods_and_readiness() {
    let Some(c) = cluster("endpoints_follow_pods_and_readiness", &[]) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    let from = c.lab.pod(1, 2).ns.clone();
    c.swctl_ok(&["delete", "pod", "web-2"]).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let counts = spread(&c, &from, &url, 15);
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        vec!["web-1"],
        "{counts:?}"
    );

    // A pod with a readiness probe joins only once its probe passes, and
    // leaves when its backend stops.
    let probed = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-3\n  labels:\n    app: web\nspec:\n  nodeName: node-2\n  containers:\n    - name: main\n      ports:\n        - name: http\n          containerPort: 8080\n      readinessProbe:\n        tcpSocket:\n          port: http\n        periodSeconds: 1\n        failureThreshold: 2\nstatus:\n  podIP: {}\n",
        c.lab.pod(2, 2).ip
    );
    c.apply(&probed).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let counts = spread(&c, &from, &url, 10);
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        vec!["web-1"],
        "unready pod got traffic: {counts:?}"
    );
    let backend = c.backend(2, 2, "web-3", 8080).unwrap();
    eventually(
        "web-3 becomes ready and receives traffic",
        Duration::from_secs(10),
        || spread(&c, &from, &url, 10).contains_key("web-3"),
    );
    backend.stop();
    let stopped = Instant::now();
    // Until the probe fails twice, connections to web-3 are refused; after,
    // every request lands on web-1.
    eventually("web-3 leaves rotation", Duration::from_secs(10), || {
        (0..10).all(|_| curl(&c, &from, &url).is_ok_and(|b| b.starts_with("web-1 ")))
    });
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stopped.elapsed()
    );
}
