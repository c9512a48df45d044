use switchyard_api::resources::{IntOrString, ObjectMeta, PodIp};

use super::*;
use crate::defaulting;

fn web_port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: number,
        protocol: None,
    }
}

/// A frontend pod on node-1 serving port 5000 ("http"), probed over HTTP.
fn frontend() -> Pod {
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: "frontend-7d9f8-abcde".to_string(),
            namespace: Some("default".to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    pod.metadata
        .labels
        .insert("app".to_string(), "frontend".to_string());
    pod.spec.node_name = Some("node-1".to_string());
    pod.spec.containers = vec![Container {
        name: "web".to_string(),
        image: Some("example/frontend:1.0".to_string()),
        ports: vec![web_port("http", 5000)],
        readiness_probe: Some(Box::new(Probe {
            http_get: Some(HttpGetAction {
                path: Some("/healthz".to_string()),
                port: IntOrString::String("http".to_string()),
                scheme: None,
            }),
            ..Default::default()
        })),
        ..Container::default()
    }];
    pod.status.pod_ip = Some("10.244.1.5".to_string());
    defaulting::pod(&mut pod);
    pod
}

fn check(pod: &Pod) -> String {
    validate(pod, None).to_string()
}

fn probe_mut(pod: &mut Pod) -> &mut Probe {
    let Some(probe) = pod.spec.containers[0].readiness_probe.as_mut() else {
        panic!("the frontend pod has a readiness probe")
    };
    probe
}

#[test]
fn typical_pod_validates_clean() {
    assert_eq!(validate(&frontend(), None), FieldErrors::default());
}

#[test]
fn pod_without_probe_or_ports_validates_clean() {
    let mut pod = frontend();
    pod.spec.containers[0].ports.clear();
    pod.spec.containers[0].readiness_probe = None;
    pod.status.pod_ip = None;
    pod.spec.node_name = None;
    assert_eq!(check(&pod), "[]");
}

#[test]
fn pod_names_are_dns_subdomains() {
    let mut pod = frontend();
    pod.metadata.name = "frontend_1".to_string();
    assert_eq!(
        check(&pod),
        r#"metadata.name: Invalid value: "frontend_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
    );
    pod.metadata.name = "frontend.v1".to_string();
    assert_eq!(check(&pod), "[]");
}

#[test]
fn containers_required() {
    let mut pod = frontend();
    pod.spec.containers.clear();
    assert_eq!(check(&pod), "spec.containers: Required value");
}

#[test]
fn container_names_required_valid_and_unique() {
    let mut pod = frontend();
    let mut second = pod.spec.containers[0].clone();
    second.readiness_probe = None;
    second.ports.clear();
    pod.spec.containers.push(second);
    assert_eq!(
        check(&pod),
        "spec.containers[1].name: Duplicate value: \"web\""
    );
    pod.spec.containers[1].name = "Side_Car".to_string();
    assert_eq!(
        check(&pod),
        format!(
            "spec.containers[1].name: Invalid value: \"Side_Car\": {}",
            names::dns1123_label("Side_Car")[0]
        )
    );
    pod.spec.containers[1].name.clear();
    assert_eq!(check(&pod), "spec.containers[1].name: Required value");
}

#[test]
fn container_port_numbers() {
    let mut pod = frontend();
    pod.spec.containers[0].ports = vec![web_port("http", 0), web_port("metrics", 70000)];
    defaulting::pod(&mut pod);
    assert_eq!(
        check(&pod),
        "[spec.containers[0].ports[0].containerPort: Required value, \
spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive]"
    );
}

#[test]
fn container_port_names_are_iana_names_unique_per_container() {
    let mut pod = frontend();
    pod.spec.containers[0].ports = vec![
        web_port("http", 5000),
        web_port("http", 5001),
        web_port("8080", 8080),
    ];
    defaulting::pod(&mut pod);
    assert_eq!(
        check(&pod),
        "[spec.containers[0].ports[1].name: Duplicate value: \"http\", \
spec.containers[0].ports[2].name: Invalid value: \"8080\": must contain at least one letter (a-z)]"
    );
}

#[test]
fn same_port_name_in_two_containers_is_allowed() {
    let mut pod = frontend();
    pod.spec.containers.push(Container {
        name: "sidecar".to_string(),
        ports: vec![web_port("http", 9000)],
        ..Default::default()
    });
    defaulting::pod(&mut pod);
    assert_eq!(check(&pod), "[]");
}

#[test]
fn container_port_protocols() {
    let mut pod = frontend();
    pod.spec.containers[0].ports[0].protocol = Some("HTTP".to_string());
    assert_eq!(
        check(&pod),
        "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
    );
    pod.spec.containers[0].ports[0].protocol = None;
    assert_eq!(
        check(&pod),
        "spec.containers[0].ports[0].protocol: Required value"
    );
}

#[test]
fn probe_needs_exactly_one_handler() {
    let mut pod = frontend();
    probe_mut(&mut pod).tcp_socket = Some(TcpSocketAction {
        port: IntOrString::Int(5000),
    });
    assert_eq!(
        check(&pod),
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"
    );
    probe_mut(&mut pod).http_get = None;
    assert_eq!(check(&pod), "[]");
    probe_mut(&mut pod).tcp_socket = None;
    assert_eq!(
        check(&pod),
        "spec.containers[0].readinessProbe: Required value: must specify a handler type"
    );
}

#[test]
fn probe_ports() {
    let mut pod = frontend();
    probe_mut(&mut pod).http_get = None;
    probe_mut(&mut pod).tcp_socket = Some(TcpSocketAction {
        port: IntOrString::Int(0),
    });
    assert_eq!(
        check(&pod),
        "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive"
    );
    probe_mut(&mut pod).tcp_socket = Some(TcpSocketAction {
        port: IntOrString::String("-http".to_string()),
    });
    assert_eq!(
        check(&pod),
        "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: \"-http\": must not begin or end with a hyphen"
    );
}

#[test]
fn http_probe_path_and_scheme() {
    let mut pod = frontend();
    let Some(http) = probe_mut(&mut pod).http_get.as_mut() else {
        panic!("the frontend probe uses httpGet")
    };
    http.path = None;
    http.scheme = Some("TCP".to_string());
    assert_eq!(
        check(&pod),
        "[spec.containers[0].readinessProbe.httpGet.path: Required value, \
spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: \"TCP\": supported values: \"HTTP\", \"HTTPS\"]"
    );
}

#[test]
fn probe_timings_may_not_be_negative() {
    let mut pod = frontend();
    let probe = probe_mut(&mut pod);
    probe.initial_delay_seconds = Some(-1);
    probe.period_seconds = Some(-10);
    probe.failure_threshold = Some(-3);
    assert_eq!(
        check(&pod),
        "[spec.containers[0].readinessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0, \
spec.containers[0].readinessProbe.periodSeconds: Invalid value: -10: must be greater than or equal to 0, \
spec.containers[0].readinessProbe.failureThreshold: Invalid value: -3: must be greater than or equal to 0]"
    );
}

#[test]
fn readiness_success_threshold_may_exceed_one() {
    let mut pod = frontend();
    probe_mut(&mut pod).success_threshold = Some(3);
    assert_eq!(check(&pod), "[]");
}

#[test]
fn pod_ips_are_addresses_one_per_family_pod_ip_first() {
    let with = |single: Option<&str>, list: &[&str]| {
        let mut pod = frontend();
        pod.status.pod_ip = single.map(str::to_string);
        pod.status.pod_ips = list.iter().map(|ip| PodIp { ip: ip.to_string() }).collect();
        defaulting::pod(&mut pod);
        pod
    };
    assert_eq!(
        check(&with(Some("10.244.1.256"), &[])),
        "[status.podIP: Invalid value: \"10.244.1.256\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff), \
status.podIPs[0].ip: Invalid value: \"10.244.1.256\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)]"
    );
    let dual = with(None, &["10.244.1.5", "fd00:10:244:1::5"]);
    assert_eq!(dual.status.pod_ip.as_deref(), Some("10.244.1.5"));
    assert!(validate(&dual, None).is_empty(), "{}", check(&dual));
    let v6 = with(Some("fd00:10:244:1::5"), &[]);
    assert!(validate(&v6, None).is_empty(), "{}", check(&v6));
    assert_eq!(
        with(Some("fd00:10:244:1::5"), &[]).status.pod_ips,
        [PodIp {
            ip: "fd00:10:244:1::5".to_string()
        }]
    );
    assert_eq!(
        check(&with(None, &["10.244.1.5", "10.244.1.6"])),
        r#"status.podIPs: Invalid value: []core.PodIP{core.PodIP{IP:"10.244.1.5"}, core.PodIP{IP:"10.244.1.6"}}: may specify no more than one IP for each IP family"#
    );
    assert_eq!(
        check(&with(Some("10.244.1.7"), &["10.244.1.5", "fd00::5"])),
        "status.podIPs[0].ip: Invalid value: \"10.244.1.5\": must match `podIP`"
    );
}

#[test]
fn node_name_hostname_and_subdomain() {
    let mut pod = frontend();
    pod.spec.node_name = Some("Node_1".to_string());
    pod.spec.hostname = Some("web.0".to_string());
    pod.spec.subdomain = Some("-frontend".to_string());
    assert_eq!(
        check(&pod),
        format!(
            "[spec.nodeName: Invalid value: \"Node_1\": {}, \
spec.hostname: Invalid value: \"web.0\": must not contain dots, \
spec.subdomain: Invalid value: \"-frontend\": {}]",
            names::dns1123_subdomain("Node_1")[0],
            names::dns1123_label("-frontend")[0]
        )
    );
}

#[test]
fn node_name_is_immutable_once_set() {
    let old = frontend();
    let mut moved = frontend();
    moved.spec.node_name = Some("node-2".to_string());
    assert_eq!(
        validate(&moved, Some(&old)).to_string(),
        "spec.nodeName: Invalid value: \"node-2\": field is immutable"
    );
    moved.spec.node_name = None;
    assert_eq!(
        validate(&moved, Some(&old)).to_string(),
        "spec.nodeName: Invalid value: \"\": field is immutable"
    );
    assert!(validate(&frontend(), Some(&old)).is_empty());
}

#[test]
fn unbound_pod_may_be_bound() {
    let mut old = frontend();
    old.spec.node_name = None;
    assert!(validate(&frontend(), Some(&old)).is_empty());
}
