//! End to end on the namespace lab: a real control plane, a real agent per
//! node programming real nftables, real curl from pods, nodes and an
//! external client. Root only: skipped loudly otherwise, and a failure
//! with SWITCHYARD_E2E=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchyard_lab::cluster::{Cluster, ClusterConfig};
use switchyard_lab::{require_root, ChildGuard, LabConfig};

fn cluster(test: &str, cp_args: &[&str]) -> Option<Cluster> {
    if !require_root(test) {
        return None;
    }
    let cfg = ClusterConfig {
        lab: LabConfig {
            nodes: 2,
            pods_per_node: 2,
        },
        control_plane_args: cp_args.iter().map(|s| s.to_string()).collect(),
        agent_args: Vec::new(),
    };
    Some(Cluster::start(cfg).expect("cluster starts"))
}

/// Backends on pods (1,1) and (2,1) labelled app=web on port 8080.
fn web_backends(c: &Cluster) -> Vec<ChildGuard> {
    let mut manifests = c.pod_manifest(1, 1, "web-1", "web", 8080);
    manifests.push_str(&c.pod_manifest(2, 1, "web-2", "web", 8080));
    c.apply(&manifests).unwrap();
    vec![
        c.backend(1, 1, "web-1", 8080).unwrap(),
        c.backend(2, 1, "web-2", 8080).unwrap(),
    ]
}

fn service_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: web\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n{extra_spec}"
    )
}

fn json(c: &Cluster, args: &[&str]) -> serde_json::Value {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    serde_json::from_str(&c.swctl_ok(&full).unwrap()).unwrap()
}

fn cluster_ip(c: &Cluster, svc: &str) -> String {
    json(c, &["get", "svc", svc])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string()
}

fn node_port(c: &Cluster, svc: &str) -> u64 {
    json(c, &["get", "svc", svc])["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap()
}

/// One HTTP GET with curl from a namespace; Err carries curl's exit code.
fn curl(c: &Cluster, ns: &str, url: &str) -> Result<String, i32> {
    let out = c
        .lab
        .exec(
            ns,
            &[
                "curl",
                "-sS",
                "--max-time",
                "2",
                "--connect-timeout",
                "2",
                url,
            ],
        )
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(out.status.code().unwrap_or(-1))
    }
}

/// Backend name → count over `n` requests.
fn spread(c: &Cluster, ns: &str, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let body = curl(c, ns, url)
            .unwrap_or_else(|code| panic!("curl {url} from {ns} failed with {code}"));
        let name = body.split_whitespace().next().unwrap().to_string();
        *counts.entry(name).or_default() += 1;
    }
    counts
}

fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

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
    let _backends = web_backends(&c);
    c.apply(&service_yaml("web", "")).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let url = format!("http://{}/", cluster_ip(&c, "web"));
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
