//! Which pod and port a port-forward target goes to.
//!
//! Reading the registry is one thin function; the rules (which Service port,
//! which pod, which target port) are plain functions over plain objects so
//! they are unit-tested without a server. Like kubectl, `svc/` and `deploy/`
//! pick one ready pod; unlike kubectl, the choice is re-made per connection,
//! so a forward survives its pod going away when another is ready.

use switchyard_api::resources::{IntOrString, Kind, Object, Pod, Service, ServicePort};
use switchyard_api::v1::{ForwardRoute, ForwardTarget};

use crate::controller::endpoints;
use crate::registry::{Registry, RegistryError};
use crate::selector::Selector;

/// Why a target cannot be forwarded to; the text is what swctl prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The named object does not exist (the registry's own wording).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NoReadyPod(String),
    #[error("{0}")]
    Unroutable(String),
    #[error("the agent of node \"{node}\" (running pod \"{pod}\") is not connected to the control plane")]
    AgentDisconnected { node: String, pod: String },
}

/// A target as the broker understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    namespace: String,
    kind: Kind,
    name: String,
    port: u16,
}

/// Resolves `target` against the registry's current objects. `connected`
/// says whether a node's agent holds a tunnel open: among ready pods, those
/// reachable right now are preferred.
pub fn resolve(
    registry: &Registry,
    target: &ForwardTarget,
    connected: impl Fn(&str) -> bool,
) -> Result<ForwardRoute, ResolveError> {
    let req = parse(target)?;
    let get = |kind| registry.get(kind, &req.namespace, &req.name);
    match (req.kind, get(req.kind).map_err(not_found)?) {
        (Kind::Pod, Object::Pod(pod)) => {
            let route = route_to_pod(&pod, req.port)?;
            check_connected(route, &connected)
        }
        (Kind::Service, Object::Service(svc)) => {
            let sp = service_port(&svc, req.port)?;
            let pods = pods_in(registry, &req.namespace, &Selector::default())
                .into_iter()
                .filter(|p| endpoints::selects(&svc, p));
            choose_for_service(&svc, sp, pods, &connected)
        }
        (Kind::Deployment, Object::Deployment(d)) => {
            let selector = Selector::from_label_selector(&d.spec.selector);
            let pods = pods_in(registry, &req.namespace, &selector)
                .into_iter()
                .map(|p| (p, req.port));
            choose(&format!("deployment \"{}\"", req.name), pods, &connected)
        }
        (kind, _) => Err(ResolveError::Invalid(format!(
            "cannot port-forward to a {kind}"
        ))),
    }
}

fn parse(target: &ForwardTarget) -> Result<Request, ResolveError> {
    let kind: Kind = target
        .kind
        .parse()
        .map_err(|e: switchyard_api::resources::UnknownKind| {
            ResolveError::Invalid(e.to_string())
        })?;
    if !matches!(kind, Kind::Service | Kind::Deployment | Kind::Pod) {
        return Err(ResolveError::Invalid(format!(
            "cannot port-forward to a {kind}: use a Service, Deployment or Pod"
        )));
    }
    if target.name.is_empty() {
        return Err(ResolveError::Invalid("a target name is required".into()));
    }
    let port = u16::try_from(target.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            ResolveError::Invalid(format!(
                "invalid port {}: must be from 1 to 65535",
                target.port
            ))
        })?;
    let namespace = match target.namespace.as_str() {
        "" => switchyard_api::resources::DEFAULT_NAMESPACE.to_string(),
        ns => ns.to_string(),
    };
    Ok(Request {
        namespace,
        kind,
        name: target.name.clone(),
        port,
    })
}

fn not_found(e: RegistryError) -> ResolveError {
    ResolveError::NotFound(e.to_string())
}

fn pods_in(registry: &Registry, namespace: &str, selector: &Selector) -> Vec<Pod> {
    let (items, _) = registry.list(Kind::Pod, Some(namespace), selector);
    items
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// The Service port a forward's REMOTE names (kubectl matches the number).
pub fn service_port(svc: &Service, port: u16) -> Result<&ServicePort, ResolveError> {
    let name = &svc.metadata.name;
    if svc.service_type() == "ExternalName" {
        return Err(ResolveError::Invalid(format!(
            "cannot port-forward to ExternalName service \"{name}\": it has no pods"
        )));
    }
    if svc.spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
        return Err(ResolveError::Invalid(format!(
            "service \"{name}\" is defined without a selector, so it has no pods to forward to"
        )));
    }
    let sp = svc
        .spec
        .ports
        .iter()
        .find(|p| p.port == i32::from(port))
        .ok_or_else(|| {
            ResolveError::Invalid(format!(
                "service \"{name}\" does not have a service port {port}"
            ))
        })?;
    if sp.protocol() != "TCP" {
        return Err(ResolveError::Invalid(format!(
            "service \"{name}\" port {port} is {}: port-forward supports TCP only",
            sp.protocol()
        )));
    }
    Ok(sp)
}

/// The port a Service port reaches on one pod; `None` when the pod does not
/// declare a named target port (the endpoints controller skips it too).
pub fn target_port_on(pod: &Pod, sp: &ServicePort) -> Option<u16> {
    let number = match &sp.target_port {
        None => sp.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => pod.named_port(name, sp.protocol())?,
    };
    u16::try_from(number).ok().filter(|p| *p != 0)
}

fn choose_for_service(
    svc: &Service,
    sp: &ServicePort,
    pods: impl Iterator<Item = Pod>,
    connected: &dyn Fn(&str) -> bool,
) -> Result<ForwardRoute, ResolveError> {
    let what = format!("service \"{}\"", svc.metadata.name);
    let (with_port, without): (Vec<_>, Vec<_>) = pods
        .map(|p| {
            let port = target_port_on(&p, sp);
            (p, port)
        })
        .partition(|(_, port)| port.is_some());
    let candidates: Vec<(Pod, u16)> = with_port
        .into_iter()
        .filter_map(|(p, port)| port.map(|n| (p, n)))
        .collect();
    if candidates.iter().all(|(p, _)| !is_usable(p)) && without.iter().any(|(p, _)| is_usable(p)) {
        let target = sp
            .target_port
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default();
        return Err(ResolveError::Invalid(format!(
            "{what} port {} targets port \"{target}\", which none of its ready pods declares",
            sp.port
        )));
    }
    choose(&what, candidates.into_iter(), connected)
}

/// Ready, with an address and a node: a pod a connection can go to.
fn is_usable(pod: &Pod) -> bool {
    pod.is_ready() && pod.status.pod_ip.is_some() && pod.spec.node_name.is_some()
}

/// Picks one ready pod: first those whose agent is connected, then by name,
/// so every connection of a forward goes to the same pod while it lasts.
pub fn choose(
    what: &str,
    candidates: impl Iterator<Item = (Pod, u16)>,
    connected: &dyn Fn(&str) -> bool,
) -> Result<ForwardRoute, ResolveError> {
    let mut ready: Vec<(Pod, u16)> = candidates.filter(|(p, _)| is_usable(p)).collect();
    let reachable = |p: &Pod| p.spec.node_name.as_deref().is_some_and(connected);
    ready.sort_by(|(a, _), (b, _)| {
        (!reachable(a), &a.metadata.name).cmp(&(!reachable(b), &b.metadata.name))
    });
    let (pod, port) = ready
        .into_iter()
        .next()
        .ok_or_else(|| ResolveError::NoReadyPod(format!("{what} has no ready pods")))?;
    let route = route_to_pod(&pod, port)?;
    check_connected(route, connected)
}

/// Where a connection to one pod goes. A named pod need not be ready (as
/// with kubectl), but it must have an address, a node, and not be finished.
pub fn route_to_pod(pod: &Pod, port: u16) -> Result<ForwardRoute, ResolveError> {
    let name = &pod.metadata.name;
    if let Some(phase) = pod
        .status
        .phase
        .as_deref()
        .filter(|p| !p.is_empty() && *p != "Running")
    {
        return Err(ResolveError::Unroutable(format!(
            "unable to forward port because pod \"{name}\" is not running. Current status={phase}"
        )));
    }
    let pod_ip = pod.status.pod_ip.clone().ok_or_else(|| {
        ResolveError::Unroutable(format!("pod \"{name}\" has no IP address (status.podIP)"))
    })?;
    let node = pod.spec.node_name.clone().ok_or_else(|| {
        ResolveError::Unroutable(format!(
            "pod \"{name}\" is not bound to a node (spec.nodeName)"
        ))
    })?;
    Ok(ForwardRoute {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        pod: name.clone(),
        node,
        pod_ip,
        pod_port: u32::from(port),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
    })
}

fn check_connected(
    route: ForwardRoute,
    connected: &dyn Fn(&str) -> bool,
) -> Result<ForwardRoute, ResolveError> {
    if connected(&route.node) {
        Ok(route)
    } else {
        Err(ResolveError::AgentDisconnected {
            node: route.node,
            pod: route.pod,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::{Container, ContainerPort, ObjectMeta, PodCondition};

    fn pod(name: &str, node: &str, ready: bool) -> Pod {
        let mut p = Pod {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        p.spec.node_name = Some(node.into());
        p.spec.containers = vec![Container {
            name: "c".into(),
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 5000,
                protocol: None,
            }],
            ..Default::default()
        }];
        p.status.pod_ip = Some(format!("10.0.0.{}", name.len()));
        p.status.conditions = vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: None,
            ..Default::default()
        }];
        p
    }

    fn svc(target: Option<IntOrString>) -> Service {
        let mut s = Service::default();
        s.metadata.name = "web".into();
        s.spec.selector = Some([("app".to_string(), "web".to_string())].into());
        s.spec.ports = vec![ServicePort {
            port: 80,
            target_port: target,
            ..Default::default()
        }];
        s
    }

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn maps_service_ports_to_target_ports() {
        let p = pod("a", "n1", true);
        let by_number = svc(Some(IntOrString::Int(8080)));
        assert_eq!(
            target_port_on(&p, service_port(&by_number, 80).unwrap()),
            Some(8080)
        );
        let by_name = svc(Some(IntOrString::String("http".into())));
        assert_eq!(
            target_port_on(&p, service_port(&by_name, 80).unwrap()),
            Some(5000)
        );
        let defaulted = svc(None);
        assert_eq!(
            target_port_on(&p, service_port(&defaulted, 80).unwrap()),
            Some(80)
        );
        let unknown = svc(Some(IntOrString::String("grpc".into())));
        assert_eq!(
            target_port_on(&p, service_port(&unknown, 80).unwrap()),
            None
        );
    }

    #[test]
    fn refuses_unknown_service_ports_udp_and_selectorless_services() {
        let s = svc(None);
        assert_eq!(
            service_port(&s, 81).unwrap_err().to_string(),
            "service \"web\" does not have a service port 81"
        );
        let mut udp = svc(None);
        udp.spec.ports[0].protocol = Some("UDP".into());
        assert!(service_port(&udp, 80)
            .unwrap_err()
            .to_string()
            .contains("TCP only"));
        let mut bare = svc(None);
        bare.spec.selector = None;
        assert!(service_port(&bare, 80)
            .unwrap_err()
            .to_string()
            .contains("without a selector"));
    }

    #[test]
    fn picks_the_first_ready_pod_by_name() {
        let pods = vec![
            (pod("c", "n1", true), 1),
            (pod("a", "n1", false), 1),
            (pod("b", "n2", true), 1),
        ];
        let route = choose("x", pods.into_iter(), &all).unwrap();
        assert_eq!((route.pod.as_str(), route.node.as_str()), ("b", "n2"));
    }

    #[test]
    fn prefers_pods_whose_agent_is_connected() {
        let pods = vec![(pod("a", "n1", true), 1), (pod("b", "n2", true), 1)];
        let only_n2 = |n: &str| n == "n2";
        let route = choose("x", pods.clone().into_iter(), &only_n2).unwrap();
        assert_eq!(route.pod, "b");
        let none = |_: &str| false;
        assert_eq!(
            choose("x", pods.into_iter(), &none).unwrap_err(),
            ResolveError::AgentDisconnected {
                node: "n1".into(),
                pod: "a".into()
            }
        );
    }

    #[test]
    fn no_ready_pod_is_an_error() {
        let pods = vec![(pod("a", "n1", false), 1)];
        assert_eq!(
            choose("service \"web\"", pods.into_iter(), &all)
                .unwrap_err()
                .to_string(),
            "service \"web\" has no ready pods"
        );
    }

    #[test]
    fn a_named_target_port_no_pod_declares_is_explained() {
        let s = svc(Some(IntOrString::String("grpc".into())));
        let sp = service_port(&s, 80).unwrap();
        let err =
            choose_for_service(&s, sp, vec![pod("a", "n1", true)].into_iter(), &all).unwrap_err();
        assert!(err.to_string().contains("targets port \"grpc\""), "{err}");
    }

    #[test]
    fn named_pods_need_an_address_a_node_and_to_be_running() {
        let mut p = pod("a", "n1", false);
        assert_eq!(route_to_pod(&p, 5000).unwrap().pod_port, 5000);
        p.status.phase = Some("Succeeded".into());
        assert!(route_to_pod(&p, 5000).is_err());
        p.status.phase = None;
        p.status.pod_ip = None;
        assert!(route_to_pod(&p, 5000).is_err());
    }

    #[test]
    fn parses_targets() {
        let t = |kind: &str, port| ForwardTarget {
            namespace: String::new(),
            kind: kind.into(),
            name: "x".into(),
            port,
        };
        assert_eq!(parse(&t("svc", 80)).unwrap().kind, Kind::Service);
        assert_eq!(parse(&t("Pod", 80)).unwrap().namespace, "default");
        assert!(parse(&t("Node", 80)).is_err());
        assert!(parse(&t("Pod", 0)).is_err());
        assert!(parse(&t("Pod", 70000)).is_err());
    }
}
