//! The endpoints controller: for every Service with a selector, the
//! EndpointSlices listing its matching Pods.
//!
//! Each endpoint carries its node's zone; under `trafficDistribution` it is
//! hinted for that zone (and, for `PreferSameNode`, its node) as
//! Kubernetes' controller hints it, so agents can keep traffic close.
//!
//! Pods whose named targetPorts resolve to different numbers land in
//! different slices (one slice per distinct port list, at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints each), exactly as Kubernetes splits
//! them. Slice names derive from the Service name and the port list, so
//! recomputing yields the same names and the registry can diff by key.

use std::collections::BTreeMap;
use std::net::IpAddr;

use switchyard_api::resources::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForName, IntOrString,
    Kind, ObjectMeta, ObjectReference, Pod, Service, MANAGED_BY_CONTROLLER, MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
};

use crate::ip_family::IpFamily;
use crate::selector::service_selects;

pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The node label endpoints take their zone from.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Each node's zone, from its `topology.kubernetes.io/zone` label.
pub type NodeZones = BTreeMap<String, String>;

/// The `trafficDistribution` values, Kubernetes 1.33+.
pub use switchyard_api::resources::traffic_distribution;

/// Whether the controller manages slices for this Service at all.
pub fn is_managed(svc: &Service) -> bool {
    svc.service_type() != "ExternalName"
        && svc.spec.selector.as_ref().is_some_and(|s| !s.is_empty())
}

/// Whether `pod` is (or was) a backend of `svc`: the pods whose change must
/// re-run this controller for that Service.
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    is_managed(svc)
        && svc.metadata.namespace == pod.metadata.namespace
        && svc
            .spec
            .selector
            .as_ref()
            .is_some_and(|sel| service_selects(sel, &pod.metadata.labels))
}

/// The complete set of slices `svc` should have, given every Pod of its namespace.
pub fn desired_slices<'a>(
    svc: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
    zones: &NodeZones,
) -> Vec<EndpointSlice> {
    if !is_managed(svc) {
        return Vec::new();
    }
    let families = address_types(svc);
    type Group = (IpFamily, Vec<EndpointPort>);
    let mut groups: BTreeMap<Group, Vec<(String, Endpoint)>> = BTreeMap::new();
    for pod in pods.into_iter().filter(|p| selects(svc, p)) {
        for family in &families {
            if let Some((ports, endpoint)) = endpoint_for(svc, pod, *family, zones) {
                groups
                    .entry((*family, ports))
                    .or_default()
                    .push((pod.metadata.name.clone(), endpoint));
            }
        }
    }
    groups
        .into_iter()
        .flat_map(|((family, ports), mut endpoints)| {
            endpoints.sort_by(|a, b| a.0.cmp(&b.0));
            let chunks: Vec<Vec<Endpoint>> = endpoints
                .chunks(MAX_ENDPOINTS_PER_SLICE)
                .map(|c| c.iter().map(|(_, e)| e.clone()).collect())
                .collect();
            chunks
                .into_iter()
                .enumerate()
                .map(move |(i, eps)| slice(svc, family, &ports, i, eps))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A slice per family of the Service's `ipFamilies`, as Kubernetes'
/// controller makes them; a Service stored without families takes its
/// ClusterIP's, a headless one both.
fn address_types(svc: &Service) -> Vec<IpFamily> {
    let named = IpFamily::of_service(svc);
    if !named.is_empty() {
        return named;
    }
    match svc.spec.cluster_ip.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(ip)) => vec![IpFamily::of(ip)],
        _ if svc.is_headless() => vec![IpFamily::V4, IpFamily::V6],
        _ => vec![IpFamily::V4],
    }
}

/// `pod` as an endpoint of the `family` slices: its address of that
/// family; none when it has no such address.
fn endpoint_for(
    svc: &Service,
    pod: &Pod,
    family: IpFamily,
    zones: &NodeZones,
) -> Option<(Vec<EndpointPort>, Endpoint)> {
    let ip = pod
        .ips()
        .into_iter()
        .find(|ip| ip.parse().is_ok_and(|ip| IpFamily::of(ip) == family))?
        .to_string();
    let ports = svc
        .spec
        .ports
        .iter()
        .filter_map(|sp| {
            let number = match sp.target_port.as_ref() {
                None => sp.port,
                Some(IntOrString::Int(n)) => *n,
                Some(IntOrString::String(name)) => pod.named_port(name, sp.protocol())?,
            };
            Some(EndpointPort {
                name: sp.name.clone(),
                port: Some(number),
                protocol: Some(sp.protocol().to_string()),
            })
        })
        .collect();
    let ready = pod.is_ready();
    let publish = svc.spec.publish_not_ready_addresses.unwrap_or(false);
    let hostname = pod
        .spec
        .hostname
        .clone()
        .filter(|_| pod.spec.subdomain.as_deref() == Some(svc.metadata.name.as_str()));
    let node = pod.spec.node_name.as_deref();
    let zone = node.and_then(|n| zones.get(n)).cloned();
    let endpoint = Endpoint {
        hints: hints(svc, zone.as_deref(), node),
        zone,
        addresses: vec![ip],
        conditions: EndpointConditions {
            ready: Some(ready || publish),
            serving: Some(ready || publish),
            terminating: Some(false),
        },
        hostname,
        node_name: pod.spec.node_name.clone(),
        target_ref: Some(ObjectReference {
            kind: Kind::Pod.as_str().to_string(),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
        }),
    };
    Some((ports, endpoint))
}

/// Kubernetes' hints: under PreferClose and PreferSameZone an endpoint is
/// for its zone; under PreferSameNode for its node and its zone (so agents
/// that do not know nodes still keep traffic in the zone).
fn hints(svc: &Service, zone: Option<&str>, node: Option<&str>) -> Option<EndpointHints> {
    use traffic_distribution::*;
    let named = |name: Option<&str>| {
        name.filter(|n| !n.is_empty())
            .map(|n| ForName {
                name: n.to_string(),
            })
            .into_iter()
            .collect::<Vec<_>>()
    };
    let hints = match svc.spec.traffic_distribution.as_deref()? {
        PREFER_CLOSE | PREFER_SAME_ZONE => EndpointHints {
            for_zones: named(zone),
            for_nodes: Vec::new(),
        },
        PREFER_SAME_NODE => EndpointHints {
            for_zones: named(zone),
            for_nodes: named(node),
        },
        _ => return None,
    };
    (!hints.for_zones.is_empty() || !hints.for_nodes.is_empty()).then_some(hints)
}

fn slice(
    svc: &Service,
    family: IpFamily,
    ports: &[EndpointPort],
    chunk: usize,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let signature: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}",
                p.name.as_deref().unwrap_or(""),
                p.protocol.as_deref().unwrap_or(""),
                p.port.unwrap_or(0)
            )
        })
        .collect();
    // IPv4 slices keep the names they had before IPv6 ones existed.
    let family_tag = match family {
        IpFamily::V4 => "",
        IpFamily::V6 => "IPv6|",
    };
    let suffix = format!(
        "{:05x}",
        fnv1a(format!("{family_tag}{}#{chunk}", signature.join(",")).as_bytes()) & 0xfffff
    );
    let labels = [
        (SERVICE_NAME_LABEL.to_string(), svc.metadata.name.clone()),
        (
            MANAGED_BY_LABEL.to_string(),
            MANAGED_BY_CONTROLLER.to_string(),
        ),
    ]
    .into_iter()
    .collect();
    EndpointSlice {
        api_version: Kind::EndpointSlice.api_version().to_string(),
        kind: Kind::EndpointSlice.as_str().to_string(),
        metadata: ObjectMeta {
            name: format!("{}-{suffix}", svc.metadata.name),
            namespace: svc.metadata.namespace.clone(),
            labels,
            ..Default::default()
        },
        address_type: family.as_str().to_string(),
        endpoints,
        ports: ports.to_vec(),
    }
}

/// FNV-1a: stable across builds and toolchains, unlike std's hasher, so
/// slice names survive upgrades.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::{Container, ContainerPort, PodCondition, ServicePort};

    fn service(target: IntOrString, publish: bool) -> Service {
        let mut s = Service::default();
        s.metadata.name = "frontend-svc".into();
        s.metadata.namespace = Some("default".into());
        s.spec.selector = Some(
            [("app".to_string(), "frontend".to_string())]
                .into_iter()
                .collect(),
        );
        s.spec.ports = vec![ServicePort {
            port: 80,
            protocol: Some("TCP".into()),
            target_port: Some(target),
            ..Default::default()
        }];
        s.spec.publish_not_ready_addresses = Some(publish);
        s
    }

    fn pod(name: &str, ip: &str, web_port: i32, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.namespace = Some("default".into());
        p.metadata.labels = [("app".to_string(), "frontend".to_string())]
            .into_iter()
            .collect();
        p.spec.node_name = Some("node-1".into());
        p.spec.containers = vec![Container {
            name: "web".into(),
            ports: vec![ContainerPort {
                name: Some("web".into()),
                container_port: web_port,
                protocol: Some("TCP".into()),
            }],
            ..Default::default()
        }];
        p.status.pod_ip = Some(ip.into());
        p.status.conditions = vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: None,
            ..Default::default()
        }];
        p
    }

    /// Per slice: its port numbers and each endpoint's (address, ready).
    type Summary = Vec<(Vec<Option<i32>>, Vec<(String, Option<bool>)>)>;

    fn summary(slices: &[EndpointSlice]) -> Summary {
        slices
            .iter()
            .map(|s| {
                (
                    s.ports.iter().map(|p| p.port).collect(),
                    s.endpoints
                        .iter()
                        .map(|e| (e.addresses[0].clone(), e.conditions.ready))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn lists_matching_pods_with_readiness() {
        let svc = service(IntOrString::Int(5000), false);
        let mut other = pod("db", "10.244.1.9", 5000, true);
        other.metadata.labels.insert("app".into(), "db".into());
        let pods = [
            pod("a", "10.244.1.5", 5000, true),
            pod("b", "10.244.2.7", 5000, false),
            other,
        ];
        let slices = desired_slices(&svc, &pods, &NodeZones::default());
        assert_eq!(
            summary(&slices),
            vec![(
                vec![Some(5000)],
                vec![
                    ("10.244.1.5".to_string(), Some(true)),
                    ("10.244.2.7".to_string(), Some(false))
                ]
            )]
        );
        assert_eq!(slices[0].service_name(), Some("frontend-svc"));
        assert!(slices[0].is_managed());
        assert!(slices[0].metadata.name.starts_with("frontend-svc-"));
        assert_eq!(slices[0].endpoints[0].node_name.as_deref(), Some("node-1"));
    }

    #[test]
    fn a_slice_per_family_each_with_the_pods_address_of_that_family() {
        let mut svc = service(IntOrString::Int(5000), false);
        let ipv4_name = desired_slices(
            &svc,
            &[pod("a", "10.244.1.5", 5000, true)],
            &NodeZones::default(),
        )[0]
        .metadata
        .name
        .clone();
        svc.spec
            .kept
            .insert("ipFamilies".into(), serde_json::json!(["IPv6", "IPv4"]));
        let mut dual = pod("a", "10.244.1.5", 5000, true);
        dual.status.pod_ips = vec![
            switchyard_api::resources::PodIp {
                ip: "10.244.1.5".into(),
            },
            switchyard_api::resources::PodIp {
                ip: "fd00:10:244:1::5".into(),
            },
        ];
        let v4_only = pod("b", "10.244.2.7", 5000, true);
        let slices = desired_slices(&svc, &[dual, v4_only], &NodeZones::default());
        let by_type: Vec<(&str, Vec<&str>)> = slices
            .iter()
            .map(|s| {
                let ips = s
                    .endpoints
                    .iter()
                    .map(|e| e.addresses[0].as_str())
                    .collect();
                (s.address_type.as_str(), ips)
            })
            .collect();
        assert_eq!(
            by_type,
            [
                ("IPv4", vec!["10.244.1.5", "10.244.2.7"]),
                ("IPv6", vec!["fd00:10:244:1::5"])
            ]
        );
        assert_eq!(
            slices[0].metadata.name, ipv4_name,
            "IPv4 names are unchanged"
        );
        assert_ne!(slices[0].metadata.name, slices[1].metadata.name);
    }

    #[test]
    fn publish_not_ready_marks_everything_ready() {
        let svc = service(IntOrString::Int(5000), true);
        let slices = desired_slices(
            &svc,
            &[pod("b", "10.244.2.7", 5000, false)],
            &NodeZones::default(),
        );
        assert_eq!(slices[0].endpoints[0].conditions.ready, Some(true));
    }

    #[test]
    fn named_target_ports_resolve_per_pod_into_separate_slices() {
        let svc = service(IntOrString::String("web".into()), false);
        let slices = desired_slices(
            &svc,
            &[
                pod("a", "10.244.1.5", 5000, true),
                pod("b", "10.244.2.7", 8080, true),
            ],
            &NodeZones::default(),
        );
        let mut got = summary(&slices);
        got.sort();
        assert_eq!(
            got,
            vec![
                (
                    vec![Some(5000)],
                    vec![("10.244.1.5".to_string(), Some(true))]
                ),
                (
                    vec![Some(8080)],
                    vec![("10.244.2.7".to_string(), Some(true))]
                ),
            ]
        );
        assert_ne!(slices[0].metadata.name, slices[1].metadata.name);
    }

    #[test]
    fn pods_without_ip_and_selectorless_services_are_skipped() {
        let svc = service(IntOrString::Int(5000), false);
        let mut p = pod("a", "10.244.1.5", 5000, true);
        p.status.pod_ip = None;
        assert!(desired_slices(&svc, &[p], &NodeZones::default()).is_empty());
        let mut manual = service(IntOrString::Int(5000), false);
        manual.spec.selector = None;
        assert!(desired_slices(
            &manual,
            &[pod("a", "10.244.1.5", 5000, true)],
            &NodeZones::default()
        )
        .is_empty());
    }

    #[test]
    fn big_services_split_at_one_hundred() {
        let svc = service(IntOrString::Int(5000), false);
        let pods: Vec<Pod> = (0..150)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.244.{}.{}", i / 200, i % 200 + 2),
                    5000,
                    true,
                )
            })
            .collect();
        let slices = desired_slices(&svc, &pods, &NodeZones::default());
        assert_eq!(
            slices.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(),
            vec![100, 50]
        );
    }

    #[test]
    fn endpoints_carry_their_zone_and_the_hints_their_distribution_asks_for() {
        let zones: NodeZones = [("node-1".to_string(), "a".to_string())]
            .into_iter()
            .collect();
        let mut elsewhere = pod("b", "10.244.9.7", 5000, true);
        elsewhere.spec.node_name = Some("node-9".into());
        let pods = [pod("a", "10.244.1.5", 5000, true), elsewhere];
        let hints_under = |distribution: Option<&str>| {
            let mut svc = service(IntOrString::Int(5000), false);
            svc.spec.traffic_distribution = distribution.map(str::to_string);
            let slices = desired_slices(&svc, &pods, &zones);
            slices[0]
                .endpoints
                .iter()
                .map(|e| (e.zone.clone(), e.hints.clone()))
                .collect::<Vec<_>>()
        };
        let name = |n: &str| ForName { name: n.into() };
        assert_eq!(
            hints_under(None),
            [(Some("a".to_string()), None), (None, None)]
        );
        let zone_a = EndpointHints {
            for_zones: vec![name("a")],
            for_nodes: vec![],
        };
        for close in ["PreferClose", "PreferSameZone"] {
            assert_eq!(
                hints_under(Some(close)),
                [(Some("a".to_string()), Some(zone_a.clone())), (None, None)],
                "{close}"
            );
        }
        assert_eq!(
            hints_under(Some("PreferSameNode")),
            [
                (
                    Some("a".to_string()),
                    Some(EndpointHints {
                        for_zones: vec![name("a")],
                        for_nodes: vec![name("node-1")],
                    })
                ),
                (
                    None,
                    Some(EndpointHints {
                        for_zones: vec![],
                        for_nodes: vec![name("node-9")],
                    })
                ),
            ]
        );
    }
}
