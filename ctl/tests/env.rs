//! `swctl env` against a real control plane: the kubelet's variables for a
//! pod, the creation-time cut-off, and `eval "$(swctl env --export POD)"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::ControlPlane;

fn service(name: &str, ns: &str, extra_spec: &str, ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{extra_spec}  ports:\n{ports}"
    )
}

fn tcp_port(name: &str, port: u16) -> String {
    format!("    - name: {name}\n      protocol: TCP\n      port: {port}\n")
}

const CLIENT_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  nodeName: node-1
  containers:
    - name: main
status:
  podIP: 10.244.1.50
";

fn cluster_ip(cp: &ControlPlane, ns: &str, name: &str) -> String {
    cp.json(&["get", "svc", name, "-n", ns])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string()
}

fn names(out: &str) -> Vec<&str> {
    out.lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n))
        .collect()
}

/// Creation times have one-second resolution: wait into the next second so
/// "created after the pod" is unambiguous.
fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

#[test]
fn env_for_a_pod_matches_the_kubelet() {
    let cp = ControlPlane::start(&[]);
    cp.ok(&["create", "namespace", "other"]);
    cp.apply_yaml(&service(
        "redis-primary",
        "default",
        "",
        &(tcp_port("redis", 6379) + &tcp_port("metrics-http", 9121)),
    ));
    cp.apply_yaml(&service(
        "db",
        "default",
        "  clusterIP: None\n",
        &tcp_port("pg", 5432),
    ));
    cp.apply_yaml(&service(
        "ext",
        "default",
        "  type: ExternalName\n  externalName: example.com\n",
        &tcp_port("http", 80),
    ));
    cp.apply_yaml(&service("elsewhere", "other", "", &tcp_port("http", 80)));
    next_second();
    cp.apply_yaml(CLIENT_POD);
    next_second();
    cp.apply_yaml(&service("late", "default", "", &tcp_port("http", 80)));

    let ip = cluster_ip(&cp, "default", "redis-primary");
    let out = cp.ok(&["env", "client"]);
    let expected: String = [
        format!("REDIS_PRIMARY_PORT=tcp://{ip}:6379"),
        format!("REDIS_PRIMARY_PORT_6379_TCP=tcp://{ip}:6379"),
        format!("REDIS_PRIMARY_PORT_6379_TCP_ADDR={ip}"),
        "REDIS_PRIMARY_PORT_6379_TCP_PORT=6379".to_string(),
        "REDIS_PRIMARY_PORT_6379_TCP_PROTO=tcp".to_string(),
        format!("REDIS_PRIMARY_PORT_9121_TCP=tcp://{ip}:9121"),
        format!("REDIS_PRIMARY_PORT_9121_TCP_ADDR={ip}"),
        "REDIS_PRIMARY_PORT_9121_TCP_PORT=9121".to_string(),
        "REDIS_PRIMARY_PORT_9121_TCP_PROTO=tcp".to_string(),
        format!("REDIS_PRIMARY_SERVICE_HOST={ip}"),
        "REDIS_PRIMARY_SERVICE_PORT=6379".to_string(),
        "REDIS_PRIMARY_SERVICE_PORT_METRICS_HTTP=9121".to_string(),
        "REDIS_PRIMARY_SERVICE_PORT_REDIS=6379".to_string(),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect();
    // Headless, ExternalName, other namespaces and Services created after
    // the pod are all absent.
    assert_eq!(out, expected);
    assert_eq!(cp.ok(&["env", "pod/client"]), expected);

    // Without a pod: every current Service of the namespace.
    let all = cp.ok(&["env"]);
    assert!(names(&all).contains(&"LATE_SERVICE_HOST"), "{all}");
    assert!(names(&all).contains(&"REDIS_PRIMARY_SERVICE_HOST"), "{all}");
    assert!(
        !names(&all)
            .iter()
            .any(|n| n.starts_with("DB_") || n.starts_with("EXT_")),
        "{all}"
    );
    let other = cp.ok(&["env", "-n", "other"]);
    let other_ip = cluster_ip(&cp, "other", "elsewhere");
    assert!(
        other.contains(&format!("ELSEWHERE_SERVICE_HOST={other_ip}\n")),
        "{other}"
    );
    assert!(!other.contains("REDIS"), "{other}");
}

#[test]
fn export_output_evaluates_in_a_shell() {
    let cp = ControlPlane::start(&[]);
    cp.apply_yaml(&service("web-app", "default", "", &tcp_port("http", 8080)));
    cp.apply_yaml(CLIENT_POD);
    let ip = cluster_ip(&cp, "default", "web-app");

    let export = cp.ok(&["env", "--export", "client"]);
    assert!(
        export.contains(&format!("export WEB_APP_SERVICE_HOST='{ip}'\n")),
        "{export}"
    );
    let script = format!(
        "eval \"$('{}' env --export client)\" && printf '%s %s %s' \"$WEB_APP_SERVICE_HOST\" \"$WEB_APP_SERVICE_PORT_HTTP\" \"$WEB_APP_PORT\"",
        env!("CARGO_BIN_EXE_swctl")
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("SWITCHYARD_SERVER", &cp.server)
        .env("SWITCHYARD_CONFIG", cp.config())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{ip} 8080 tcp://{ip}:8080")
    );
}

#[test]
fn unknown_pods_and_non_pods_are_errors() {
    let cp = ControlPlane::start(&[]);
    assert_eq!(
        cp.fails(&["env", "nope"]),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let err = cp.fails(&["env", "svc/frontend-svc"]);
    assert!(err.starts_with("error: swctl env takes a pod"), "{err}");
}
