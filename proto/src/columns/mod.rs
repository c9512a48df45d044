//! What each kind shows in a table (`swctl get`, and the REST API's
//! server-side Table that kubectl prints): kubectl's columns and cell formats,
//! so output can be read (and scripted against) like a cluster's.

use crate::resources::{
    service_type, BootstrapToken, Deployment, EndpointSlice, Kind, LabelSelector, Labels,
    Namespace, Node, Object, Pod, Service, User,
};
use chrono::{DateTime, Utc};

pub mod age;

use age::age;

/// kubectl cuts load-balancer addresses to this width unless `-o wide`.
const LOAD_BALANCER_WIDTH: usize = 16;
/// kubectl lists this many items in a cell before `+ N more...`.
const LIST_MAX: usize = 3;

/// Column titles after NAME (which every kind has).
pub fn header(kind: Kind, wide: bool) -> Vec<&'static str> {
    let (mut columns, wide_columns): (Vec<&str>, &[&str]) = match kind {
        Kind::Service => (
            vec!["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
            &["SELECTOR"],
        ),
        Kind::Pod => (vec!["READY", "STATUS", "RESTARTS", "AGE"], &["IP", "NODE"]),
        Kind::Deployment => (
            vec!["READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["SELECTOR"],
        ),
        Kind::EndpointSlice => (vec!["ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], &[]),
        Kind::Namespace => (vec!["STATUS", "AGE"], &[]),
        Kind::Node => (vec!["STATUS", "SYNC", "ADDRESSES", "VERSION", "AGE"], &[]),
        Kind::User => (vec!["ROLE", "EXPIRES", "AGE"], &[]),
        Kind::BootstrapToken => (vec!["NODE", "EXPIRES", "USES"], &[]),
    };
    if wide {
        columns.extend_from_slice(wide_columns);
    }
    columns
}

/// Titles of the control planes' table (`get controlplanes`).
pub const CONTROL_PLANE_HEADER: [&str; 6] =
    ["NAME", "ADDRESS", "LEADER", "REVISION", "AGENTS", "AGE"];

/// One control plane's cells under [`CONTROL_PLANE_HEADER`].
pub fn control_plane_cells(cp: &crate::v1::ControlPlane, now: DateTime<Utc>) -> Vec<String> {
    vec![
        cp.name.clone(),
        cp.address.clone(),
        cp.leader.to_string(),
        cp.revision.to_string(),
        cp.agents.to_string(),
        age(Some(&cp.started), now),
    ]
}

/// The first column's title: tokens are named by their id, as kubeadm lists them.
pub fn name_title(kind: Kind) -> &'static str {
    match kind {
        Kind::BootstrapToken => "ID",
        _ => "NAME",
    }
}

/// Cells after NAME, matching [`header`].
pub fn cells(object: &Object, wide: bool, now: DateTime<Utc>) -> Vec<String> {
    let created = object.meta().creation_timestamp.as_deref();
    let mut cells = match object {
        Object::Service(svc) => service_cells(svc, wide),
        Object::Pod(pod) => pod_cells(pod),
        Object::Deployment(deploy) => deployment_cells(deploy),
        Object::EndpointSlice(slice) => endpoint_slice_cells(slice),
        Object::Namespace(ns) => namespace_cells(ns),
        Object::Node(node) => node_cells(node),
        Object::User(user) => user_cells(user),
        Object::BootstrapToken(token) => token_cells(token),
    };
    if object.kind() != Kind::BootstrapToken {
        cells.push(age(created, now));
    }
    if wide {
        cells.extend(wide_cells(object));
    }
    cells
}

fn wide_cells(object: &Object) -> Vec<String> {
    match object {
        Object::Service(svc) => vec![format_labels(svc.spec.selector.as_ref())],
        Object::Pod(pod) => vec![
            or_none(pod.status.pod_ip.as_deref()),
            or_none(pod.spec.node_name.as_deref()),
        ],
        Object::Deployment(deploy) => vec![format_selector(&deploy.spec.selector)],
        Object::EndpointSlice(_)
        | Object::Namespace(_)
        | Object::Node(_)
        | Object::User(_)
        | Object::BootstrapToken(_) => Vec::new(),
    }
}

fn user_cells(user: &User) -> Vec<String> {
    let expires = user
        .status
        .certificate
        .as_ref()
        .map(|c| c.not_after.as_str());
    vec![or_none(Some(user.spec.role.as_str())), or_none(expires)]
}

fn token_cells(token: &BootstrapToken) -> Vec<String> {
    vec![
        or_none(token.spec.node_name.as_deref()),
        or_none(Some(token.spec.expires.as_str())),
        token.status.uses.to_string(),
    ]
}

fn service_cells(svc: &Service, wide: bool) -> Vec<String> {
    let ports = port_string(svc);
    vec![
        svc.service_type().to_string(),
        cluster_ip(svc),
        external_ip(svc, wide),
        if ports.is_empty() { none() } else { ports },
    ]
}

/// The first cluster IP: `None` for headless services, `<none>` for ExternalName.
fn cluster_ip(svc: &Service) -> String {
    let ip = svc
        .spec
        .cluster_ips
        .first()
        .or(svc.spec.cluster_ip.as_ref());
    or_none(ip.map(String::as_str))
}

/// kubectl's `getServiceExternalIP`.
fn external_ip(svc: &Service, wide: bool) -> String {
    let external = &svc.spec.external_ips;
    match svc.service_type() {
        service_type::CLUSTER_IP | service_type::NODE_PORT if external.is_empty() => none(),
        service_type::CLUSTER_IP | service_type::NODE_PORT => external.join(","),
        service_type::LOAD_BALANCER => {
            let mut addresses = load_balancer_addresses(svc, wide);
            addresses.extend(external.iter().cloned());
            if addresses.is_empty() {
                "<pending>".to_string()
            } else {
                addresses.join(",")
            }
        }
        service_type::EXTERNAL_NAME => svc.spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".to_string(),
    }
}

/// Ingress IPs (or hostnames), sorted and deduplicated, cut short unless wide.
fn load_balancer_addresses(svc: &Service, wide: bool) -> Vec<String> {
    let ingress = svc.status.load_balancer.iter().flat_map(|lb| &lb.ingress);
    let mut addresses: Vec<&str> = ingress
        .filter_map(|i| {
            i.ip.as_deref()
                .filter(|ip| !ip.is_empty())
                .or(i.hostname.as_deref())
        })
        .filter(|address| !address.is_empty())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let joined = addresses.join(",");
    if joined.is_empty() {
        return Vec::new();
    }
    if !wide && joined.len() > LOAD_BALANCER_WIDTH {
        // Cut on characters: addresses are ASCII, but never split a char anyway.
        let cut: String = joined.chars().take(LOAD_BALANCER_WIDTH - 3).collect();
        return vec![format!("{cut}...")];
    }
    vec![joined]
}

/// `80/TCP`, `80:32233/TCP` with a node port; comma-joined.
pub fn port_string(svc: &Service) -> String {
    svc.spec
        .ports
        .iter()
        .map(|p| match p.node_port.filter(|port| *port > 0) {
            Some(node_port) => format!("{}:{}/{}", p.port, node_port, p.protocol()),
            None => format!("{}/{}", p.port, p.protocol()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn pod_cells(pod: &Pod) -> Vec<String> {
    let ready = if pod.is_ready() { "1/1" } else { "0/1" };
    vec![ready.to_string(), pod_status(pod), "0".to_string()]
}

/// The phase, else `Running` once the pod has an IP (registrants may omit the phase).
pub fn pod_status(pod: &Pod) -> String {
    let status = &pod.status;
    match (&status.phase, &status.pod_ip) {
        (Some(phase), _) if !phase.is_empty() => phase.clone(),
        (_, Some(ip)) if !ip.is_empty() => "Running".to_string(),
        _ => "Pending".to_string(),
    }
}

fn deployment_cells(deploy: &Deployment) -> Vec<String> {
    let status = &deploy.status;
    vec![
        format!("{}/{}", status.ready_replicas, deploy.replicas()),
        status.replicas.to_string(),
        status.available_replicas.to_string(),
    ]
}

fn endpoint_slice_cells(slice: &EndpointSlice) -> Vec<String> {
    let ports = slice
        .ports
        .iter()
        .map(|port| match (port.port, &port.name) {
            (Some(number), _) => number.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "*".to_string(),
        });
    let addresses = slice
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().cloned());
    vec![
        slice.address_type.clone(),
        truncated_list(ports).unwrap_or_else(unset),
        truncated_list(addresses).unwrap_or_else(unset),
    ]
}

fn namespace_cells(ns: &Namespace) -> Vec<String> {
    let phase = ns.status.phase.as_deref().filter(|p| !p.is_empty());
    vec![phase.unwrap_or("Active").to_string()]
}

fn node_cells(node: &Node) -> Vec<String> {
    let status = &node.status;
    let addresses: Vec<&str> = status
        .addresses
        .iter()
        .map(|a| a.address.as_str())
        .collect();
    let version = status.applied_version.map(|v| v.to_string());
    vec![
        node_ready_status(node).to_string(),
        node_sync_status(node),
        or_none(Some(addresses.join(",").as_str())),
        version.unwrap_or_else(none),
    ]
}

/// kubectl's STATUS of a node: its Ready condition.
fn node_ready_status(node: &Node) -> &'static str {
    match node.is_ready() {
        Some(true) => "Ready",
        Some(false) => "NotReady",
        None => "Unknown",
    }
}

/// The sync state, with the agent's error when it rejected the last snapshot.
pub fn node_sync_status(node: &Node) -> String {
    let status = &node.status;
    let state = status.sync_state.as_deref().unwrap_or("Unknown");
    match status.last_error.as_deref() {
        Some(error) if state == "NACKED" && !error.is_empty() => format!("{state}: {error}"),
        _ => state.to_string(),
    }
}

/// kubectl's "first three, then `+ N more...`"; `None` for an empty list.
pub fn truncated_list(items: impl Iterator<Item = String>) -> Option<String> {
    let mut shown = Vec::new();
    let mut count = 0;
    for item in items {
        if shown.len() < LIST_MAX {
            shown.push(item);
        }
        count += 1;
    }
    let joined = shown.join(",");
    match count {
        0 => None,
        n if n > LIST_MAX => Some(format!("{joined} + {} more...", n - LIST_MAX)),
        _ => Some(joined),
    }
}

/// `app=web,tier=front` (sorted), or `<none>`: kubectl's `labels.FormatLabels`.
pub fn format_labels(labels: Option<&Labels>) -> String {
    let pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if pairs.is_empty() {
        none()
    } else {
        pairs.join(",")
    }
}

/// A label selector as kubectl prints it: requirements sorted by key, `<none>` when empty.
pub fn format_selector(selector: &LabelSelector) -> String {
    let mut requirements: Vec<(&str, String)> = selector
        .match_labels
        .iter()
        .map(|(key, value)| (key.as_str(), format!("{key}={value}")))
        .collect();
    for expr in &selector.match_expressions {
        let mut values = expr.values.clone();
        values.sort();
        let values = values.join(",");
        let key = &expr.key;
        let text = match expr.operator.as_str() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({values})"),
        };
        requirements.push((key.as_str(), text));
    }
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    let texts: Vec<String> = requirements.into_iter().map(|(_, text)| text).collect();
    if texts.is_empty() {
        none()
    } else {
        texts.join(",")
    }
}

pub fn none() -> String {
    "<none>".to_string()
}

fn unset() -> String {
    "<unset>".to_string()
}

/// The text, or `<none>` when missing or empty.
pub fn or_none(text: Option<&str>) -> String {
    text.filter(|t| !t.is_empty())
        .map_or_else(none, str::to_string)
}
