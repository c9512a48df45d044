//! Node and Service health as load balancers and supervisors see it, on
//! the namespace lab: kube-proxy's `/healthz` and `/livez` on every node,
//! and each Local LoadBalancer's health check node port answering with
//! the node's count of ready local endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::time::Duration;

use e2e::*;
use switchyard_lab::cluster::Cluster;

const LOCAL_LB: &str = "  type: LoadBalancer\n  externalTrafficPolicy: Local\n";

fn health_check_port(c: &Cluster, svc: &str) -> u64 {
    json(c, &["get", "svc", svc])["spec"]["healthCheckNodePort"]
        .as_u64()
        .unwrap()
}

fn check_body(endpoints: usize, healthy: bool) -> String {
    format!("{{\"service\":{{\"namespace\":\"default\",\"name\":\"web\"}},\"localEndpoints\":{endpoints},\"serviceProxyHealthy\":{healthy}}}")
}

/// `/healthz` or `/livez` of node `i`, from the client: status and whether
/// the body has kube-proxy's shape.
fn node_health(c: &Cluster, i: usize, path: &str) -> (u16, serde_json::Value) {
    let url = format!("http://{}:10256{path}", c.lab.node(i).ip);
    let (code, body) = probe(c, &c.lab.client().ns, &url).unwrap();
    (code, serde_json::from_str(&body).unwrap())
}

fn assert_kube_proxy_shape(body: &serde_json::Value) {
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["currentTime", "lastUpdated", "nodeEligible"],
        "{body}"
    );
    assert_eq!(body["nodeEligible"], true);
    for key in ["currentTime", "lastUpdated"] {
        let stamp = body[key].as_str().unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{key}: {stamp}");
    }
}

/// The value of an unlabelled sample in a Prometheus text page.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
        .parse()
        .unwrap()
}

fn scrape(c: &Cluster, host: &str, port: u16) -> String {
    let url = format!("http://{host}:{port}/metrics");
    let (code, page) = probe(c, &c.lab.client().ns, &url).unwrap();
    assert_eq!(code, 200, "{page}");
    page
}

#[test]
fn health_check_node_ports_count_ready_local_endpoints_per_node() {
    let Some(c) = cluster_with(
        "health_check_node_ports_count_ready_local_endpoints_per_node",
        &[
            "--lb-pool",
            "172.18.0.200/29",
            "--metrics-listen",
            "0.0.0.0:9464",
        ],
        &["--metrics-listen", "0.0.0.0:10249"],
    ) else {
        return;
    };
    let (_backends, _url) = serve_web(&c, LOCAL_LB);
    let port = health_check_port(&c, "web");
    let client = c.lab.client().ns.clone();
    let url = |i: usize| format!("http://{}:{port}/healthz", c.lab.node(i).ip);
    for i in [1, 2] {
        assert_eq!(probe(&c, &client, &url(i)), Ok((200, check_body(1, true))));
        for path in ["/healthz", "/livez"] {
            let (code, body) = node_health(&c, i, path);
            assert_eq!(code, 200, "{path}: {body}");
            assert_kube_proxy_shape(&body);
        }
    }
    let headers = c
        .lab
        .exec_ok(
            &client,
            &["curl", "-sS", "-D", "-", "-o", "/dev/null", &url(1)],
        )
        .unwrap()
        .to_lowercase();
    assert!(
        headers.contains("content-type: application/json\r\n"),
        "{headers}"
    );
    assert!(
        headers.contains("x-load-balancing-endpoint-weight: 1\r\n"),
        "{headers}"
    );

    let node_2 = c.lab.node(2).ip.to_string();
    let before = scrape(&c, &node_2, 10249);

    // node-2's only endpoint goes: it tells the load balancer to stop.
    c.swctl_ok(&["delete", "pod", "web-2"]).unwrap();
    eventually(
        "node-2 without local endpoints",
        Duration::from_secs(10),
        || probe(&c, &client, &url(2)) == Ok((503, check_body(0, true))),
    );
    assert_eq!(probe(&c, &client, &url(1)), Ok((200, check_body(1, true))));

    // kube-proxy's metrics saw one endpoint change and no Service change
    // reach node-2's data path, with its commit-to-applied time.
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let after = scrape(&c, &node_2, 10249);
    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(
        delta("kubeproxy_sync_proxy_rules_endpoint_changes_total"),
        1.0
    );
    assert_eq!(
        delta("kubeproxy_sync_proxy_rules_service_changes_total"),
        0.0
    );
    assert_eq!(
        delta("kubeproxy_network_programming_duration_seconds_count"),
        1.0
    );
    assert_eq!(
        delta("kubeproxy_sync_proxy_rules_duration_seconds_count"),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"
        ),
        0.0
    );
    let programmed = delta("kubeproxy_network_programming_duration_seconds_sum");
    assert!(programmed > 0.0 && programmed < 10.0, "{programmed}");
    assert!(sample(&after, "kubeproxy_sync_proxy_rules_last_timestamp_seconds") > 1.7e9);
    assert_eq!(sample(&after, "switchyard_agent_connected"), 1.0);
    let cp = scrape(&c, &c.lab.control_plane().ip.to_string(), 9464);
    assert!(
        cp.contains("switchyard_snapshot_push_latency_seconds_count{node=\"node-2\"} "),
        "{cp}"
    );
    assert_eq!(sample(&cp, "switchyard_agents_connected"), 2.0);

    // The Cluster policy has no health check: the port closes everywhere.
    c.apply(&service_yaml("web", "  type: LoadBalancer\n"))
        .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let web = json(&c, &["get", "svc", "web"]);
    assert!(web["spec"].get("healthCheckNodePort").is_none(), "{web}");
    for i in [1, 2] {
        eventually(
            "the health check port closed",
            Duration::from_secs(10),
            || probe(&c, &client, &url(i)) == Err(7),
        );
    }
}

/// With `--healthz-timeout-seconds 3`: a node whose pushes the kernel
/// keeps refusing says so on `/healthz` and on the health check port once
/// the change has waited 3 s, and is healthy again once it applies.
#[test]
fn a_node_whose_pushes_keep_failing_reports_itself_unhealthy_until_they_apply() {
    let Some(mut c) = cluster_with(
        "a_node_whose_pushes_keep_failing_reports_itself_unhealthy_until_they_apply",
        &["--lb-pool", "172.18.0.200/29"],
        &["--healthz-timeout-seconds", "3"],
    ) else {
        return;
    };
    let (_backends, _url) = serve_web(&c, LOCAL_LB);
    let port = health_check_port(&c, "web");
    let client = c.lab.client().ns.clone();
    let check_url = format!("http://{}:{port}/", c.lab.node(1).ip);
    assert_eq!(
        probe(&c, &client, &check_url),
        Ok((200, check_body(1, true)))
    );

    // A foreign table in the agent's way: every apply is refused.
    block_with_foreign_table(&mut c, 1);
    let node = c.lab.node(1).ns.clone();
    eventually("node-1 unhealthy", Duration::from_secs(20), || {
        node_health(&c, 1, "/healthz").0 == 503
    });
    let (code, body) = node_health(&c, 1, "/livez");
    assert_eq!(code, 503, "{body}");
    assert_kube_proxy_shape(&body);
    assert_eq!(
        probe(&c, &client, &check_url),
        Ok((503, check_body(1, false)))
    );
    assert_eq!(node_health(&c, 2, "/healthz").0, 200);

    c.lab
        .exec_ok(&node, &["nft", "delete", "table", "ip", "switchyard"])
        .unwrap();
    c.wait_synced(Duration::from_secs(40)).unwrap();
    eventually("node-1 healthy again", Duration::from_secs(10), || {
        node_health(&c, 1, "/healthz").0 == 200
    });
    assert_eq!(
        probe(&c, &client, &check_url),
        Ok((200, check_body(1, true)))
    );
}
