//! Service environment variables, built exactly as the kubelet builds them
//! (`pkg/kubelet/envvars/envvars.go` and `getServiceEnvVarMap`), so a
//! process started with them finds its Services the way it would in a pod.
//!
//! Which Services count, as in the kubelet:
//! - those of the pod's namespace, plus `default/kubernetes` for every
//!   namespace (the kubelet's "master service"; the namespace's own Service
//!   of that name wins);
//! - only Services with a ClusterIP: never headless or ExternalName ones;
//! - only Services that existed when the pod was created. The kubelet uses
//!   whatever its informer holds when it starts the containers, which is
//!   shortly after the pod object is created; creation times have one-second
//!   resolution, so a Service created in the pod's own second counts
//!   ("at or before"), while one created in any later second does not.
//!
//! The kubelet hands them to the runtime as a map; here they come sorted by
//! name, one deterministic order for output and tests.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use switchyard_api::resources::{service_type, Service, DEFAULT_NAMESPACE};

/// The Service the kubelet adds to every pod, whatever its namespace.
const MASTER_SERVICE: &str = "kubernetes";

/// One `NAME=value` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// The variables a pod in `namespace` gets from `services` (any namespaces;
/// the irrelevant ones are skipped). `pod_created` is the pod's
/// `creationTimestamp`; `None` means a pod created now (every Service counts).
pub fn service_env(
    namespace: &str,
    services: &[Service],
    pod_created: Option<&str>,
) -> Vec<EnvVar> {
    let cutoff = pod_created.and_then(parse_time);
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services
        .iter()
        .filter(|s| has_cluster_ip(s) && existed(s, cutoff))
    {
        let ns = svc
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE);
        let name = svc.metadata.name.as_str();
        if ns == namespace {
            chosen.insert(name, svc);
        } else if ns == DEFAULT_NAMESPACE && name == MASTER_SERVICE {
            chosen.entry(name).or_insert(svc);
        }
    }
    let vars: BTreeMap<String, String> = chosen
        .values()
        .flat_map(|s| from_service(s))
        .map(|v| (v.name, v.value))
        .collect();
    vars.into_iter()
        .map(|(name, value)| EnvVar { name, value })
        .collect()
}

/// The kubelet's `IsServiceIPSet`, and never ExternalName.
fn has_cluster_ip(s: &Service) -> bool {
    let ip = s.spec.cluster_ip.as_deref().unwrap_or("");
    !ip.is_empty() && ip != "None" && s.service_type() != service_type::EXTERNAL_NAME
}

fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

/// Created at or before the cut-off. A Service without a readable
/// creation time is taken as old (it cannot be shown to be newer).
fn existed(s: &Service, cutoff: Option<DateTime<FixedOffset>>) -> bool {
    let created = s
        .metadata
        .creation_timestamp
        .as_deref()
        .and_then(parse_time);
    match (created, cutoff) {
        (Some(created), Some(cutoff)) => created <= cutoff,
        _ => true,
    }
}

/// `frontend-svc` → `FRONTEND_SVC` (the kubelet's `makeEnvVariableName`).
pub fn variable_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The kubelet's `FromServices` for one Service.
fn from_service(s: &Service) -> Vec<EnvVar> {
    let prefix = variable_name(&s.metadata.name);
    let ip = s.spec.cluster_ip.as_deref().unwrap_or("");
    let mut vars = vec![var(format!("{prefix}_SERVICE_HOST"), ip)];
    let Some(first) = s.spec.ports.first() else {
        return vars;
    };
    let service_port = format!("{prefix}_SERVICE_PORT");
    vars.push(var(service_port.clone(), first.port.to_string()));
    for p in &s.spec.ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            vars.push(var(
                format!("{service_port}_{}", variable_name(name)),
                p.port.to_string(),
            ));
        }
    }
    vars.extend(link_variables(&prefix, ip, s));
    vars
}

/// Docker-link-style variables (`makeLinkVariables`): `{SVC}_PORT` for the
/// first port, then `{SVC}_PORT_{port}_{PROTO}` and its `_PROTO`, `_PORT`,
/// `_ADDR` for every port.
fn link_variables(prefix: &str, ip: &str, s: &Service) -> Vec<EnvVar> {
    let mut vars = Vec::new();
    for (i, p) in s.spec.ports.iter().enumerate() {
        let proto = p.protocol().to_lowercase();
        let url = format!("{proto}://{}", join_host_port(ip, p.port));
        if i == 0 {
            vars.push(var(format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        vars.push(var(format!("{port_prefix}_PROTO"), proto));
        vars.push(var(format!("{port_prefix}_PORT"), p.port.to_string()));
        vars.push(var(format!("{port_prefix}_ADDR"), ip));
        vars.push(var(port_prefix, url));
    }
    vars
}

/// Go's `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn var(name: String, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name,
        value: value.into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use switchyard_api::resources::{ObjectMeta, ServicePort, ServiceSpec};

    fn port(name: Option<&str>, protocol: Option<&str>, port: i32) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            protocol: protocol.map(str::to_string),
            port,
            ..Default::default()
        }
    }

    fn svc(ns: &str, name: &str, ip: Option<&str>, ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some(ns.into()),
                creation_timestamp: Some("2026-01-01T10:00:00Z".into()),
                ..Default::default()
            },
            spec: ServiceSpec {
                cluster_ip: ip.map(str::to_string),
                ports,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn created(mut s: Service, at: &str) -> Service {
        s.metadata.creation_timestamp = Some(at.into());
        s
    }

    fn pairs(vars: &[EnvVar]) -> Vec<String> {
        vars.iter()
            .map(|v| format!("{}={}", v.name, v.value))
            .collect()
    }

    fn names(vars: &[EnvVar]) -> Vec<&str> {
        vars.iter().map(|v| v.name.as_str()).collect()
    }

    #[test]
    fn one_unnamed_port() {
        let s = svc(
            "default",
            "frontend-svc",
            Some("10.96.0.20"),
            vec![port(None, None, 80)],
        );
        assert_eq!(
            pairs(&service_env("default", &[s], None)),
            [
                "FRONTEND_SVC_PORT=tcp://10.96.0.20:80",
                "FRONTEND_SVC_PORT_80_TCP=tcp://10.96.0.20:80",
                "FRONTEND_SVC_PORT_80_TCP_ADDR=10.96.0.20",
                "FRONTEND_SVC_PORT_80_TCP_PORT=80",
                "FRONTEND_SVC_PORT_80_TCP_PROTO=tcp",
                "FRONTEND_SVC_SERVICE_HOST=10.96.0.20",
                "FRONTEND_SVC_SERVICE_PORT=80",
            ]
        );
    }

    #[test]
    fn named_and_multiple_ports() {
        let s = svc(
            "default",
            "redis-primary",
            Some("10.96.0.11"),
            vec![
                port(Some("redis"), Some("TCP"), 6379),
                port(Some("metrics-udp"), Some("UDP"), 9121),
            ],
        );
        assert_eq!(
            pairs(&service_env("default", &[s], None)),
            [
                "REDIS_PRIMARY_PORT=tcp://10.96.0.11:6379",
                "REDIS_PRIMARY_PORT_6379_TCP=tcp://10.96.0.11:6379",
                "REDIS_PRIMARY_PORT_6379_TCP_ADDR=10.96.0.11",
                "REDIS_PRIMARY_PORT_6379_TCP_PORT=6379",
                "REDIS_PRIMARY_PORT_6379_TCP_PROTO=tcp",
                "REDIS_PRIMARY_PORT_9121_UDP=udp://10.96.0.11:9121",
                "REDIS_PRIMARY_PORT_9121_UDP_ADDR=10.96.0.11",
                "REDIS_PRIMARY_PORT_9121_UDP_PORT=9121",
                "REDIS_PRIMARY_PORT_9121_UDP_PROTO=udp",
                "REDIS_PRIMARY_SERVICE_HOST=10.96.0.11",
                "REDIS_PRIMARY_SERVICE_PORT=6379",
                "REDIS_PRIMARY_SERVICE_PORT_METRICS_UDP=9121",
                "REDIS_PRIMARY_SERVICE_PORT_REDIS=6379",
            ]
        );
    }

    #[test]
    fn names_are_upper_cased_with_dashes_as_underscores() {
        assert_eq!(variable_name("my-svc-2"), "MY_SVC_2");
        assert_eq!(variable_name("http-alt"), "HTTP_ALT");
        assert_eq!(variable_name("web"), "WEB");
    }

    #[test]
    fn headless_external_name_and_unallocated_services_are_skipped() {
        let mut ext = svc("default", "ext", None, vec![port(None, None, 80)]);
        ext.spec.type_ = Some("ExternalName".into());
        ext.spec.external_name = Some("example.com".into());
        let services = [
            svc(
                "default",
                "headless",
                Some("None"),
                vec![port(None, None, 80)],
            ),
            svc("default", "pending", Some(""), vec![port(None, None, 80)]),
            ext,
        ];
        assert!(service_env("default", &services, None).is_empty());
    }

    #[test]
    fn only_the_namespace_and_the_master_service() {
        let services = [
            svc(
                "default",
                "a",
                Some("10.96.0.1"),
                vec![port(None, None, 80)],
            ),
            svc("other", "b", Some("10.96.0.2"), vec![port(None, None, 80)]),
            svc(
                "default",
                "kubernetes",
                Some("10.96.0.3"),
                vec![port(Some("https"), None, 443)],
            ),
        ];
        let hosts = |ns| {
            service_env(ns, &services, None)
                .into_iter()
                .filter(|v| v.name.ends_with("_SERVICE_HOST"))
                .map(|v| format!("{}={}", v.name, v.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            hosts("default"),
            [
                "A_SERVICE_HOST=10.96.0.1",
                "KUBERNETES_SERVICE_HOST=10.96.0.3"
            ]
        );
        assert_eq!(
            hosts("other"),
            [
                "B_SERVICE_HOST=10.96.0.2",
                "KUBERNETES_SERVICE_HOST=10.96.0.3"
            ]
        );
        assert_eq!(hosts("empty"), ["KUBERNETES_SERVICE_HOST=10.96.0.3"]);
    }

    #[test]
    fn the_namespace_s_own_kubernetes_service_wins() {
        let services = [
            svc(
                "default",
                "kubernetes",
                Some("10.96.0.1"),
                vec![port(None, None, 443)],
            ),
            svc(
                "team",
                "kubernetes",
                Some("10.96.0.9"),
                vec![port(None, None, 443)],
            ),
        ];
        let vars = service_env("team", &services, None);
        assert!(pairs(&vars).contains(&"KUBERNETES_SERVICE_HOST=10.96.0.9".to_string()));
        assert!(!pairs(&vars).iter().any(|p| p.contains("10.96.0.1")));
    }

    #[test]
    fn services_created_after_the_pod_are_cut_off() {
        let base = svc(
            "default",
            "x",
            Some("10.96.0.1"),
            vec![port(None, None, 80)],
        );
        let mut later = created(base.clone(), "2026-01-01T10:00:01Z");
        later.metadata.name = "later".into();
        let mut same = created(base.clone(), "2026-01-01T10:00:00Z");
        same.metadata.name = "same".into();
        let mut earlier = created(base.clone(), "2026-01-01T09:59:59Z");
        earlier.metadata.name = "earlier".into();
        let mut unknown = base;
        unknown.metadata.name = "unknown".into();
        unknown.metadata.creation_timestamp = None;
        let services = [later, same, earlier, unknown];
        let hosts = |pod: Option<&str>| {
            names(&service_env("default", &services, pod))
                .into_iter()
                .filter(|n| n.ends_with("_SERVICE_HOST"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            hosts(Some("2026-01-01T10:00:00Z")),
            [
                "EARLIER_SERVICE_HOST",
                "SAME_SERVICE_HOST",
                "UNKNOWN_SERVICE_HOST"
            ]
        );
        // Offsets compare as instants.
        assert_eq!(
            hosts(Some("2026-01-01T11:00:00+01:00")),
            [
                "EARLIER_SERVICE_HOST",
                "SAME_SERVICE_HOST",
                "UNKNOWN_SERVICE_HOST"
            ]
        );
        // No pod: every current Service.
        assert_eq!(
            hosts(None),
            [
                "EARLIER_SERVICE_HOST",
                "LATER_SERVICE_HOST",
                "SAME_SERVICE_HOST",
                "UNKNOWN_SERVICE_HOST"
            ]
        );
    }

    #[test]
    fn ipv6_cluster_ips_are_bracketed_in_urls() {
        let s = svc(
            "default",
            "v6",
            Some("fd00::10"),
            vec![port(None, Some("UDP"), 53)],
        );
        let vars = pairs(&service_env("default", &[s], None));
        assert!(
            vars.contains(&"V6_PORT=udp://[fd00::10]:53".to_string()),
            "{vars:?}"
        );
        assert!(
            vars.contains(&"V6_PORT_53_UDP_ADDR=fd00::10".to_string()),
            "{vars:?}"
        );
    }
}
