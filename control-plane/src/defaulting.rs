//! Kubernetes v1 defaults (`SetDefaults_*` in k8s.io/kubernetes
//! pkg/apis/*/v1), applied before validation so stored objects read exactly
//! as `kubectl get -o yaml` would show them. Nothing here allocates: the
//! ClusterIP and NodePorts come from the allocator after validation.
//!
//! A field counts as unset when it is `None` or holds Go's zero value (`""`,
//! `0`), since Kubernetes cannot tell those apart either.

use switchyard_api::resources::{
    service_type, ClientIpConfig, Deployment, EndpointSlice, IntOrString, Pod, PodIp, Probe,
    Service, SessionAffinityConfig,
};

const TCP: &str = "TCP";
/// Three hours, Kubernetes' `DefaultClientIPServiceAffinitySeconds`.
const CLIENT_IP_AFFINITY_SECONDS: i32 = 10800;

fn is_unset(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

fn default_str(field: &mut Option<String>, value: &str) {
    if is_unset(field) {
        *field = Some(value.to_string());
    }
}

fn default_int(field: &mut Option<i32>, value: i32) {
    if field.is_none_or(|v| v == 0) {
        *field = Some(value);
    }
}

pub fn service(svc: &mut Service) {
    let spec = &mut svc.spec;
    default_str(&mut spec.type_, service_type::CLUSTER_IP);
    for port in &mut spec.ports {
        default_str(&mut port.protocol, TCP);
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(n)) => *n == 0,
            Some(IntOrString::String(s)) => s.is_empty(),
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    if svc.service_type() == service_type::LOAD_BALANCER {
        svc.spec
            .allocate_load_balancer_node_ports
            .get_or_insert(true);
    }
    session_affinity(svc);
    traffic_policies(svc);
}

/// `ClientIP` always has a timeout. A config given with `None` affinity is
/// left for validation to refuse, as Kubernetes does.
fn session_affinity(svc: &mut Service) {
    let spec = &mut svc.spec;
    default_str(&mut spec.session_affinity, "None");
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return;
    }
    let has_timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .is_some_and(|c| c.timeout_seconds.is_some());
    if !has_timeout {
        spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIpConfig {
                timeout_seconds: Some(CLIENT_IP_AFFINITY_SECONDS),
            }),
        });
    }
}

/// The external policy exists only where outside traffic can arrive (node
/// ports, external IPs); ExternalName Services have no internal policy.
fn traffic_policies(svc: &mut Service) {
    let ty = svc.service_type().to_string();
    let externally_accessible = svc.is_externally_accessible();
    let spec = &mut svc.spec;
    if externally_accessible {
        default_str(&mut spec.external_traffic_policy, "Cluster");
    }
    let has_internal = matches!(
        ty.as_str(),
        service_type::CLUSTER_IP | service_type::NODE_PORT | service_type::LOAD_BALANCER
    );
    if has_internal && spec.internal_traffic_policy.is_none() {
        spec.internal_traffic_policy = Some("Cluster".to_string());
    }
}

pub fn pod(pod: &mut Pod) {
    pod_ips(pod);
    for container in &mut pod.spec.containers {
        for port in &mut container.ports {
            default_str(&mut port.protocol, TCP);
        }
        if let Some(probe) = &mut container.readiness_probe {
            self::probe(probe);
        }
    }
}

/// `podIP` and `podIPs` as the kubelet reports them, whichever one the
/// registrant gave: the single address is the list's first.
fn pod_ips(pod: &mut Pod) {
    let status = &mut pod.status;
    match (
        status.pod_ip.as_deref().filter(|ip| !ip.is_empty()),
        status.pod_ips.first(),
    ) {
        (Some(ip), None) => status.pod_ips = vec![PodIp { ip: ip.to_string() }],
        (None, Some(first)) => status.pod_ip = Some(first.ip.clone()),
        _ => {}
    }
}

fn probe(probe: &mut Probe) {
    default_int(&mut probe.timeout_seconds, 1);
    default_int(&mut probe.period_seconds, 10);
    default_int(&mut probe.success_threshold, 1);
    default_int(&mut probe.failure_threshold, 3);
    if let Some(http) = &mut probe.http_get {
        default_str(&mut http.path, "/");
        default_str(&mut http.scheme, "HTTP");
    }
}

pub fn deployment(d: &mut Deployment) {
    if d.spec.replicas.is_none() {
        d.spec.replicas = Some(1);
    }
}

/// Kubernetes requires `addressType`; Switchyard's data path is IPv4, so a
/// hand-written slice that leaves it out is taken to be IPv4.
pub fn endpoint_slice(s: &mut EndpointSlice) {
    if s.address_type.is_empty() {
        s.address_type = "IPv4".to_string();
    }
    for port in &mut s.ports {
        default_str(&mut port.protocol, TCP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::{
        Container, ContainerPort, EndpointPort, HttpGetAction, ServicePort, TcpSocketAction,
    };

    fn service_with(ty: Option<&str>, ports: Vec<ServicePort>) -> Service {
        let mut svc = Service::default();
        svc.spec.type_ = ty.map(str::to_string);
        svc.spec.ports = ports;
        svc
    }

    fn port(port: i32) -> ServicePort {
        ServicePort {
            port,
            ..Default::default()
        }
    }

    #[test]
    fn service_gets_kubernetes_defaults() {
        let mut svc = service_with(None, vec![port(80)]);
        service(&mut svc);
        let spec = &svc.spec;
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(spec.ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        assert_eq!(spec.session_affinity_config, None);
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.external_traffic_policy, None);
        assert_eq!(spec.publish_not_ready_addresses, None);
        assert_eq!(spec.cluster_ip, None);
        assert_eq!(spec.ports[0].node_port, None);
    }

    #[test]
    fn given_values_are_kept() {
        let mut p = port(80);
        p.protocol = Some("UDP".to_string());
        p.target_port = Some(IntOrString::String("dns".to_string()));
        let mut svc = service_with(Some("NodePort"), vec![p]);
        svc.spec.external_traffic_policy = Some("Local".to_string());
        svc.spec.internal_traffic_policy = Some("Local".to_string());
        service(&mut svc);
        assert_eq!(svc.spec.ports[0].protocol.as_deref(), Some("UDP"));
        assert_eq!(
            svc.spec.ports[0].target_port,
            Some(IntOrString::String("dns".to_string()))
        );
        assert_eq!(svc.spec.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(svc.spec.internal_traffic_policy.as_deref(), Some("Local"));
    }

    #[test]
    fn zero_and_empty_target_ports_mean_unset() {
        let mut a = port(8080);
        a.target_port = Some(IntOrString::Int(0));
        let mut b = port(9090);
        b.target_port = Some(IntOrString::String(String::new()));
        let mut svc = service_with(None, vec![a, b]);
        service(&mut svc);
        assert_eq!(svc.spec.ports[0].target_port, Some(IntOrString::Int(8080)));
        assert_eq!(svc.spec.ports[1].target_port, Some(IntOrString::Int(9090)));
    }

    #[test]
    fn client_ip_affinity_gets_a_timeout() {
        let mut svc = service_with(None, vec![port(80)]);
        svc.spec.session_affinity = Some("ClientIP".to_string());
        service(&mut svc);
        let timeout = svc
            .spec
            .session_affinity_config
            .and_then(|c| c.client_ip)
            .and_then(|c| c.timeout_seconds);
        assert_eq!(timeout, Some(10800));
    }

    #[test]
    fn client_ip_timeout_is_kept() {
        let mut svc = service_with(None, vec![port(80)]);
        svc.spec.session_affinity = Some("ClientIP".to_string());
        svc.spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIpConfig {
                timeout_seconds: Some(60),
            }),
        });
        service(&mut svc);
        let timeout = svc
            .spec
            .session_affinity_config
            .and_then(|c| c.client_ip)
            .and_then(|c| c.timeout_seconds);
        assert_eq!(timeout, Some(60));
    }

    /// Kubernetes refuses a config with `None` affinity; dropping it here
    /// would accept what the user wrote and store something else.
    #[test]
    fn none_affinity_keeps_config_for_validation_to_refuse() {
        let mut svc = service_with(None, vec![port(80)]);
        svc.spec.session_affinity_config = Some(SessionAffinityConfig::default());
        service(&mut svc);
        assert_eq!(
            svc.spec.session_affinity_config,
            Some(SessionAffinityConfig::default())
        );
    }

    #[test]
    fn load_balancers_allocate_node_ports_unless_told_not_to() {
        let mut svc = service_with(None, vec![port(80)]);
        svc.spec.type_ = Some("LoadBalancer".to_string());
        service(&mut svc);
        assert_eq!(svc.spec.allocate_load_balancer_node_ports, Some(true));
        let mut plain = service_with(None, vec![port(80)]);
        service(&mut plain);
        assert_eq!(plain.spec.allocate_load_balancer_node_ports, None);
    }

    #[test]
    fn external_policy_only_where_traffic_enters_from_outside() {
        for (ty, ips, expected) in [
            ("NodePort", false, Some("Cluster")),
            ("LoadBalancer", false, Some("Cluster")),
            ("ClusterIP", true, Some("Cluster")),
            ("ClusterIP", false, None),
            ("ExternalName", true, None),
        ] {
            let mut svc = service_with(Some(ty), vec![port(80)]);
            if ips {
                svc.spec.external_ips = vec!["203.0.113.10".to_string()];
            }
            service(&mut svc);
            assert_eq!(
                svc.spec.external_traffic_policy.as_deref(),
                expected,
                "{ty} {ips}"
            );
        }
    }

    #[test]
    fn external_name_has_no_internal_policy_but_gets_port_defaults() {
        let mut svc = service_with(Some("ExternalName"), vec![port(443)]);
        service(&mut svc);
        assert_eq!(svc.spec.internal_traffic_policy, None);
        assert_eq!(svc.spec.ports[0].target_port, Some(IntOrString::Int(443)));
    }

    #[test]
    fn pod_ports_and_probes() {
        let mut p = Pod::default();
        p.spec.containers = vec![
            Container {
                name: "web".to_string(),
                ports: vec![ContainerPort {
                    container_port: 5000,
                    ..Default::default()
                }],
                readiness_probe: Some(Box::new(Probe {
                    http_get: Some(HttpGetAction {
                        path: None,
                        port: IntOrString::Int(5000),
                        scheme: None,
                    }),
                    period_seconds: Some(0),
                    failure_threshold: Some(5),
                    ..Default::default()
                })),
                ..Default::default()
            },
            Container {
                name: "sidecar".to_string(),
                readiness_probe: Some(Box::new(Probe {
                    tcp_socket: Some(TcpSocketAction {
                        port: IntOrString::Int(9000),
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ];
        p.status.phase = Some("Running".to_string());
        pod(&mut p);
        let web = &p.spec.containers[0];
        assert_eq!(web.ports[0].protocol.as_deref(), Some("TCP"));
        let probe = web.readiness_probe.as_ref().cloned().unwrap_or_default();
        assert_eq!(probe.period_seconds, Some(10));
        assert_eq!(probe.timeout_seconds, Some(1));
        assert_eq!(probe.success_threshold, Some(1));
        assert_eq!(probe.failure_threshold, Some(5));
        assert_eq!(probe.initial_delay_seconds, None);
        let http = probe.http_get.unwrap_or_else(|| panic!("httpGet kept"));
        assert_eq!(http.path.as_deref(), Some("/"));
        assert_eq!(http.scheme.as_deref(), Some("HTTP"));
        let tcp = p.spec.containers[1]
            .readiness_probe
            .as_ref()
            .cloned()
            .unwrap_or_default();
        assert_eq!(tcp.failure_threshold, Some(3));
        assert_eq!(p.status.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn deployment_replicas() {
        let mut d = Deployment::default();
        deployment(&mut d);
        assert_eq!(d.spec.replicas, Some(1));
        d.spec.replicas = Some(0);
        deployment(&mut d);
        assert_eq!(d.spec.replicas, Some(0));
    }

    #[test]
    fn endpoint_slice_defaults() {
        let mut s = EndpointSlice {
            ports: vec![EndpointPort {
                port: Some(80),
                ..Default::default()
            }],
            ..Default::default()
        };
        endpoint_slice(&mut s);
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(s.ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(s.ports[0].name, None);
        s.address_type = "FQDN".to_string();
        endpoint_slice(&mut s);
        assert_eq!(s.address_type, "FQDN");
    }
}
