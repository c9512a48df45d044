//! Service validation, after `ValidateService`/`ValidateServiceUpdate` in
//! k8s.io/kubernetes pkg/apis/core/validation, plus the range checks the
//! Kubernetes allocators make (ClusterIP in the service CIDR, NodePorts in
//! the node-port range), since Switchyard validates before allocating.
//!
//! Errors about an allocated ClusterIP changing are reported at
//! `spec.clusterIPs[0]` with the new list as Go prints it, word for word as
//! kube-apiserver 1.32 reports them, so kubectl users see the same text.

use std::collections::BTreeSet;
use std::net::IpAddr;

use switchyard_api::resources::{service_type, Service, ServicePort, ServiceSpec};

use super::common::{self, non_empty, Scope};
use super::field::{FieldError, FieldErrors};
use super::{golang, names, Config};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const MAX_AFFINITY_TIMEOUT: i32 = 86400;
const ONLY_LOAD_BALANCER: &str = "may only be used when `type` is 'LoadBalancer'";

pub(super) fn validate(svc: &Service, old: Option<&Service>, cfg: &Config) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if let Some(old) = old {
        addresses_kept(&mut errs, svc, old);
        health_check_node_port_unchanged(&mut errs, svc, old);
    }
    common::object_meta(
        &mut errs,
        &svc.metadata,
        Scope::Namespaced,
        names::dns1035_label,
    );
    let spec = &svc.spec;
    let ty = spec.type_.as_deref().unwrap_or("");
    if spec.ports.is_empty() && !svc.is_headless() && ty != service_type::EXTERNAL_NAME {
        errs.push(FieldError::required("spec.ports"));
    }
    type_specific(&mut errs, svc, ty);
    ports(&mut errs, &spec.ports);
    if let Some(selector) = &spec.selector {
        common::labels(&mut errs, "spec.selector", selector);
    }
    session_affinity(&mut errs, spec);
    if ty != service_type::EXTERNAL_NAME {
        cluster_ip(&mut errs, spec);
    }
    external_ips(&mut errs, &spec.external_ips);
    service_type(&mut errs, ty);
    node_ports(&mut errs, &spec.ports, ty, cfg);
    duplicate_ports(&mut errs, &spec.ports);
    load_balancer_fields(&mut errs, spec, ty);
    external_traffic_policy(&mut errs, svc, cfg);
    internal_traffic_policy(&mut errs, spec, ty);
    traffic_distribution(&mut errs, spec);
    errs
}

fn traffic_distribution(errs: &mut FieldErrors, spec: &ServiceSpec) {
    use switchyard_api::resources::traffic_distribution::ALL;
    if let Some(value) = spec.traffic_distribution.as_deref() {
        if !ALL.contains(&value) {
            errs.push(FieldError::not_supported(
                "spec.trafficDistribution",
                value,
                ALL,
            ));
        }
    }
}

/// What an update may do to the addresses: add a secondary cluster IP and
/// family, or drop them (the family rules ask for `SingleStack` then);
/// never change one that is set, nor drop the primary. Moving to or from
/// ExternalName releases them all instead. kube-apiserver's words, as in
/// its `validateUpgradeDowngradeClusterIPs` and `…IPFamilies`.
fn addresses_kept(errs: &mut FieldErrors, new: &Service, old: &Service) {
    let external = service_type::EXTERNAL_NAME;
    if new.service_type() == external || old.service_type() == external {
        return;
    }
    if !(new.is_headless() && old.is_headless()) {
        let (old_ips, new_ips) = (&old.spec.cluster_ips, &new.spec.cluster_ips);
        let value = || golang::value(golang::string_slice(new_ips));
        let changed = |i: usize| old_ips.get(i).is_some_and(|o| new_ips.get(i) != Some(o));
        if new_ips.is_empty() && !old_ips.is_empty() {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                value(),
                "primary clusterIP can not be unset",
            ));
        }
        let compared = match old_ips.len() == new_ips.len() {
            true => old_ips.len(),
            false => new_ips.len().min(1),
        };
        for i in (0..compared).filter(|i| changed(*i)) {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                value(),
                "may not change once set",
            ));
        }
    }
    if new.is_headless() || old.is_headless() {
        return;
    }
    let (old_families, new_families) = (old.ip_family_names(), new.ip_family_names());
    if old_families.len() == new_families.len() {
        if old_families != new_families {
            errs.push(FieldError::invalid(
                "spec.ipFamilies[0]",
                golang::value(golang::typed_slice("core.IPFamily", &new_families)),
                "may not change once set",
            ));
        }
    } else if new_families.is_empty() {
        errs.push(FieldError::invalid(
            "spec.ipFamilies[0]",
            golang::value(golang::typed_slice("core.IPFamily", &new_families)),
            "primary ipFamily can not be unset",
        ));
    } else if old_families
        .first()
        .is_some_and(|f| Some(f) != new_families.first())
    {
        errs.push(FieldError::invalid(
            "spec.ipFamilies[0]",
            golang::value(golang::string_slice(&new.spec.cluster_ips)),
            "may not change once set",
        ));
    }
}

/// Cloud load balancers are configured with the health check port: it
/// stays while the Service needs one (Kubernetes' own words).
fn health_check_node_port_unchanged(errs: &mut FieldErrors, new: &Service, old: &Service) {
    let (Some(old_port), Some(new_port)) = (
        old.spec.health_check_node_port,
        new.spec.health_check_node_port,
    ) else {
        return;
    };
    if old.needs_health_check() && new.needs_health_check() && old_port != new_port {
        errs.push(FieldError::invalid(
            "spec.healthCheckNodePort",
            new_port,
            "cannot change healthCheckNodePort on loadBalancer service with externalTraffic=Local during update",
        ));
    }
}

fn type_specific(errs: &mut FieldErrors, svc: &Service, ty: &str) {
    match ty {
        service_type::NODE_PORT | service_type::LOAD_BALANCER if svc.is_headless() => {
            errs.push(FieldError::invalid(
                "spec.clusterIP",
                "None",
                format!("may not be set to 'None' for {ty} services"),
            ));
        }
        service_type::EXTERNAL_NAME => external_name(errs, &svc.spec),
        _ => {}
    }
}

fn external_name(errs: &mut FieldErrors, spec: &ServiceSpec) {
    const NOT_FOR_EXTERNAL_NAME: &str = "may not be set for ExternalName services";
    if non_empty(spec.cluster_ip.as_deref()).is_some() {
        errs.push(FieldError::forbidden(
            "spec.clusterIP",
            NOT_FOR_EXTERNAL_NAME,
        ));
    }
    if !spec.cluster_ips.is_empty() {
        errs.push(FieldError::forbidden(
            "spec.clusterIPs",
            NOT_FOR_EXTERNAL_NAME,
        ));
    }
    if spec
        .kept
        .get("ipFamilies")
        .is_some_and(|f| f.as_array().is_some_and(|a| !a.is_empty()))
    {
        errs.push(FieldError::forbidden(
            "spec.ipFamilies",
            NOT_FOR_EXTERNAL_NAME,
        ));
    }
    if spec
        .kept
        .get("ipFamilyPolicy")
        .is_some_and(|p| !p.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.ipFamilyPolicy",
            NOT_FOR_EXTERNAL_NAME,
        ));
    }
    // A trailing dot marks the CNAME target as fully qualified.
    let name = spec.external_name.as_deref().unwrap_or("");
    let cname = name.strip_suffix('.').unwrap_or(name);
    if cname.is_empty() {
        errs.push(FieldError::required("spec.externalName"));
    } else {
        let msgs = names::dns1123_subdomain(cname);
        common::invalid_each(errs, "spec.externalName", cname, msgs);
    }
}

fn ports(errs: &mut FieldErrors, ports: &[ServicePort]) {
    let mut seen_names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let name = port.name.as_deref().unwrap_or("");
        if name.is_empty() && ports.len() > 1 {
            errs.push(FieldError::required(format!("{path}.name")));
        } else if !name.is_empty() {
            common::invalid_each(
                errs,
                &format!("{path}.name"),
                name,
                names::dns1123_label(name),
            );
            if !seen_names.insert(name) {
                errs.push(FieldError::duplicate(format!("{path}.name"), name));
            }
        }
        common::port_number(errs, &format!("{path}.port"), port.port);
        common::protocol(errs, &format!("{path}.protocol"), port.protocol.as_deref());
        common::port_number_or_name(
            errs,
            &format!("{path}.targetPort"),
            port.target_port.as_ref(),
        );
        if let Some(app) = &port.app_protocol {
            let msgs = names::qualified_name(app);
            common::invalid_each(errs, &format!("{path}.appProtocol"), app, msgs);
        }
    }
}

fn session_affinity(errs: &mut FieldErrors, spec: &ServiceSpec) {
    let path = "spec.sessionAffinity";
    match spec.session_affinity.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(path)),
        "ClientIP" => client_ip_timeout(errs, spec),
        "None" => {
            if spec.session_affinity_config.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(path, other, AFFINITIES)),
    }
}

fn client_ip_timeout(errs: &mut FieldErrors, spec: &ServiceSpec) {
    const WHEN: &str = "when session affinity type is ClientIP";
    let path = "spec.sessionAffinityConfig";
    let Some(config) = &spec.session_affinity_config else {
        errs.push(FieldError::required_because(path, WHEN));
        return;
    };
    let Some(client_ip) = &config.client_ip else {
        errs.push(FieldError::required_because(
            format!("{path}.clientIP"),
            WHEN,
        ));
        return;
    };
    let path = format!("{path}.clientIP.timeoutSeconds");
    match client_ip.timeout_seconds {
        None => errs.push(FieldError::required_because(path, WHEN)),
        Some(t) if t <= 0 || t > MAX_AFFINITY_TIMEOUT => errs.push(FieldError::invalid(
            path,
            t,
            format!("must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}"),
        )),
        Some(_) => {}
    }
}

/// Empty means "allocate one"; "None" means headless; anything else must be
/// an address (whether it is in the service range is the allocator's to
/// say, as in Kubernetes).
fn cluster_ip(errs: &mut FieldErrors, spec: &ServiceSpec) {
    let requested = non_empty(spec.cluster_ip.as_deref());
    if let Some(value) = requested.filter(|v| *v != "None") {
        common::ip(errs, "spec.clusterIP", value);
    }
    cluster_ips(errs, &spec.cluster_ips, requested);
}

/// `clusterIPs` starts with `clusterIP`.
fn cluster_ips(errs: &mut FieldErrors, ips: &[String], primary: Option<&str>) {
    let path = "spec.clusterIPs";
    match (ips.first(), primary) {
        (None, _) => return,
        (Some(_), None) => errs.push(FieldError::invalid(
            path,
            golang::value(golang::string_slice(ips)),
            "must be empty when `clusterIP` is not specified",
        )),
        (Some(first), Some(primary)) if first != primary => errs.push(FieldError::invalid(
            path,
            golang::value(golang::string_slice(ips)),
            "first value must match `clusterIP`",
        )),
        _ => {}
    }
    for (i, ip) in ips
        .iter()
        .enumerate()
        .filter(|(i, ip)| *i > 0 || ip.as_str() != "None")
    {
        common::ip(errs, &format!("{path}[{i}]"), ip);
    }
}

fn external_ips(errs: &mut FieldErrors, ips: &[String]) {
    for (i, value) in ips.iter().enumerate() {
        let path = format!("spec.externalIPs[{i}]");
        if let Some(ip) = common::ipv4(errs, &path, value) {
            common::non_special_ip(errs, &path, value, IpAddr::V4(ip));
        }
    }
}

fn service_type(errs: &mut FieldErrors, ty: &str) {
    if ty.is_empty() {
        errs.push(FieldError::required("spec.type"));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("spec.type", ty, TYPES));
    }
}

/// NodePorts exist only on NodePort and LoadBalancer Services, inside the
/// configured range, and once per protocol.
fn node_ports(errs: &mut FieldErrors, ports: &[ServicePort], ty: &str, cfg: &Config) {
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let Some(np) = port.node_port.filter(|np| *np != 0) else {
            continue;
        };
        let path = format!("spec.ports[{i}].nodePort");
        match ty {
            service_type::CLUSTER_IP | service_type::EXTERNAL_NAME => {
                errs.push(FieldError::forbidden(
                    path.as_str(),
                    format!("may not be used when `type` is '{ty}'"),
                ));
            }
            service_type::NODE_PORT | service_type::LOAD_BALANCER => {
                node_port_in_range(errs, &path, np, cfg);
            }
            _ => {}
        }
        if !seen.insert((port.protocol(), np)) {
            errs.push(FieldError::duplicate(path, np));
        }
    }
}

fn node_port_in_range(errs: &mut FieldErrors, path: &str, port: i32, cfg: &Config) {
    let range = &cfg.node_port_range;
    if !u16::try_from(port).is_ok_and(|p| range.contains(&p)) {
        errs.push(FieldError::invalid(
            path,
            port,
            format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                range.start(),
                range.end()
            ),
        ));
    }
}

fn duplicate_ports(errs: &mut FieldErrors, ports: &[ServicePort]) {
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("");
        if !seen.insert((protocol, port.port)) {
            let key = golang::service_port_key(protocol, port.port);
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                golang::value(key),
            ));
        }
    }
}

fn load_balancer_fields(errs: &mut FieldErrors, spec: &ServiceSpec, ty: &str) {
    let is_lb = ty == service_type::LOAD_BALANCER;
    if !spec.load_balancer_source_ranges.is_empty() {
        // Kubernetes spells this path with a capital L.
        let path = "spec.LoadBalancerSourceRanges";
        if !is_lb {
            errs.push(FieldError::forbidden(path, ONLY_LOAD_BALANCER));
        }
        for (i, range) in spec.load_balancer_source_ranges.iter().enumerate() {
            common::cidr(errs, &format!("{path}[{i}]"), range.trim());
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && !is_lb {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            ONLY_LOAD_BALANCER,
        ));
    }
    if let Some(ip) = non_empty(spec.load_balancer_ip.as_deref()) {
        let path = "spec.loadBalancerIP";
        if !is_lb {
            errs.push(FieldError::forbidden(path, ONLY_LOAD_BALANCER));
        }
        if let Some(v4) = common::ipv4(errs, path, ip) {
            common::non_special_ip(errs, path, ip, IpAddr::V4(v4));
        }
    }
}

fn external_traffic_policy(errs: &mut FieldErrors, svc: &Service, cfg: &Config) {
    let path = "spec.externalTrafficPolicy";
    let spec = &svc.spec;
    let policy = spec.external_traffic_policy.as_deref().unwrap_or("");
    if !svc.is_externally_accessible() {
        if !policy.is_empty() {
            errs.push(FieldError::invalid(
                path,
                policy,
                "may only be set for externally-accessible services",
            ));
        }
    } else if policy.is_empty() {
        errs.push(FieldError::required(path));
    } else if !TRAFFIC_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(path, policy, TRAFFIC_POLICIES));
    }
    health_check_node_port(errs, svc, cfg);
}

/// Allocated by the allocator when needed; a given one must fit the
/// policy and the node-port range it is allocated from.
fn health_check_node_port(errs: &mut FieldErrors, svc: &Service, cfg: &Config) {
    let Some(port) = svc.spec.health_check_node_port.filter(|p| *p != 0) else {
        return;
    };
    let path = "spec.healthCheckNodePort";
    if svc.needs_health_check() {
        node_port_in_range(errs, path, port, cfg);
    } else {
        errs.push(FieldError::invalid(
            path,
            port,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
}

fn internal_traffic_policy(errs: &mut FieldErrors, spec: &ServiceSpec, ty: &str) {
    let path = "spec.internalTrafficPolicy";
    match spec.internal_traffic_policy.as_deref() {
        None if ty != service_type::EXTERNAL_NAME && TYPES.contains(&ty) => {
            errs.push(FieldError::required(path));
        }
        Some(p) if !TRAFFIC_POLICIES.contains(&p) => {
            errs.push(FieldError::not_supported(path, p, TRAFFIC_POLICIES));
        }
        _ => {}
    }
}

#[cfg(test)]
mod dual_stack_tests;
pub(super) mod ip_families;
#[cfg(test)]
mod tests;
