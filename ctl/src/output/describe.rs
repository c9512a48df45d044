//! `swctl describe`: kubectl's `Field:  value` layout, aligned by the same
//! tabwriter settings kubectl's describers use (padding 2, no minimum width).

use std::collections::BTreeMap;
use std::io::Write;

use chrono::DateTime;
use switchyard_api::resources::{
    service_type, Container, Deployment, EndpointSlice, IntOrString, Labels, Node, ObjectMeta, Pod,
    PodSpec, Probe, Service, ServicePort,
};

use super::endpoints::{ready_addresses, slices_of};
use switchyard_api::columns::{
    format_labels, format_selector, node_sync_status, or_none, pod_status, truncated_list,
};

/// kubectl prints annotations longer than this on lines of their own, cut to fit.
const MAX_ANNOTATION_LEN: usize = 140;
/// Written by `kubectl apply`; kubectl's describers hide it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Service as `kubectl describe service` shows it, with the Endpoints of
/// each port drawn from `slices` (all slices of its namespace will do).
pub fn describe_service(svc: &Service, slices: &[EndpointSlice]) -> String {
    let spec = &svc.spec;
    let kind = svc.service_type();
    let mut out = Describe::default();
    out.meta(&svc.metadata);
    out.field(0, "Selector", format_labels(spec.selector.as_ref()));
    out.field(0, "Type", kind);
    out.ip_families(svc);
    out.field(0, "IP", spec.cluster_ip.as_deref().unwrap_or_default());
    out.field(0, "IPs", joined_or_none(&cluster_ips(svc), ","));
    if !spec.external_ips.is_empty() {
        out.field(0, "External IPs", spec.external_ips.join(","));
    }
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|ip| !ip.is_empty()) {
        out.field(0, "Desired LoadBalancer IP", ip);
    }
    if let Some(name) = spec.external_name.as_deref().filter(|n| !n.is_empty()) {
        out.field(0, "External Name", name);
    }
    let ingress = load_balancer_ingress(svc);
    if !ingress.is_empty() {
        out.field(0, "LoadBalancer Ingress", ingress.join(", "));
    }
    let own_slices = slices_of(svc, slices);
    for port in &spec.ports {
        out.service_port(port, &own_slices);
    }
    out.traffic(svc, kind);
    out.field(0, "Events", "<none>");
    out.finish()
}

/// A Pod, in the parts of `kubectl describe pod` that Switchyard has.
pub fn describe_pod(pod: &Pod) -> String {
    let status = &pod.status;
    let mut out = Describe::default();
    out.meta_named(&pod.metadata, false);
    out.field(0, "Node", or_none(pod.spec.node_name.as_deref()));
    out.labels_and_annotations(&pod.metadata);
    out.field(0, "Status", pod_status(pod));
    out.field(0, "IP", status.pod_ip.as_deref().unwrap_or_default());
    let ips = pod.ips();
    if ips.is_empty() {
        out.field(0, "IPs", "<none>");
    } else {
        out.line(0, "IPs:");
        for ip in ips {
            out.field(1, "IP", ip);
        }
    }
    out.containers(&pod.spec.containers, 0);
    out.conditions(pod);
    out.field(0, "Events", "<none>");
    out.finish()
}

/// A Node, in the parts of `kubectl describe node` that Switchyard has,
/// plus its agent's sync state.
pub fn describe_node(node: &Node) -> String {
    let status = &node.status;
    let mut out = Describe::default();
    out.field(0, "Name", &node.metadata.name);
    out.labels_and_annotations(&node.metadata);
    out.field(0, "CreationTimestamp", created(&node.metadata));
    match status.conditions.is_empty() {
        true => out.field(0, "Conditions", "<none>"),
        false => {
            out.line(0, "Conditions:");
            out.line(
                1,
                "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
            );
            out.line(
                1,
                "----\t------\t-----------------\t------------------\t------\t-------",
            );
            for c in &status.conditions {
                let cells = [
                    c.type_.clone(),
                    c.status.clone(),
                    timestamp(c.last_heartbeat_time.as_deref()),
                    timestamp(c.last_transition_time.as_deref()),
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                ];
                out.line(1, &cells.join(" \t"));
            }
        }
    }
    out.line(0, "Addresses:");
    for a in &status.addresses {
        out.field(1, &a.type_, &a.address);
    }
    out.field(0, "PodCIDR", or_none(node.spec.pod_cidr.as_deref()));
    out.field(0, "Agent Version", or_none(status.agent_version.as_deref()));
    out.field(0, "Sync", node_sync_status(node));
    let applied = status.applied_version.map(|v| v.to_string());
    out.field(0, "Applied Version", or_none(applied.as_deref()));
    out.field(0, "Events", "<none>");
    out.finish()
}

/// A Deployment, in the parts of `kubectl describe deployment` that Switchyard has.
pub fn describe_deployment(deploy: &Deployment) -> String {
    let mut out = Describe::default();
    out.meta_named(&deploy.metadata, false);
    out.field(0, "CreationTimestamp", created(&deploy.metadata));
    out.labels_and_annotations(&deploy.metadata);
    out.field(0, "Selector", format_selector(&deploy.spec.selector));
    out.field(0, "Replicas", replicas_summary(deploy));
    out.line(0, "Pod Template:");
    let template = &deploy.spec.template;
    out.multiline(1, "Labels", label_lines(&template.metadata.labels));
    // The template's spec is kept as written; show its containers when it decodes.
    let spec: PodSpec = serde_json::from_value(template.spec.clone()).unwrap_or_default();
    out.containers(&spec.containers, 1);
    out.field(0, "Events", "<none>");
    out.finish()
}

fn replicas_summary(deploy: &Deployment) -> String {
    let status = &deploy.status;
    let desired = deploy.replicas();
    let unavailable = (desired - status.available_replicas).max(0);
    format!(
        "{desired} desired | {} updated | {} total | {} available | {unavailable} unavailable",
        status.replicas, status.replicas, status.available_replicas
    )
}

/// RFC 1123 with numeric zone, as kubectl prints timestamps in describe.
fn created(meta: &ObjectMeta) -> String {
    timestamp(meta.creation_timestamp.as_deref())
}

fn timestamp(text: Option<&str>) -> String {
    text.and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map_or_else(
            || "<unknown>".to_string(),
            |t| t.format("%a, %d %b %Y %H:%M:%S %z").to_string(),
        )
}

fn cluster_ips(svc: &Service) -> Vec<String> {
    if svc.spec.cluster_ips.is_empty() {
        svc.spec
            .cluster_ip
            .iter()
            .filter(|ip| !ip.is_empty())
            .cloned()
            .collect()
    } else {
        svc.spec.cluster_ips.clone()
    }
}

fn load_balancer_ingress(svc: &Service) -> Vec<String> {
    let ingress = svc.status.load_balancer.iter().flat_map(|lb| &lb.ingress);
    ingress
        .map(|i| {
            i.ip.clone()
                .filter(|ip| !ip.is_empty())
                .or_else(|| i.hostname.clone())
        })
        .map(Option::unwrap_or_default)
        .collect()
}

fn joined_or_none(items: &[String], separator: &str) -> String {
    if items.is_empty() {
        "<none>".to_string()
    } else {
        items.join(separator)
    }
}

fn label_lines(labels: &Labels) -> Vec<String> {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// `key: value`, or for long and multi-line values the key then each line, shortened.
fn annotation_lines(annotations: &BTreeMap<String, String>) -> Vec<String> {
    let mut lines = Vec::new();
    for (key, value) in annotations.iter().filter(|(key, _)| *key != LAST_APPLIED) {
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            lines.push(format!("{key}:"));
            lines.extend(
                value
                    .split('\n')
                    .map(|l| shorten(l, MAX_ANNOTATION_LEN - 2)),
            );
        } else {
            lines.push(format!("{key}: {value}"));
        }
    }
    lines
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        format!("{}...", text.chars().take(max).collect::<String>())
    } else {
        text.to_string()
    }
}

/// kubectl's probe summary, with Kubernetes' defaults for unset fields.
fn describe_probe(probe: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        probe.initial_delay_seconds.unwrap_or(0),
        probe.timeout_seconds.unwrap_or(1),
        probe.period_seconds.unwrap_or(10),
        probe.success_threshold.unwrap_or(1),
        probe.failure_threshold.unwrap_or(3),
    );
    if let Some(http) = &probe.http_get {
        let scheme = http
            .scheme
            .as_deref()
            .unwrap_or("HTTP")
            .to_ascii_lowercase();
        let path = http.path.as_deref().unwrap_or_default();
        return format!("http-get {scheme}://:{}{path} {attrs}", http.port);
    }
    if let Some(tcp) = &probe.tcp_socket {
        return format!("tcp-socket :{} {attrs}", tcp.port);
    }
    format!("unknown {attrs}")
}

/// Describe text under construction: `\t` separates label from value, and
/// [`Describe::finish`] aligns it.
#[derive(Default)]
struct Describe {
    text: String,
}

impl Describe {
    fn line(&mut self, level: usize, text: &str) {
        self.text.push_str(&"  ".repeat(level));
        self.text.push_str(text);
        self.text.push('\n');
    }

    fn field(&mut self, level: usize, label: &str, value: impl std::fmt::Display) {
        self.line(level, &format!("{label}:\t{value}"));
    }

    /// `Title:  first` then `       second`… under it, or `<none>`.
    fn multiline(&mut self, level: usize, title: &str, lines: Vec<String>) {
        let mut lines = lines.into_iter();
        let first = lines.next().unwrap_or_else(|| "<none>".to_string());
        self.field(level, title, first);
        for line in lines {
            self.line(level, &format!("\t{line}"));
        }
    }

    fn meta(&mut self, meta: &ObjectMeta) {
        self.meta_named(meta, true);
    }

    fn meta_named(&mut self, meta: &ObjectMeta, with_labels: bool) {
        self.field(0, "Name", &meta.name);
        self.field(
            0,
            "Namespace",
            meta.namespace.as_deref().unwrap_or_default(),
        );
        if with_labels {
            self.labels_and_annotations(meta);
        }
    }

    fn labels_and_annotations(&mut self, meta: &ObjectMeta) {
        self.multiline(0, "Labels", label_lines(&meta.labels));
        self.multiline(0, "Annotations", annotation_lines(&meta.annotations));
    }

    /// The family fields as the server recorded them (kubectl prints the
    /// policy only when set, and `<none>` for no families, as for an
    /// ExternalName Service).
    fn ip_families(&mut self, svc: &Service) {
        let kept = &svc.spec.kept;
        if let Some(policy) = kept.get("ipFamilyPolicy").and_then(|p| p.as_str()) {
            self.field(0, "IP Family Policy", policy);
        }
        self.field(
            0,
            "IP Families",
            joined_or_none(&svc.ip_family_names(), ","),
        );
    }

    fn service_port(&mut self, port: &ServicePort, slices: &[&EndpointSlice]) {
        let protocol = port.protocol();
        let name = port.name.as_deref().unwrap_or_default();
        let shown = if name.is_empty() { "<unset>" } else { name };
        self.field(0, "Port", format!("{shown}\t{}/{protocol}", port.port));
        let target = port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port));
        self.field(0, "TargetPort", format!("{target}/{protocol}"));
        if let Some(node_port) = port.node_port.filter(|p| *p > 0) {
            self.field(0, "NodePort", format!("{shown}\t{node_port}/{protocol}"));
        }
        let endpoints = if slices.is_empty() {
            "<none>".to_string()
        } else {
            let addresses = ready_addresses(slices, Some(name));
            truncated_list(addresses.into_iter()).unwrap_or_default()
        };
        self.field(0, "Endpoints", endpoints);
    }

    /// Affinity and traffic policies, with Kubernetes' defaults where unset.
    fn traffic(&mut self, svc: &Service, kind: &str) {
        let spec = &svc.spec;
        let affinity = spec.session_affinity.as_deref().unwrap_or("None");
        self.field(0, "Session Affinity", affinity);
        let external = spec
            .external_traffic_policy
            .as_deref()
            .or(svc.has_node_ports().then_some("Cluster"));
        if let Some(policy) = external {
            self.field(0, "External Traffic Policy", policy);
        }
        let internal = spec
            .internal_traffic_policy
            .as_deref()
            .or((kind != service_type::EXTERNAL_NAME).then_some("Cluster"));
        if let Some(policy) = internal {
            self.field(0, "Internal Traffic Policy", policy);
        }
        if let Some(port) = spec.health_check_node_port.filter(|p| *p > 0) {
            self.field(0, "HealthCheck NodePort", port);
        }
        if !spec.load_balancer_source_ranges.is_empty() {
            let ranges = spec.load_balancer_source_ranges.join(",");
            self.field(0, "LoadBalancer Source Ranges", ranges);
        }
    }

    /// `level` 0 for a pod, 1 inside a pod template.
    fn containers(&mut self, containers: &[Container], level: usize) {
        if containers.is_empty() {
            self.field(level, "Containers", "<none>");
            return;
        }
        self.line(level, "Containers:");
        for container in containers {
            self.line(level + 1, &format!("{}:", container.name));
            let image = container.image.as_deref().unwrap_or_default();
            self.field(level + 2, "Image", image);
            self.container_ports(container, level + 2);
            if let Some(probe) = &container.readiness_probe {
                self.field(level + 2, "Readiness", describe_probe(probe));
            }
        }
    }

    fn container_ports(&mut self, container: &Container, level: usize) {
        let ports: Vec<String> = container
            .ports
            .iter()
            .map(|p| match p.name.as_deref() {
                Some(name) => format!("{}/{} ({name})", p.container_port, p.protocol()),
                None => format!("{}/{}", p.container_port, p.protocol()),
            })
            .collect();
        match ports.len() {
            0 => self.field(level, "Port", "<none>"),
            1 => self.field(level, "Port", &ports[0]),
            _ => self.field(level, "Ports", ports.join(", ")),
        }
    }

    fn conditions(&mut self, pod: &Pod) {
        let conditions = &pod.status.conditions;
        if conditions.is_empty() {
            return;
        }
        self.line(0, "Conditions:");
        self.line(1, "Type\tStatus");
        for condition in conditions {
            self.line(1, &format!("{} \t{} ", condition.type_, condition.status));
        }
    }

    /// Aligns the text the way kubectl's describers do.
    fn finish(self) -> String {
        let mut writer = tabwriter::TabWriter::new(Vec::new()).minwidth(0).padding(2);
        if writer.write_all(self.text.as_bytes()).is_err() || writer.flush().is_err() {
            // Writing to memory cannot fail; should it, unaligned text still reads.
            return self.text;
        }
        match writer.into_inner().map(String::from_utf8) {
            Ok(Ok(text)) => text,
            _ => self.text,
        }
    }
}
