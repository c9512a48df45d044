//! Workloads declared by the host, end to end on the namespace lab: a
//! process on node 1 listening on the node's own address, declared by a
//! `hostNetwork` Pod manifest in node 1's `--pod-manifests` directory,
//! serves a Service through every data path — ClusterIP from another
//! node's pod, NodePort from outside, hairpin from node 1 itself, and an
//! `externalTrafficPolicy: Local` NodePort — until its file is removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::{Duration, Instant};

use e2e::*;
use switchyard_lab::cluster::{Cluster, ClusterConfig};
use switchyard_lab::{require_root, LabConfig};

const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata:
  name: host-web
  labels:
    app: host-web
spec:
  hostNetwork: true
  containers:
    - name: main
      ports:
        - name: http
          containerPort: 8080
      readinessProbe:
        tcpSocket:
          port: http
        periodSeconds: 1
";

fn service(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: NodePort\n  selector:\n    app: host-web\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n{extra_spec}"
    )
}

fn endpoints(c: &Cluster, svc: &str) -> String {
    c.swctl_ok(&["get", "endpoints", svc, "--no-headers"])
        .unwrap()
}

#[test]
fn a_host_process_declared_by_a_manifest_serves_every_data_path() {
    let test = "a_host_process_declared_by_a_manifest_serves_every_data_path";
    if !require_root(test) {
        return;
    }
    let mut c = Cluster::start(ClusterConfig {
        lab: LabConfig {
            nodes: 2,
            pods_per_node: 1,
        },
        pod_manifests: true,
        ..Default::default()
    })
    .expect("cluster starts");
    let node1 = c.lab.node(1).clone();
    let node2 = c.lab.node(2).clone();
    let _backend = c.host_backend(1, "host-web", 8080).unwrap();
    let manifest = c.pod_manifests_dir(1).join("host-web.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    c.apply(&service("host-web", "")).unwrap();
    c.apply(&service(
        "host-web-local",
        "  externalTrafficPolicy: Local\n",
    ))
    .unwrap();
    let address = format!("{}:8080", node1.ip);
    eventually(
        "the mirror pod's address is a ready endpoint",
        Duration::from_secs(15),
        || endpoints(&c, "host-web").contains(&address),
    );
    c.wait_synced(Duration::from_secs(10)).unwrap();

    // The mirror pod, as kubectl shows a static pod's.
    let pods = c.swctl_ok(&["get", "pods", "-o", "wide"]).unwrap();
    let row: Vec<&str> = pods
        .lines()
        .find(|l| l.starts_with("host-web-node-1 "))
        .unwrap_or_else(|| panic!("no mirror pod in:\n{pods}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        (row[1], row[2], row[5], row[6]),
        ("1/1", "Running", node1.ip.to_string().as_str(), "node-1"),
        "{pods}"
    );
    let pod = json(&c, &["get", "pod", "host-web-node-1"]);
    assert_eq!(pod["spec"]["hostNetwork"], true);
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/config.mirror"]
            .as_str()
            .unwrap()
            .len(),
        32
    );

    let served = |ns: &str, url: &str| {
        let body = curl(&c, ns, url).unwrap_or_else(|code| panic!("{url} from {ns}: curl {code}"));
        assert!(body.starts_with("host-web "), "{url} from {ns}: {body}");
        body
    };
    let cluster_url = format!("http://{}/", cluster_ip(&c, "host-web"));
    // ClusterIP from a pod on the other node, and from one on node 1.
    served(&c.lab.pod(2, 1).ns, &cluster_url);
    served(&c.lab.pod(1, 1).ns, &cluster_url);
    // NodePort from outside, through either node.
    let client = c.lab.client().clone();
    let port = node_port(&c, "host-web");
    served(&client.ns, &format!("http://{}:{port}/", node1.ip));
    served(&client.ns, &format!("http://{}:{port}/", node2.ip));
    // Hairpin: node 1 reaches its own process through the ClusterIP, and
    // through its own NodePort.
    for _ in 0..3 {
        let body = served(&node1.ns, &cluster_url);
        // Masqueraded to the node's address, as any hairpin.
        assert!(
            body.starts_with(&format!("host-web {}:", node1.ip)),
            "{body}"
        );
    }
    served(&node1.ns, &format!("http://{}:{port}/", node1.ip));
    // Local policy: node 1 serves and keeps the client's address; node 2
    // has no local endpoint and drops.
    let local = node_port(&c, "host-web-local");
    let body = served(&client.ns, &format!("http://{}:{local}/", node1.ip));
    assert!(
        body.starts_with(&format!("host-web {}:", client.ip)),
        "{body}"
    );
    assert_eq!(
        curl(&c, &client.ns, &format!("http://{}:{local}/", node2.ip)),
        Err(28)
    );

    // The file goes: so does the endpoint, within 2 s.
    std::fs::remove_file(&manifest).unwrap();
    let removed = Instant::now();
    eventually("the endpoint is gone", Duration::from_secs(5), || {
        !endpoints(&c, "host-web").contains(&address)
    });
    let took = removed.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(
        endpoints(&c, "host-web").split_whitespace().nth(1),
        Some("<none>")
    );
    let pods = c.swctl_ok(&["get", "pods", "-o", "name"]).unwrap();
    assert!(!pods.contains("host-web-node-1"), "{pods}");

    // A file removed while the agent is down: its mirror pod goes when
    // the agent starts again.
    std::fs::write(&manifest, MANIFEST).unwrap();
    eventually("the mirror pod is back", Duration::from_secs(5), || {
        endpoints(&c, "host-web").contains(&address)
    });
    c.stop_agent(1);
    std::fs::remove_file(&manifest).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        endpoints(&c, "host-web").contains(&address),
        "nobody deleted it yet"
    );
    c.start_agent(1).unwrap();
    eventually(
        "the restarted agent deletes it",
        Duration::from_secs(10),
        || {
            !c.swctl_ok(&["get", "pods", "-o", "name"])
                .unwrap()
                .contains("host-web-node-1")
        },
    );
}
