//! Pure translation from stored objects to what agents are sent: one
//! [`ServiceState`] per Service (with every endpoint of every slice), and the
//! readiness probes of the pods on each node.

use std::collections::BTreeMap;

use switchyard_api::resources::{EndpointSlice, ForName, IntOrString, Pod, Probe, Service};
use switchyard_api::v1::{Endpoint, EndpointPort, PodProbe, ServicePort, ServiceState};

/// The label by which a Service asks to be left to another proxy
/// (kube-proxy honours it the same way).
const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";

fn port_number(n: Option<i32>) -> u32 {
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

/// The agent's view of one Service and its endpoints.
pub fn service_state<'a>(
    svc: &Service,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> ServiceState {
    let spec = &svc.spec;
    let has_cluster_ip = !svc.is_headless() && svc.service_type() != "ExternalName";
    let cluster_ip = spec
        .cluster_ip
        .clone()
        .filter(|_| has_cluster_ip)
        .unwrap_or_default();
    let cluster_ips = match has_cluster_ip {
        true => spec.cluster_ips.clone(),
        false => Vec::new(),
    };
    let load_balancer_ips = svc
        .status
        .load_balancer
        .iter()
        .flat_map(|lb| &lb.ingress)
        .filter_map(|i| i.ip.clone())
        .collect();
    let affinity = spec
        .session_affinity
        .as_deref()
        .filter(|a| *a == "ClientIP")
        .map(|_| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .map_or(10800, |t| u32::try_from(t).unwrap_or(10800))
        })
        .unwrap_or(0);
    let mut state = ServiceState {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone(),
        r#type: svc.service_type().to_string(),
        cluster_ip,
        external_ips: spec.external_ips.clone(),
        load_balancer_ips,
        external_name: spec.external_name.clone().unwrap_or_default(),
        ports: spec
            .ports
            .iter()
            .map(|p| ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol().to_string(),
                port: port_number(Some(p.port)),
                node_port: port_number(p.node_port),
            })
            .collect(),
        affinity_timeout_seconds: affinity,
        internal_traffic_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        external_traffic_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        endpoints: Vec::new(),
        headless: svc.is_headless(),
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
        port_sets: Vec::new(),
        proxied_elsewhere: svc.metadata.labels.contains_key(SERVICE_PROXY_NAME),
        health_check_node_port: port_number(spec.health_check_node_port),
        load_balancer_source_ranges: spec
            .load_balancer_source_ranges
            .iter()
            .map(|r| r.trim().to_string())
            .collect(),
        cluster_ips,
    };
    add_endpoints(&mut state, slices);
    state
}

fn names<'a>(items: impl Iterator<Item = &'a ForName>) -> Vec<String> {
    items.map(|i| i.name.clone()).collect()
}

/// Every address of every slice, once per IP, ordered for stable pushes;
/// each slice's port list is stored once and shared by its endpoints.
fn add_endpoints<'a>(
    state: &mut ServiceState,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) {
    let mut by_ip: BTreeMap<String, Endpoint> = BTreeMap::new();
    for slice in slices {
        let ports: Vec<EndpointPort> = slice
            .ports
            .iter()
            .filter(|p| p.port.is_some())
            .map(|p| EndpointPort {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                port: port_number(p.port),
            })
            .collect();
        let port_set = state.port_set_index(ports);
        for e in &slice.endpoints {
            for ip in &e.addresses {
                let ready = e.conditions.is_ready();
                by_ip.entry(ip.clone()).or_insert_with(|| Endpoint {
                    ip: ip.clone(),
                    node_name: e.node_name.clone().unwrap_or_default(),
                    ready,
                    serving: e.conditions.serving.unwrap_or(ready),
                    terminating: e.conditions.terminating.unwrap_or(false),
                    hostname: e.hostname.clone().unwrap_or_default(),
                    port_set,
                    zone_hints: names(e.hints.iter().flat_map(|h| &h.for_zones)),
                    node_hints: names(e.hints.iter().flat_map(|h| &h.for_nodes)),
                });
            }
        }
    }
    state.endpoints = by_ip.into_values().collect();
}

/// The probes a node's agent must run: its pods that declare a readiness
/// probe and have an address to probe.
pub fn probes_for_node<'a>(node: &str, pods: impl IntoIterator<Item = &'a Pod>) -> Vec<PodProbe> {
    pods.into_iter()
        .filter(|p| p.spec.node_name.as_deref() == Some(node))
        .filter_map(pod_probe)
        .collect()
}

fn pod_probe(pod: &Pod) -> Option<PodProbe> {
    let ip = pod.status.pod_ip.clone()?;
    let probe: &Probe = pod
        .spec
        .containers
        .iter()
        .find_map(|c| c.readiness_probe.as_ref())?;
    let resolve = |port: &IntOrString| match port {
        IntOrString::Int(n) => u32::try_from(*n).ok(),
        IntOrString::String(name) => pod
            .named_port(name, "TCP")
            .and_then(|n| u32::try_from(n).ok()),
    };
    let (handler, port, path, scheme) = match (&probe.tcp_socket, &probe.http_get) {
        (Some(tcp), _) => ("tcp", resolve(&tcp.port)?, String::new(), String::new()),
        (None, Some(http)) => (
            "http",
            resolve(&http.port)?,
            http.path.clone().unwrap_or_else(|| "/".to_string()),
            http.scheme.clone().unwrap_or_else(|| "HTTP".to_string()),
        ),
        (None, None) => return None,
    };
    let secs =
        |v: Option<i32>, default: u32| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(default);
    Some(PodProbe {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone(),
        pod_ip: ip,
        handler: handler.to_string(),
        port,
        path,
        initial_delay_seconds: secs(probe.initial_delay_seconds, 0),
        period_seconds: secs(probe.period_seconds, 10),
        timeout_seconds: secs(probe.timeout_seconds, 1),
        success_threshold: secs(probe.success_threshold, 1),
        failure_threshold: secs(probe.failure_threshold, 3),
        ready: pod.is_ready(),
        scheme,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::{
        Container, ContainerPort, Endpoint as SliceEndpoint, EndpointConditions,
        EndpointPort as SlicePort, HttpGetAction, LoadBalancerIngress, LoadBalancerStatus,
        ServicePort as SpecPort,
    };

    fn service() -> Service {
        let mut s = Service::default();
        s.metadata.name = "web".into();
        s.metadata.namespace = Some("default".into());
        s.spec.type_ = Some("LoadBalancer".into());
        s.spec.cluster_ip = Some("10.96.0.20".into());
        s.spec.ports = vec![SpecPort {
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            port: 80,
            node_port: Some(30080),
            ..Default::default()
        }];
        s.spec.session_affinity = Some("ClientIP".into());
        s.spec.external_traffic_policy = Some("Local".into());
        s.status.load_balancer = Some(LoadBalancerStatus {
            ingress: vec![LoadBalancerIngress {
                ip: Some("172.18.0.201".into()),
                hostname: None,
            }],
        });
        s
    }

    fn slice(ips: &[(&str, bool)], port: i32) -> EndpointSlice {
        EndpointSlice {
            endpoints: ips
                .iter()
                .map(|(ip, ready)| SliceEndpoint {
                    addresses: vec![ip.to_string()],
                    conditions: EndpointConditions {
                        ready: Some(*ready),
                        ..Default::default()
                    },
                    node_name: Some("node-1".into()),
                    ..Default::default()
                })
                .collect(),
            ports: vec![SlicePort {
                name: Some("http".into()),
                port: Some(port),
                protocol: Some("TCP".into()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn flattens_service_and_slices() {
        let a = slice(&[("10.244.1.10", true)], 5000);
        let b = slice(&[("10.244.2.10", false)], 8080);
        let state = service_state(&service(), [&a, &b]);
        assert_eq!(state.cluster_ip, "10.96.0.20");
        assert_eq!(state.load_balancer_ips, vec!["172.18.0.201"]);
        assert_eq!(state.affinity_timeout_seconds, 10800);
        assert!(state.external_traffic_local);
        assert!(!state.internal_traffic_local);
        assert_eq!(state.ports[0].node_port, 30080);
        let eps: Vec<(&str, bool, u32)> = state
            .endpoints
            .iter()
            .map(|e| (e.ip.as_str(), e.ready, state.endpoint_ports(e)[0].port))
            .collect();
        assert_eq!(
            eps,
            vec![("10.244.1.10", true, 5000), ("10.244.2.10", false, 8080)]
        );
    }

    #[test]
    fn a_service_proxy_name_leaves_the_service_to_another_proxy() {
        let mut s = service();
        assert!(!service_state(&s, []).proxied_elsewhere);
        s.metadata.labels.insert(
            "service.kubernetes.io/service-proxy-name".into(),
            "other-proxy".into(),
        );
        assert!(service_state(&s, []).proxied_elsewhere);
    }

    #[test]
    fn headless_and_external_name_have_no_cluster_ip() {
        let mut s = service();
        s.spec.cluster_ip = Some("None".into());
        s.spec.cluster_ips = vec!["None".into()];
        let state = service_state(&s, []);
        assert_eq!(state.cluster_ip, "");
        assert!(state.cluster_ips.is_empty());
        assert!(state.headless);
    }

    #[test]
    fn a_dual_stack_service_sends_both_addresses_primary_first() {
        let mut s = service();
        s.spec.cluster_ip = Some("fd00:10:96::5".into());
        s.spec.cluster_ips = vec!["fd00:10:96::5".into(), "10.96.0.5".into()];
        let state = service_state(&s, []);
        assert_eq!(state.cluster_ip, "fd00:10:96::5");
        assert_eq!(state.cluster_ips, ["fd00:10:96::5", "10.96.0.5"]);
        assert_eq!(
            state.ipv4_cluster_ip(),
            Some(std::net::Ipv4Addr::new(10, 96, 0, 5))
        );
    }

    #[test]
    fn probes_only_for_this_node_with_named_ports_resolved() {
        let mut pod = Pod::default();
        pod.metadata.name = "p".into();
        pod.metadata.namespace = Some("default".into());
        pod.spec.node_name = Some("node-1".into());
        pod.status.pod_ip = Some("10.244.1.10".into());
        pod.spec.containers = vec![Container {
            name: "web".into(),
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 5000,
                protocol: None,
            }],
            readiness_probe: Some(Box::new(Probe {
                http_get: Some(HttpGetAction {
                    path: Some("/healthz".into()),
                    port: IntOrString::String("http".into()),
                    scheme: None,
                }),
                period_seconds: Some(2),
                ..Default::default()
            })),
            ..Default::default()
        }];
        let probes = probes_for_node("node-1", [&pod]);
        assert_eq!(probes.len(), 1);
        assert_eq!(
            (
                probes[0].handler.as_str(),
                probes[0].port,
                probes[0].path.as_str()
            ),
            ("http", 5000, "/healthz")
        );
        assert_eq!(
            (probes[0].period_seconds, probes[0].failure_threshold),
            (2, 3)
        );
        assert!(probes_for_node("node-2", [&pod]).is_empty());
    }
}
