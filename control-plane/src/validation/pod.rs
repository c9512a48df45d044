//! Pod validation for the parts Switchyard reads: containers with their
//! named ports and readiness probes, the node, and the pod IP. Rules follow
//! `ValidatePodCreate` (containers, ports, probes) in Kubernetes.

use std::collections::BTreeSet;

use switchyard_api::resources::{
    Container, ContainerPort, HttpGetAction, Pod, PodSpec, Probe, TcpSocketAction,
};

use super::common::{self, non_empty, Scope, IMMUTABLE};
use super::field::{FieldError, FieldErrors};
use super::names;

const SCHEMES: &[&str] = &["HTTP", "HTTPS"];

pub(super) fn validate(pod: &Pod, old: Option<&Pod>) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if let Some(old) = old {
        node_unchanged(&mut errs, pod, old);
    }
    common::object_meta(
        &mut errs,
        &pod.metadata,
        Scope::Namespaced,
        names::dns1123_subdomain,
    );
    spec(&mut errs, &pod.spec);
    pod_ips(&mut errs, pod);
    errs
}

/// Any address, at most one per family, `podIP` first in `podIPs`
/// (defaulting fills one from the other).
fn pod_ips(errs: &mut FieldErrors, pod: &Pod) {
    let status = &pod.status;
    if let Some(ip) = non_empty(status.pod_ip.as_deref()) {
        common::ip(errs, "status.podIP", ip);
    }
    let parsed: Vec<Option<std::net::IpAddr>> = status
        .pod_ips
        .iter()
        .enumerate()
        .map(|(i, p)| common::ip(errs, &format!("status.podIPs[{i}].ip"), &p.ip))
        .collect();
    if let (Some(first), Some(single)) =
        (status.pod_ips.first(), non_empty(status.pod_ip.as_deref()))
    {
        if first.ip != single {
            errs.push(FieldError::invalid(
                "status.podIPs[0].ip",
                first.ip.as_str(),
                "must match `podIP`",
            ));
        }
    }
    let families: Vec<bool> = parsed.iter().flatten().map(|ip| ip.is_ipv6()).collect();
    let one_each = families.len() <= 2 && !(families.len() == 2 && families[0] == families[1]);
    if status.pod_ips.len() > 1 && !one_each {
        let ips: Vec<String> = status
            .pod_ips
            .iter()
            .map(|p| format!("core.PodIP{{IP:{:?}}}", p.ip))
            .collect();
        errs.push(FieldError::invalid(
            "status.podIPs",
            super::golang::value(format!("[]core.PodIP{{{}}}", ips.join(", "))),
            "may specify no more than one IP for each IP family",
        ));
    }
}

/// A pod's endpoints are programmed for its node (`Local` policies), so a
/// bound pod cannot move; re-register it under a new name instead.
fn node_unchanged(errs: &mut FieldErrors, new: &Pod, old: &Pod) {
    let Some(old_node) = non_empty(old.spec.node_name.as_deref()) else {
        return;
    };
    let new_node = new.spec.node_name.as_deref().unwrap_or("");
    if new_node != old_node {
        errs.push(FieldError::invalid("spec.nodeName", new_node, IMMUTABLE));
    }
}

fn spec(errs: &mut FieldErrors, spec: &PodSpec) {
    containers(errs, &spec.containers);
    if let Some(node) = non_empty(spec.node_name.as_deref()) {
        common::invalid_each(errs, "spec.nodeName", node, names::dns1123_subdomain(node));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = non_empty(value.as_deref()) {
            common::invalid_each(errs, &format!("spec.{field}"), v, names::dns1123_label(v));
        }
    }
}

fn containers(errs: &mut FieldErrors, containers: &[Container]) {
    if containers.is_empty() {
        errs.push(FieldError::required("spec.containers"));
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        let name_path = format!("{path}.name");
        if c.name.is_empty() {
            errs.push(FieldError::required(name_path.as_str()));
        } else {
            common::invalid_each(errs, &name_path, &c.name, names::dns1123_label(&c.name));
        }
        ports(errs, &path, &c.ports);
        if !seen.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(name_path, c.name.as_str()));
        }
        if let Some(probe) = &c.readiness_probe {
            readiness_probe(errs, &format!("{path}.readinessProbe"), probe);
        }
    }
}

/// Port names are unique within a container, as in Kubernetes; a Service's
/// named targetPort resolves to the first match across containers.
fn ports(errs: &mut FieldErrors, container_path: &str, ports: &[ContainerPort]) {
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("{container_path}.ports[{i}]");
        if let Some(name) = non_empty(port.name.as_deref()) {
            let name_path = format!("{path}.name");
            let msgs = names::port_name(name);
            if !msgs.is_empty() {
                common::invalid_each(errs, &name_path, name, msgs);
            } else if !seen.insert(name) {
                errs.push(FieldError::duplicate(name_path, name));
            }
        }
        let number_path = format!("{path}.containerPort");
        if port.container_port == 0 {
            errs.push(FieldError::required(number_path));
        } else {
            common::port_number(errs, &number_path, port.container_port);
        }
        common::protocol(errs, &format!("{path}.protocol"), port.protocol.as_deref());
    }
}

fn readiness_probe(errs: &mut FieldErrors, path: &str, probe: &Probe) {
    handler(errs, path, probe);
    let fields = [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (field, value) in fields {
        common::non_negative(errs, &format!("{path}.{field}"), value);
    }
}

/// Exactly one way to probe; the agent supports httpGet and tcpSocket.
fn handler(errs: &mut FieldErrors, path: &str, probe: &Probe) {
    match (&probe.http_get, &probe.tcp_socket) {
        (None, None) => errs.push(FieldError::required_because(
            path,
            "must specify a handler type",
        )),
        (Some(http), None) => http_get(errs, &format!("{path}.httpGet"), http),
        (None, Some(tcp)) => tcp_socket(errs, &format!("{path}.tcpSocket"), tcp),
        (Some(http), Some(_)) => {
            http_get(errs, &format!("{path}.httpGet"), http);
            errs.push(FieldError::forbidden(
                format!("{path}.tcpSocket"),
                "may not specify more than 1 handler type",
            ));
        }
    }
}

fn http_get(errs: &mut FieldErrors, path: &str, action: &HttpGetAction) {
    if non_empty(action.path.as_deref()).is_none() {
        errs.push(FieldError::required(format!("{path}.path")));
    }
    common::port_number_or_name(errs, &format!("{path}.port"), Some(&action.port));
    let scheme = action.scheme.as_deref().unwrap_or("");
    if !SCHEMES.contains(&scheme) {
        errs.push(FieldError::not_supported(
            format!("{path}.scheme"),
            scheme,
            SCHEMES,
        ));
    }
}

fn tcp_socket(errs: &mut FieldErrors, path: &str, action: &TcpSocketAction) {
    common::port_number_or_name(errs, &format!("{path}.port"), Some(&action.port));
}

#[cfg(test)]
mod tests;
