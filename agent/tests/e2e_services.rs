//! Service features end to end on the namespace lab: external and
//! load-balancer IPs, multi-port TCP+UDP, hairpin, internal Local policy,
//! session affinity, and UDP conntrack cleanup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::{Duration, Instant};

use e2e::*;

#[test]
fn external_and_load_balancer_ips_reach_backends() {
    let Some(c) = cluster(
        "external_and_load_balancer_ips_reach_backends",
        &["--lb-pool", "172.18.0.200/29"],
    ) else {
        return;
    };
    let _backends = web_backends(&c);
    c.apply(&service_yaml(
        "web",
        "  type: LoadBalancer\n  externalIPs:\n    - 172.18.0.150\n",
    ))
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let svc = json(&c, &["get", "svc", "web"]);
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"][0]["ip"],
        "172.18.0.201"
    );
    // Without NodePorts (allocateLoadBalancerNodePorts: false) the LB IP
    // serves all the same.
    c.apply(&service_yaml(
        "bare",
        "  type: LoadBalancer\n  allocateLoadBalancerNodePorts: false\n",
    ))
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let bare = json(&c, &["get", "svc", "bare"]);
    assert_eq!(
        bare["status"]["loadBalancer"]["ingress"][0]["ip"],
        "172.18.0.202"
    );
    assert!(bare["spec"]["ports"][0].get("nodePort").is_none(), "{bare}");
    let client = c.lab.client().ns.clone();
    c.lab
        .add_route_via(&client, "172.18.0.150/32", c.lab.node(1).ip)
        .unwrap();
    c.lab
        .add_route_via(&client, "172.18.0.201/32", c.lab.node(2).ip)
        .unwrap();
    c.lab
        .add_route_via(&client, "172.18.0.202/32", c.lab.node(1).ip)
        .unwrap();
    for url in [
        "http://172.18.0.150/",
        "http://172.18.0.201/",
        "http://172.18.0.202/",
    ] {
        let counts = spread(&c, &client, url, 20);
        assert_eq!(
            counts.keys().cloned().collect::<Vec<_>>(),
            vec!["web-1", "web-2"],
            "{url}: {counts:?}"
        );
    }
}

#[test]
fn multi_port_service_serves_tcp_and_udp() {
    let Some(c) = cluster("multi_port_service_serves_tcp_and_udp", &[]) else {
        return;
    };
    let _backends = web_backends(&c);
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: multi\nspec:\n  selector:\n    app: web\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n    - name: alt\n      port: 8000\n      targetPort: 8080\n    - name: udp\n      protocol: UDP\n      port: 53\n      targetPort: udp\n",
    )
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let ip = cluster_ip(&c, "multi");
    let pod = c.lab.pod(1, 2).ns.clone();
    assert!(curl(&c, &pod, &format!("http://{ip}:80/"))
        .unwrap()
        .starts_with("web-"));
    assert!(curl(&c, &pod, &format!("http://{ip}:8000/"))
        .unwrap()
        .starts_with("web-"));
    let replies = udp(&c, &pod, &format!("{ip}:53"), 40001, 3);
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(replies.iter().all(|r| r.starts_with("web-")), "{replies:?}");
}

#[test]
fn hairpin_pod_reaches_itself_through_its_service() {
    let Some(c) = cluster("hairpin_pod_reaches_itself_through_its_service", &[]) else {
        return;
    };
    let _backends = web_backends(&c);
    c.apply(&service_yaml("web", "")).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let url = format!("http://{}/", cluster_ip(&c, "web"));
    let me = c.lab.pod(1, 1).clone();
    let mut hit_self = false;
    for _ in 0..30 {
        let body = curl(&c, &me.ns, &url).unwrap();
        if body.starts_with("web-1 ") {
            hit_self = true;
            // Masqueraded: the pod must not see its own address as the peer.
            assert!(
                !body.contains(&format!(" {}:", me.ip)),
                "hairpin not masqueraded: {body}"
            );
        }
    }
    assert!(hit_self, "never reached itself in 30 tries");
}

#[test]
fn internal_traffic_policy_local_uses_only_this_nodes_endpoints() {
    let Some(c) = cluster(
        "internal_traffic_policy_local_uses_only_this_nodes_endpoints",
        &[],
    ) else {
        return;
    };
    c.apply(&c.pod_manifest(1, 1, "web-1", "web", 8080))
        .unwrap();
    let _b = c.backend(1, 1, "web-1", 8080).unwrap();
    c.apply(&service_yaml("web", "  internalTrafficPolicy: Local\n"))
        .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let url = format!("http://{}/", cluster_ip(&c, "web"));
    let counts = spread(&c, &c.lab.pod(1, 2).ns, &url, 10);
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), vec!["web-1"]);
    // Node 2 has no local endpoint: dropped (curl times out, exit 28).
    assert_eq!(curl(&c, &c.lab.pod(2, 2).ns, &url), Err(28));
}

#[test]
fn client_ip_affinity_sticks_to_one_backend() {
    let Some(c) = cluster("client_ip_affinity_sticks_to_one_backend", &[]) else {
        return;
    };
    let _backends = web_backends(&c);
    c.apply(&service_yaml("web", "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 60\n")).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let url = format!("http://{}/", cluster_ip(&c, "web"));
    for ns in [c.lab.pod(1, 2).ns.clone(), c.lab.pod(2, 2).ns.clone()] {
        let counts = spread(&c, &ns, &url, 20);
        assert_eq!(counts.len(), 1, "affinity broken from {ns}: {counts:?}");
    }
}

#[test]
fn udp_clients_follow_endpoint_changes_from_a_fixed_port() {
    let Some(c) = cluster("udp_clients_follow_endpoint_changes_from_a_fixed_port", &[]) else {
        return;
    };
    let udp_svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: dns\nspec:\n  selector:\n    app: web\n  ports:\n    - name: udp\n      protocol: UDP\n      port: 53\n      targetPort: udp\n";
    c.apply(udp_svc).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let to = format!("{}:53", cluster_ip(&c, "dns"));
    let client = c.lab.pod(1, 2).ns.clone();
    // No endpoints yet: nothing answers; the conntrack entry this leaves
    // must not blackhole the client once an endpoint is ready.
    assert_eq!(udp(&c, &client, &to, 40053, 2), vec!["timeout", "timeout"]);
    let _backends = web_backends(&c);
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let started = Instant::now();
    eventually(
        "the new endpoint answers the same source port",
        Duration::from_secs(5),
        || {
            udp(&c, &client, &to, 40053, 1)
                .first()
                .is_some_and(|r| r.starts_with("web-"))
        },
    );
    let first = udp(&c, &client, &to, 40053, 1)[0]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // Remove the endpoint this flow is pinned to; its backend keeps running,
    // so only a conntrack flush moves the client to the other one.
    c.swctl_ok(&["delete", "pod", &first]).unwrap();
    eventually(
        "the flow moves to the remaining endpoint",
        Duration::from_secs(5),
        || {
            udp(&c, &client, &to, 40053, 1)
                .first()
                .is_some_and(|r| r.starts_with("web-") && !r.starts_with(&format!("{first} ")))
        },
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn node_port_answers_from_the_node_itself_and_local_policy_drops_without_local_endpoints() {
    let Some(c) = cluster(
        "node_port_answers_from_the_node_itself_and_local_policy_drops_without_local_endpoints",
        &[],
    ) else {
        return;
    };
    c.apply(&c.pod_manifest(1, 1, "web-1", "web", 8080))
        .unwrap();
    let _b = c.backend(1, 1, "web-1", 8080).unwrap();
    c.apply(&service_yaml(
        "web",
        "  type: NodePort\n  externalTrafficPolicy: Local\n",
    ))
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let port = node_port(&c, "web");
    let (node1, node2) = (c.lab.node(1).ip, c.lab.node(2).ip);
    // From the node itself, to its own address.
    let body = curl(&c, &c.lab.node(1).ns, &format!("http://{node1}:{port}/")).unwrap();
    assert!(body.starts_with("web-1 "), "{body}");
    // From outside: node 1 has the endpoint and keeps the client address;
    // node 2 has none and drops (timeout), it does not forward.
    let client = c.lab.client().ns.clone();
    let body = curl(&c, &client, &format!("http://{node1}:{port}/")).unwrap();
    assert!(body.starts_with("web-1 172.18.0.100:"), "{body}");
    assert_eq!(
        curl(&c, &client, &format!("http://{node2}:{port}/")),
        Err(28)
    );
}

/// `loadBalancerSourceRanges` admit only their sources to the LB IP (the
/// others' connections are dropped before DNAT, as kube-proxy's firewall
/// does); NodePorts are not checked; a change of ranges applies at once.
#[test]
fn load_balancer_source_ranges_admit_only_their_sources() {
    let Some(c) = cluster(
        "load_balancer_source_ranges_admit_only_their_sources",
        &["--lb-pool", "172.18.0.200/29"],
    ) else {
        return;
    };
    let _backends = web_backends(&c);
    let client = c.lab.client().clone();
    let ranges = |list: &[String]| {
        let items: String = list.iter().map(|r| format!("    - {r}\n")).collect();
        format!("  type: LoadBalancer\n  loadBalancerSourceRanges:\n{items}")
    };
    c.apply(&service_yaml(
        "web",
        &ranges(&[format!("{}/32", client.ip)]),
    ))
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let svc = json(&c, &["get", "svc", "web"]);
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"][0]["ip"],
        "172.18.0.201"
    );
    c.lab
        .add_route_via(&client.ns, "172.18.0.201/32", c.lab.node(1).ip)
        .unwrap();
    let lb = "http://172.18.0.201/";
    let pod = c.lab.pod(1, 2).ns.clone();
    let reached = |ns: &str| (0..3).filter(|_| curl(&c, ns, lb).is_ok()).count();
    assert_eq!(reached(&client.ns), 3, "the client is in the range");
    assert_eq!(reached(&pod), 0, "a pod is not");
    let node_port = format!("http://{}:{}/", c.lab.node(1).ip, node_port(&c, "web"));
    assert!(curl(&c, &pod, &node_port).unwrap().starts_with("web-"));

    c.apply(&service_yaml(
        "web",
        &ranges(&[format!("{}/32", client.ip), "10.244.0.0/16".to_string()]),
    ))
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    assert_eq!(reached(&pod), 3, "pods are in the new range");
    assert_eq!(reached(&client.ns), 3);

    c.apply(&service_yaml("web", &ranges(&["192.0.2.0/24".to_string()])))
        .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    assert_eq!(reached(&client.ns), 0, "the client is out of the range");
}
