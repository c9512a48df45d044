//! The control plane and swctl end to end: a real server process with its
//! sled store on a loopback port, driven only through swctl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{example, rows_without_age, ControlPlane};

fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

fn cluster_ip(cp: &ControlPlane, name: &str) -> String {
    cp.json(&["get", "svc", name])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn frontend_service_shows_cluster_ip_and_both_endpoints() {
    let cp = ControlPlane::start(&[]);
    let applied = cp.apply_yaml(&example("frontend.yaml"));
    assert_eq!(
        applied,
        "deployment.apps/frontend created\npod/frontend-1 created\npod/frontend-2 created\nservice/frontend-svc created\n"
    );
    let ip = cluster_ip(&cp, "frontend-svc");
    assert!(
        ip.starts_with("10.9") || ip.starts_with("10.10") || ip.starts_with("10.11"),
        "{ip}"
    );

    let out = cp.ok(&["get", "service,endpoints", "frontend-svc"]);
    assert_eq!(
        rows_without_age(&out),
        strs(&[
            &["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"],
            &["service/frontend-svc", "ClusterIP", &ip, "<none>", "80/TCP"],
            &["NAME", "ENDPOINTS"],
            &[
                "endpoints/frontend-svc",
                "10.244.1.11:5000,10.244.2.11:5000"
            ],
        ])
    );
    let deploy = cp.ok(&["get", "deploy"]);
    assert_eq!(
        rows_without_age(&deploy),
        strs(&[
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE"],
            &["frontend", "2/2", "2", "2"]
        ])
    );
    // Re-applying the same manifests changes nothing.
    assert_eq!(
        cp.apply_yaml(&example("frontend.yaml")),
        "deployment.apps/frontend unchanged\npod/frontend-1 unchanged\npod/frontend-2 unchanged\nservice/frontend-svc unchanged\n"
    );
}

const NODE_PORT_A: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  type: NodePort
  selector: {app: a}
  ports: [{port: 80, targetPort: 5000, nodePort: 30080}]
"#;

const NODE_PORT_B: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  type: NodePort
  selector: {app: b}
  ports: [{port: 80, nodePort: 30080}]
"#;

#[test]
fn node_port_conflict_is_rejected_and_changes_nothing() {
    let cp = ControlPlane::start(&[]);
    cp.apply_yaml(NODE_PORT_A);
    let out = cp.swctl_stdin(&["apply", "-f", "-"], Some(NODE_PORT_B));
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "The Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated\n"
    );
    assert_eq!(
        cp.fails(&["get", "svc", "b"]),
        "Error from server (NotFound): services \"b\" not found\n"
    );
    let table = cp.ok(&["get", "svc", "a"]);
    assert_eq!(rows_without_age(&table)[1][4], "80:30080/TCP");
    // Deleting frees the port for someone else.
    assert_eq!(cp.ok(&["delete", "svc", "a"]), "service \"a\" deleted\n");
    assert_eq!(cp.apply_yaml(NODE_PORT_B), "service/b created\n");
}

#[test]
fn invalid_port_names_the_field_and_rule() {
    let cp = ControlPlane::start(&[]);
    let bad = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"port":70000}]}}"#;
    let out = cp.swctl_stdin(&["apply", "-f", "-"], Some(bad));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
        ),
        "{err}"
    );
    assert_eq!(
        cp.fails(&["get", "svc", "web"]),
        "Error from server (NotFound): services \"web\" not found\n"
    );
}

#[test]
fn restart_keeps_objects_allocations_and_versions() {
    let mut cp = ControlPlane::start(&[]);
    cp.apply_yaml(&example("frontend.yaml"));
    cp.apply_yaml(NODE_PORT_A);
    let before = cp.json(&["get", "svc", "-A"]);
    let slices_before = cp.json(&["get", "endpointslices"]);
    cp.restart();
    assert_eq!(cp.json(&["get", "svc", "-A"]), before);
    assert_eq!(cp.json(&["get", "endpointslices"]), slices_before);
    // The NodePort is still held after the restart.
    let err = cp.swctl_stdin(&["apply", "-f", "-"], Some(NODE_PORT_B));
    assert!(String::from_utf8_lossy(&err.stderr).contains("provided port is already allocated"));
    // And the revision keeps counting up from where it was.
    let rv_before: u64 = before["items"][0]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    cp.ok(&["create", "service", "clusterip", "later", "--tcp=81:8081"]);
    let rv_after: u64 = cp.json(&["get", "svc", "later"])["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv_after > rv_before);
}

#[test]
fn create_service_nodeport_and_expose_deployment() {
    let cp = ControlPlane::start(&[]);
    assert_eq!(
        cp.ok(&[
            "create",
            "service",
            "nodeport",
            "web",
            "--tcp=80:5000",
            "--node-port=32233"
        ]),
        "service/web created\n"
    );
    let row = &rows_without_age(&cp.ok(&["get", "svc", "web"]))[1];
    assert_eq!(row[1], "NodePort");
    assert_eq!(row[4], "80:32233/TCP");
    let err = cp.fails(&["create", "service", "nodeport", "web", "--tcp=80:5000"]);
    assert_eq!(
        err,
        "Error from server (AlreadyExists): services \"web\" already exists\n"
    );

    cp.apply_yaml(&example("frontend.yaml"));
    assert_eq!(
        cp.ok(&[
            "expose",
            "deploy",
            "frontend",
            "--port=8080",
            "--target-port=5000",
            "--name=frontend-np",
            "--type=NodePort"
        ]),
        "service/frontend-np exposed\n"
    );
    let out = cp.ok(&["get", "ep", "frontend-np"]);
    assert_eq!(
        rows_without_age(&out)[1],
        vec!["frontend-np", "10.244.1.11:5000,10.244.2.11:5000"]
    );
    let svc = cp.json(&["get", "svc", "frontend-np"]);
    assert_eq!(
        svc["spec"]["selector"],
        serde_json::json!({"app": "frontend"})
    );
    assert_eq!(svc["spec"]["type"], "NodePort");
}

#[test]
fn load_balancer_is_pending_without_a_pool() {
    let cp = ControlPlane::start(&[]);
    cp.ok(&["create", "service", "loadbalancer", "lb", "--tcp=443:8443"]);
    let row = &rows_without_age(&cp.ok(&["get", "svc", "lb"]))[1];
    assert_eq!(row[1], "LoadBalancer");
    assert_eq!(row[3], "<pending>");
    assert!(
        row[4].starts_with("443:") && row[4].ends_with("/TCP"),
        "{row:?}"
    );
}

#[test]
fn load_balancer_gets_an_address_from_the_pool() {
    let cp = ControlPlane::start(&["--lb-pool", "172.18.0.200/29"]);
    cp.ok(&["create", "service", "loadbalancer", "lb", "--tcp=443:8443"]);
    let row = &rows_without_age(&cp.ok(&["get", "svc", "lb"]))[1];
    assert_eq!(row[3], "172.18.0.201");
}

#[test]
fn namespaces_scope_objects_and_cascade_on_delete() {
    let cp = ControlPlane::start(&[]);
    let err = cp.fails(&[
        "create",
        "service",
        "clusterip",
        "x",
        "--tcp=80",
        "-n",
        "team-a",
    ]);
    assert_eq!(
        err,
        "Error from server (NotFound): namespaces \"team-a\" not found\n"
    );
    assert_eq!(
        cp.ok(&["create", "namespace", "team-a"]),
        "namespace/team-a created\n"
    );
    cp.ok(&[
        "create",
        "service",
        "clusterip",
        "x",
        "--tcp=80",
        "-n",
        "team-a",
    ]);
    assert_eq!(
        cp.swctl(&["get", "svc"]).stderr,
        b"No resources found in default namespace.\n"
    );
    let all = cp.ok(&["get", "svc", "-A"]);
    assert_eq!(
        rows_without_age(&all)[1][..3],
        [
            "team-a".to_string(),
            "x".to_string(),
            "ClusterIP".to_string()
        ]
    );
    assert_eq!(
        cp.ok(&["delete", "namespace", "team-a"]),
        "namespace \"team-a\" deleted\n"
    );
    assert_eq!(
        cp.swctl(&["get", "svc", "-A"]).stderr,
        b"No resources found\n"
    );
    let err = cp.fails(&["delete", "ns", "default"]);
    assert_eq!(err, "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted\n");
}

#[test]
fn label_selectors_filter_lists() {
    let cp = ControlPlane::start(&[]);
    cp.apply_yaml(&example("frontend.yaml"));
    cp.ok(&["create", "service", "clusterip", "other", "--tcp=80"]);
    let names = cp.ok(&["get", "svc", "-l", "app=other", "-o", "name"]);
    assert_eq!(names, "service/other\n");
    let pods = cp.ok(&["get", "pods", "-l", "app=frontend", "-o", "name"]);
    assert_eq!(pods, "pod/frontend-1\npod/frontend-2\n");
}

#[test]
fn readiness_probe_pods_start_unready() {
    let cp = ControlPlane::start(&[]);
    cp.apply_yaml(&example("frontend.yaml"));
    cp.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: frontend-3, labels: {app: frontend}}
spec:
  nodeName: node-1
  containers:
    - name: web
      ports: [{containerPort: 5000}]
      readinessProbe: {tcpSocket: {port: 5000}, periodSeconds: 1}
status: {podIP: 10.244.1.12}
"#,
    );
    let slices = cp.json(&["get", "endpointslices"]);
    let endpoints = &slices["items"][0]["endpoints"];
    let ready: Vec<(String, bool)> = endpoints
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap().to_string(),
                e["conditions"]["ready"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ready,
        vec![
            ("10.244.1.11".to_string(), true),
            ("10.244.2.11".to_string(), true),
            ("10.244.1.12".to_string(), false)
        ]
    );
    // The Endpoints view lists only ready addresses.
    let out = cp.ok(&["get", "ep", "frontend-svc"]);
    assert_eq!(
        rows_without_age(&out)[1],
        vec!["frontend-svc", "10.244.1.11:5000,10.244.2.11:5000"]
    );
    let deploy = rows_without_age(&cp.ok(&["get", "deploy", "frontend"]));
    assert_eq!(deploy[1][1], "2/2");
}

#[test]
fn deleting_a_pod_removes_its_endpoint() {
    let cp = ControlPlane::start(&[]);
    cp.apply_yaml(&example("frontend.yaml"));
    assert_eq!(
        cp.ok(&["delete", "pod", "frontend-2"]),
        "pod \"frontend-2\" deleted\n"
    );
    let out = cp.ok(&["get", "ep", "frontend-svc"]);
    assert_eq!(
        rows_without_age(&out)[1],
        vec!["frontend-svc", "10.244.1.11:5000"]
    );
    cp.ok(&["delete", "svc", "frontend-svc"]);
    assert_eq!(
        cp.swctl(&["get", "endpointslices"]).stderr,
        b"No resources found in default namespace.\n"
    );
}

#[test]
fn watch_prints_new_objects() {
    let cp = ControlPlane::start(&[]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swctl"))
        .args(["get", "svc", "-w"])
        .env("SWITCHYARD_SERVER", &cp.server)
        .env("SWITCHYARD_CONFIG", cp.config())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    cp.ok(&["create", "service", "clusterip", "watched", "--tcp=80"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = rows_without_age(&text);
    assert_eq!(
        rows[0],
        vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    );
    assert_eq!(rows[1][0], "watched");
    assert_eq!(rows[1][4], "80/TCP");
}

/// `get -w -o name|yaml` prints each object in that format, as kubectl does.
#[test]
fn watch_prints_names_or_documents() {
    let cp = ControlPlane::start(&[]);
    cp.ok(&["create", "service", "clusterip", "first", "--tcp=80"]);
    let watch = |format: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_swctl"))
            .args(["get", "svc", "-w", "-o", format])
            .env("SWITCHYARD_SERVER", &cp.server)
            .env("SWITCHYARD_CONFIG", cp.config())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (names, yaml) = (watch("name"), watch("yaml"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    cp.ok(&["create", "service", "clusterip", "second", "--tcp=81"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let output = |mut child: std::process::Child| {
        child.kill().unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(output(names), "service/first\nservice/second\n");
    let yaml = output(yaml);
    let documents: Vec<&str> = yaml.split("---\n").collect();
    assert_eq!(documents.len(), 2, "{yaml}");
    assert!(
        documents[0].starts_with("apiVersion: v1\nkind: Service\n"),
        "{yaml}"
    );
    assert!(documents[1].contains("  name: second\n"), "{yaml}");
}

#[test]
fn describe_service_lists_endpoints() {
    let cp = ControlPlane::start(&[]);
    cp.apply_yaml(&example("frontend.yaml"));
    let out = cp.ok(&["describe", "svc", "frontend-svc"]);
    let ip = cluster_ip(&cp, "frontend-svc");
    assert!(
        out.contains("Name:                     frontend-svc\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("IP:                       {ip}\n")),
        "{out}"
    );
    assert!(
        out.contains("Endpoints:                10.244.1.11:5000,10.244.2.11:5000\n"),
        "{out}"
    );
    assert!(
        out.contains("Selector:                 app=frontend\n"),
        "{out}"
    );
}

#[test]
fn completion_scripts_are_generated() {
    let cp = ControlPlane::start(&[]);
    for shell in ["bash", "zsh", "fish"] {
        let out = cp.ok(&["completion", shell]);
        assert!(out.contains("swctl"), "{shell}");
    }
}

#[test]
fn metrics_count_requests_and_store_commits() {
    let addr = support::free_loopback_address();
    let cp = ControlPlane::start(&["--metrics-listen", &addr]);
    cp.ok(&["create", "service", "clusterip", "m", "--tcp=80"]);
    cp.fails(&["get", "svc", "missing"]);
    let body = support::http_get(&addr, "/metrics");
    assert!(
        body.contains("switchyard_api_requests_total{method=\"/switchyard.v1.Resources/Apply\",code=\"Ok\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("switchyard_api_requests_total{method=\"/switchyard.v1.Resources/Get\",code=\"NotFound\"} 1"),
        "{body}"
    );
    // The default namespace, the admin user and the service: three durable commits.
    assert!(
        body.contains("switchyard_store_commit_duration_seconds_count 3"),
        "{body}"
    );
    assert!(body.contains("switchyard_agents_connected 0"), "{body}");
    for path in ["/livez", "/healthz", "/readyz"] {
        let answer = support::http_get(&addr, path);
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{path}: {answer}"
        );
        assert!(answer.ends_with("\r\n\r\nok"), "{path}: {answer}");
    }
}

#[test]
fn a_manifest_of_thousands_of_documents_applies_in_document_order() {
    let cp = ControlPlane::start(&[]);
    let n = 2_500;
    let yaml: String = (0..n)
        .map(|i| {
            format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: many-{i}\nspec:\n  ports:\n    - port: 80\n---\n")
        })
        .collect();
    let path = cp.data_dir.with_file_name("many.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = cp.ok(&["apply", "-f", path.to_str().unwrap()]);
    let want: String = (0..n)
        .map(|i| format!("service/many-{i} created\n"))
        .collect();
    assert!(
        out == want,
        "{} lines, first differing: {:?}",
        out.lines().count(),
        out.lines().zip(want.lines()).find(|(a, b)| a != b)
    );
    let listed = cp.ok(&["get", "svc", "--no-headers"]);
    assert_eq!(listed.lines().filter(|l| l.starts_with("many-")).count(), n);
    // A broken document stops the reading there, with the file's name.
    let broken = cp.data_dir.with_file_name("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: first\nspec:\n  ports:\n    - port: 80\n---\nkind: [\n",
    )
    .unwrap();
    let out = cp.swctl(&["apply", "-f", broken.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "service/first created\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("error: error parsing {}: ", broken.display())),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A Namespace and then objects in it, in one file: each object waits for
/// the Namespace before it (kubectl applies one object after the other),
/// while the many Services after it still go concurrently.
#[test]
fn a_namespace_and_the_objects_in_it_apply_from_one_file() {
    let cp = ControlPlane::start(&[]);
    let path = cp.data_dir.with_file_name("other.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: other\nspec:\n  selector: {app: web}\n  ports:\n  - port: 80\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: other\n  labels: {app: web}\nspec:\n  nodeName: node-1\n  containers: [{name: web}]\nstatus:\n  podIP: 10.244.1.20\n",
    )
    .unwrap();
    let out = cp.swctl(&["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(0),
            "namespace/other created\nservice/web created\npod/web-1 created\n".to_string(),
            String::new()
        )
    );
    assert_eq!(
        cp.ok(&["get", "pods", "-n", "other", "-o", "name"]),
        "pod/web-1\n"
    );

    // Namespaces between runs of objects that go concurrently, and `-n`
    // for the objects that name none.
    let mut yaml = String::new();
    let mut want = String::new();
    for ns in ["team-a", "team-b"] {
        yaml += &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n");
        want += &format!("namespace/{ns} created\n");
        for i in 0..40 {
            yaml += &format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: s-{i}\n  namespace: {ns}\nspec:\n  ports:\n  - port: 80\n---\n");
            want += &format!("service/s-{i} created\n");
        }
    }
    let bulk = cp.data_dir.with_file_name("teams.yaml");
    std::fs::write(&bulk, yaml).unwrap();
    assert_eq!(cp.ok(&["apply", "-f", bulk.to_str().unwrap()]), want);
    assert_eq!(
        cp.ok(&["get", "svc", "-n", "team-b", "--no-headers"])
            .lines()
            .count(),
        40
    );
}

/// Refusals name the file as kubectl's do, after every object was tried:
/// `error when creating "FILE"` for an object that did not exist,
/// `error when applying patch: …` for one that did; a lone validation
/// failure keeps kubectl's `The Service "x" is invalid: …`.
#[test]
fn refusals_name_the_file_as_kubectl_does() {
    let cp = ControlPlane::start(&[]);
    let path = cp.data_dir.with_file_name("ns.yaml");
    let file = path.to_str().unwrap();
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: missing\nspec:\n  ports:\n  - port: 80\n",
    )
    .unwrap();
    let out = cp.swctl(&["apply", "-f", file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("Error from server (NotFound): error when creating \"{file}\": namespaces \"missing\" not found\n")
    );

    // From standard input the file is "STDIN"; objects applied are
    // reported first, refusals last.
    cp.apply_yaml(NODE_PORT_A);
    let two = format!(
        "{}---\n{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: fine\nspec:\n  ports:\n  - port: 80\n",
        NODE_PORT_B,
        NODE_PORT_B.replace("name: b", "name: c")
    );
    let out = cp.swctl_stdin(&["apply", "-f", "-"], Some(&two));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "service/fine created\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error from server (Invalid): error when creating \"STDIN\": Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated\n\
         Error from server (Invalid): error when creating \"STDIN\": Service \"c\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated\n"
    );

    // Objects that exist are patched: kubectl shows what it sent, and to what.
    let update = "apiVersion: v1\nkind: Service\nmetadata:\n  name: fine\nspec:\n  type: ClusterIP\n  ports:\n  - port: 80\n    nodePort: 30081\n";
    std::fs::write(&path, format!("{update}---\n{NODE_PORT_B}")).unwrap();
    let out = cp.swctl(&["apply", "-f", file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 7, "{stderr}");
    assert_eq!(
        lines[0],
        "Error from server (Invalid): error when applying patch:"
    );
    let sent: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "fine", "namespace": "default"},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30081}]},
        })
    );
    assert_eq!(
        lines[2..],
        [
            "to:",
            "Resource: \"/v1, Resource=services\", GroupVersionKind: \"/v1, Kind=Service\"",
            "Name: \"fine\", Namespace: \"default\"",
            &format!("for: \"{file}\": error when patching \"{file}\": Service \"fine\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
            &format!("Error from server (Invalid): error when creating \"{file}\": Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"),
        ]
    );
}

fn applied(cp: &ControlPlane, yaml: &str) -> Result<String, String> {
    let out = cp.swctl_stdin(&["apply", "-f", "-"], Some(yaml));
    match out.status.success() {
        true => Ok(String::from_utf8(out.stdout).unwrap()),
        false => Err(String::from_utf8(out.stderr).unwrap()),
    }
}

fn lb_service(name: &str, extra: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: LoadBalancer\n{extra}  ports:\n  - port: 80\n")
}

/// `allocateLoadBalancerNodePorts: false` gives a LoadBalancer Service its
/// LB IP but no NodePort (one asked for by number is still taken); the
/// default is `true`; on other types the field is refused.
#[test]
fn load_balancers_may_go_without_node_ports() {
    let cp = ControlPlane::start(&["--lb-pool", "172.18.0.200/29"]);
    applied(
        &cp,
        &lb_service("bare", "  allocateLoadBalancerNodePorts: false\n"),
    )
    .unwrap();
    let bare = cp.json(&["get", "svc", "bare"]);
    assert_eq!(bare["spec"]["allocateLoadBalancerNodePorts"], false);
    assert!(bare["spec"]["ports"][0].get("nodePort").is_none(), "{bare}");
    assert!(bare["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .unwrap()
        .starts_with("172.18.0.20"));
    let asked =
        "  allocateLoadBalancerNodePorts: false\n  ports:\n  - port: 80\n    nodePort: 30555\n";
    let asked = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: asked\nspec:\n  type: LoadBalancer\n{asked}");
    applied(&cp, &asked).unwrap();
    assert_eq!(
        cp.json(&["get", "svc", "asked"])["spec"]["ports"][0]["nodePort"],
        30555
    );

    applied(&cp, &lb_service("usual", "")).unwrap();
    let usual = cp.json(&["get", "svc", "usual"]);
    assert_eq!(usual["spec"]["allocateLoadBalancerNodePorts"], true);
    assert!(
        usual["spec"]["ports"][0]["nodePort"].as_u64().is_some(),
        "{usual}"
    );

    let cluster_ip = "apiVersion: v1\nkind: Service\nmetadata:\n  name: inner\nspec:\n  allocateLoadBalancerNodePorts: false\n  ports:\n  - port: 80\n";
    assert_eq!(
        applied(&cp, cluster_ip).unwrap_err(),
        "The Service \"inner\" is invalid: spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'\n"
    );
}

#[test]
fn session_affinity_config_without_client_ip_affinity_is_refused() {
    let cp = ControlPlane::start(&[]);
    let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: sticky\nspec:\n  sessionAffinity: None\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 60\n  ports:\n  - port: 80\n";
    assert_eq!(
        applied(&cp, yaml).unwrap_err(),
        "The Service \"sticky\" is invalid: spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None\n"
    );
    assert_eq!(
        cp.fails(&["get", "svc", "sticky"]),
        "Error from server (NotFound): services \"sticky\" not found\n"
    );
}

fn local_lb(name: &str, extra: &str) -> String {
    lb_service(name, &format!("  externalTrafficPolicy: Local\n{extra}"))
}

/// A LoadBalancer with the Local policy gets a health check port from the
/// NodePort range (or the one it asks for, checked as Kubernetes does),
/// shown by describe, held apart from its NodePorts and released when the
/// policy changes.
#[test]
fn local_load_balancers_hold_a_health_check_node_port() {
    let cp = ControlPlane::start(&["--node-port-range", "30100-30102"]);
    let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports:\n  - port: 80\n    nodePort: 30100\n";
    applied(&cp, yaml).unwrap();
    let web = cp.json(&["get", "svc", "web"]);
    let hc = web["spec"]["healthCheckNodePort"].as_u64().unwrap();
    assert!(hc == 30101 || hc == 30102, "{web}");
    let describe = cp.ok(&["describe", "svc", "web"]);
    assert!(
        describe.contains(&format!("HealthCheck NodePort:     {hc}\n")),
        "{describe}"
    );
    // Re-applied without it, it keeps the port it has.
    applied(&cp, yaml).unwrap();
    assert_eq!(
        cp.json(&["get", "svc", "web"])["spec"]["healthCheckNodePort"],
        hc
    );

    let other = 60203 - hc;
    let taken = local_lb("taken", &format!("  healthCheckNodePort: {hc}\n"));
    assert_eq!(
        applied(&cp, &taken).unwrap_err(),
        format!("The Service \"taken\" is invalid: spec.healthCheckNodePort: Invalid value: {hc}: provided port is already allocated\n")
    );
    let moved = yaml.replace(
        "  ports:",
        &format!("  healthCheckNodePort: {other}\n  ports:"),
    );
    assert_eq!(
        applied(&cp, &moved).unwrap_err(),
        format!("The Service \"web\" is invalid: spec.healthCheckNodePort: Invalid value: {other}: cannot change healthCheckNodePort on loadBalancer service with externalTraffic=Local during update\n")
    );
    assert_eq!(
        applied(&cp, &local_lb("far", "  healthCheckNodePort: 80\n")).unwrap_err(),
        "The Service \"far\" is invalid: spec.healthCheckNodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30100-30102\n"
    );
    let cluster = lb_service("cluster", &format!("  healthCheckNodePort: {other}\n"));
    assert_eq!(
        applied(&cp, &cluster).unwrap_err(),
        format!("The Service \"cluster\" is invalid: spec.healthCheckNodePort: Invalid value: {other}: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'\n")
    );

    // The Cluster policy needs no health check: the port goes back.
    applied(&cp, &yaml.replace("Local", "Cluster")).unwrap();
    let web = cp.json(&["get", "svc", "web"]);
    assert!(web["spec"].get("healthCheckNodePort").is_none(), "{web}");
    applied(&cp, &taken).unwrap();
    assert_eq!(
        cp.json(&["get", "svc", "taken"])["spec"]["healthCheckNodePort"],
        hc
    );
}

/// `get -o yaml`, edited to `type: ClusterIP` and applied, is accepted as
/// Kubernetes accepts it: the fields only the old type needed are dropped
/// and what they held is free for others.
#[test]
fn a_service_read_back_and_edited_to_another_type_drops_what_that_type_refuses() {
    let cp = ControlPlane::start(&["--lb-pool", "172.18.0.200/29"]);
    let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 30200\n  ports:\n  - port: 80\n    nodePort: 30100\n";
    applied(&cp, yaml).unwrap();
    let read_back = cp.ok(&["get", "svc", "web", "-o", "yaml"]);
    assert!(read_back.contains("  type: LoadBalancer\n"), "{read_back}");
    let edited = read_back.replace("  type: LoadBalancer\n", "  type: ClusterIP\n");
    assert_eq!(applied(&cp, &edited).unwrap(), "service/web configured\n");

    let web = cp.json(&["get", "svc", "web"]);
    let spec = &web["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    for gone in [
        "externalTrafficPolicy",
        "healthCheckNodePort",
        "allocateLoadBalancerNodePorts",
    ] {
        assert!(spec.get(gone).is_none(), "{gone} in {web}");
    }
    assert!(spec["ports"][0].get("nodePort").is_none(), "{web}");
    assert!(
        web.get("status")
            .is_none_or(|s| s.get("loadBalancer").is_none()),
        "{web}"
    );
    assert_eq!(spec["clusterIP"], web["spec"]["clusterIPs"][0]);

    let reuse = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reuse\nspec:\n  type: NodePort\n  ports:\n  - name: a\n    port: 80\n    nodePort: 30100\n  - name: b\n    port: 81\n    nodePort: 30200\n";
    assert_eq!(applied(&cp, reuse).unwrap(), "service/reuse created\n");

    // What the user changed on purpose is still judged.
    let read_back = cp.ok(&["get", "svc", "reuse", "-o", "yaml"]);
    let edited = read_back
        .replace("  type: NodePort\n", "  type: ClusterIP\n")
        .replace("nodePort: 30200", "nodePort: 30201");
    assert_eq!(
        applied(&cp, &edited).unwrap_err(),
        "The Service \"reuse\" is invalid: spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'\n"
    );
}

fn apply_with(cp: &ControlPlane, args: &[&str], yaml: &str) -> (bool, String, String) {
    let mut full = vec!["apply", "-f", "-"];
    full.extend(args);
    let out = cp.swctl_stdin(&full, Some(yaml));
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// Fields the API does not know are warned about (kubectl's server-side
/// field validation words) and applied without them; `--validate=strict`
/// (`true`, or bare `--validate`) refuses such an object and applies the rest; `ignore` says
/// nothing.
#[test]
fn unknown_fields_are_warned_about_or_refused_with_strict_validation() {
    let cp = ControlPlane::start(&[]);
    let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  colour: blue\nspec:\n  foo: 1\n  ports:\n  - port: 80\n    bar: x\n";
    let (ok, stdout, stderr) = apply_with(&cp, &[], yaml);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "service/web created\n");
    assert_eq!(
        stderr,
        "Warning: unknown field \"metadata.colour\"\nWarning: unknown field \"spec.foo\"\nWarning: unknown field \"spec.ports[0].bar\"\n"
    );
    let stored = cp.ok(&["get", "svc", "web", "-o", "yaml"]);
    assert!(
        !stored.contains("foo") && !stored.contains("colour"),
        "{stored}"
    );

    let strict = format!(
        "{}---\n{}",
        yaml.replace("name: web", "name: strict"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: clean\nspec:\n  ports:\n  - port: 80\n"
    );
    for flag in ["--validate=strict", "--validate=true", "--validate"] {
        let (ok, stdout, stderr) = apply_with(&cp, &[flag], &strict);
        assert!(!ok, "{flag}");
        assert_eq!(
            stderr,
            "Error from server (BadRequest): error when creating \"STDIN\": Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"metadata.colour\", unknown field \"spec.foo\", unknown field \"spec.ports[0].bar\"\n",
            "{flag}"
        );
        assert!(stdout.starts_with("service/clean "), "{flag}: {stdout}");
    }
    assert_eq!(
        cp.fails(&["get", "svc", "strict"]),
        "Error from server (NotFound): services \"strict\" not found\n"
    );
    let (ok, stdout, stderr) = apply_with(&cp, &["--validate=ignore"], yaml);
    assert!(ok);
    assert_eq!(
        (stdout.as_str(), stderr.as_str()),
        ("service/web unchanged\n", "")
    );
}

/// What `get -o yaml` prints applies back without a single unknown field,
/// for every kind the example and the API make.
#[test]
fn objects_read_back_apply_without_warnings() {
    let cp = ControlPlane::start(&[]);
    let (ok, _, stderr) = apply_with(&cp, &[], &support::example("frontend.yaml"));
    assert!(ok && stderr.is_empty(), "{stderr}");
    for kind in ["deploy", "pods", "svc", "endpointslices", "ns"] {
        let listed = cp.ok(&["get", kind, "-o", "yaml"]);
        let (ok, _, stderr) = apply_with(&cp, &[], &listed);
        assert!(ok, "{kind}: {stderr}");
        assert_eq!(stderr, "", "{kind}");
    }
}

/// Endpoints carry their node's zone; a node relabelled into another zone
/// moves its endpoints and their PreferClose hints with it.
#[test]
fn endpoints_follow_their_nodes_zone() {
    let cp = ControlPlane::start(&[]);
    let node = |zone: &str| {
        format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels:\n    topology.kubernetes.io/zone: {zone}\n")
    };
    applied(&cp, &node("a")).unwrap();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  labels:\n    app: web\nspec:\n  nodeName: node-1\n  containers:\n  - name: web\nstatus:\n  podIP: 10.244.1.5\n";
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  trafficDistribution: PreferClose\n  selector:\n    app: web\n  ports:\n  - port: 80\n";
    applied(&cp, &format!("{pod}---\n{svc}")).unwrap();
    let endpoint = || cp.json(&["get", "endpointslices"])["items"][0]["endpoints"][0].clone();
    let seen = endpoint();
    assert_eq!(
        (&seen["zone"], &seen["hints"]["forZones"][0]["name"]),
        (&"a".into(), &"a".into()),
        "{seen}"
    );
    applied(&cp, &node("b")).unwrap();
    let seen = endpoint();
    assert_eq!(
        (&seen["zone"], &seen["hints"]["forZones"][0]["name"]),
        (&"b".into(), &"b".into()),
        "{seen}"
    );
    assert_eq!(
        applied(&cp, &svc.replace("PreferClose", "Nearest")).unwrap_err(),
        "The Service \"web\" is invalid: spec.trafficDistribution: Unsupported value: \"Nearest\": supported values: \"PreferClose\", \"PreferSameNode\", \"PreferSameZone\"\n"
    );
}

/// Several servers, comma-separated (in `--server` or the credentials
/// file's `server`): swctl goes on to the next when one does not answer.
#[test]
fn swctl_tries_the_next_server_when_one_does_not_answer() {
    let cp = ControlPlane::start(&[]);
    let dead = support::free_loopback_address();
    let servers = format!("https://{dead},{}", cp.server);
    let out = cp.ok(&["--server", &servers, "get", "ns", "-o", "name"]);
    assert_eq!(out, "namespace/default\n");
    let config = std::fs::read_to_string(cp.config()).unwrap();
    let listed = config.replace(
        &format!("server: {}", cp.server),
        &format!("server: {servers}"),
    );
    assert_ne!(config, listed, "{config}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), listed).unwrap();
    let path = file.path().to_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swctl"))
        .args(["--config", path, "get", "ns", "-o", "name"])
        .env_remove("SWITCHYARD_SERVER")
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "namespace/default\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let down = format!(
        "https://{dead},https://{}",
        support::free_loopback_address()
    );
    let refused = cp.fails(&["--server", &down, "get", "ns"]);
    assert!(
        refused.starts_with(&format!("The connection to the server {}, ", dead)),
        "{refused}"
    );
}
