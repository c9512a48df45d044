//! Turning an applied object into the object to store: carry over what the
//! server owns from the stored version, default, validate, allocate.

use chrono::{SecondsFormat, Utc};
use rand::Rng;
use switchyard_api::resources::{Deployment, Object, Pod, PodCondition, Service};

use super::error::{RegistryError, Result};
use super::type_change::drop_type_dependent_fields;
use crate::allocator::service::{allocate_cluster_ips, allocate_ports_and_lb_ip, Ranges};
use crate::allocator::AllocationTable;
use crate::defaulting;
use crate::store::object_key;
use crate::validation::{self, Config as ValidationConfig};

pub struct Limits<'a> {
    pub validation: &'a ValidationConfig,
    pub ranges: &'a Ranges,
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The object to store for `new`, given the stored `old`. Identity fields
/// (uid, creationTimestamp) always come from the server.
pub fn prepare(
    new: Object,
    old: Option<&Object>,
    table: &AllocationTable,
    limits: &Limits<'_>,
    rng: &mut impl Rng,
) -> Result<Object> {
    let kind = new.kind();
    let name = new.name().to_string();
    let invalid = |errors| RegistryError::invalid(kind, &name, errors);
    let mut obj = new.with_type_meta();
    stamp_identity(&mut obj, old);
    match (&mut obj, old) {
        (Object::Service(svc), old) => {
            let old = match old {
                Some(Object::Service(o)) => Some(&**o),
                _ => None,
            };
            carry_over_service(svc, old);
            defaulting::service(svc);
            // kube-apiserver's order: families, then cluster IPs, each
            // answering alone, then the rest of validation.
            validation::service_ip_families(svc, old, limits.validation).map_err(invalid)?;
            let owner = object_key(kind, svc.metadata.namespace.as_deref().unwrap_or(""), &name);
            let alloc_error = |e| RegistryError::from_alloc(kind, &name, e);
            allocate_cluster_ips(svc, &owner, table, limits.ranges, rng).map_err(alloc_error)?;
            validation::service(svc, old, limits.validation).map_err(invalid)?;
            allocate_ports_and_lb_ip(svc, &owner, table, limits.ranges, rng)
                .map_err(alloc_error)?;
        }
        (Object::Pod(pod), old) => {
            let old = match old {
                Some(Object::Pod(o)) => Some(o),
                _ => None,
            };
            defaulting::pod(pod);
            validation::pod(pod, old).map_err(invalid)?;
            set_pod_status(pod, old);
        }
        (Object::Deployment(d), _) => {
            defaulting::deployment(d);
            validation::deployment(d).map_err(invalid)?;
            d.status = Default::default();
        }
        (Object::EndpointSlice(s), _) => {
            defaulting::endpoint_slice(s);
            validation::endpoint_slice(s).map_err(invalid)?;
        }
        (Object::Namespace(ns), _) => {
            validation::namespace(ns).map_err(invalid)?;
            ns.status.phase = Some("Active".to_string());
        }
        (Object::Node(n), old) => {
            // The node's certificates are the server's to keep: a
            // registration (or a manifest) never adds or drops one.
            // So are its conditions: the leader judges them.
            (n.status.certificates, n.status.conditions) = match old {
                Some(Object::Node(o)) => {
                    (o.status.certificates.clone(), o.status.conditions.clone())
                }
                _ => Default::default(),
            };
            validation::node(n).map_err(invalid)?
        }
        (Object::User(u), _) => validation::user(u).map_err(invalid)?,
        (Object::BootstrapToken(t), old) => {
            t.status = match old {
                Some(Object::BootstrapToken(o)) => o.status.clone(),
                _ => Default::default(),
            };
            validation::bootstrap_token(t).map_err(invalid)?
        }
    }
    Ok(obj)
}

pub(crate) fn stamp_identity(obj: &mut Object, old: Option<&Object>) {
    let meta = obj.meta_mut();
    match old {
        Some(old) => {
            meta.uid = old.meta().uid.clone();
            meta.creation_timestamp = old.meta().creation_timestamp.clone();
            meta.resource_version = old.meta().resource_version.clone();
        }
        None => {
            meta.uid = Some(uuid::Uuid::new_v4().to_string());
            meta.creation_timestamp = Some(now_rfc3339());
            meta.resource_version = None;
        }
    }
}

/// Keeps what the server allocated when the manifest leaves it out, as
/// `kubectl apply` does: the ClusterIP, NodePorts (matched by port and
/// protocol), the health check port and the LoadBalancer ingress; drops
/// what a type change made meaningless.
fn carry_over_service(svc: &mut Service, old: Option<&Service>) {
    let Some(old) = old else {
        svc.status = Default::default();
        return;
    };
    let new_type = svc.service_type().to_string();
    let old_type = old.service_type();
    let same_family = (new_type == "ExternalName") == (old_type == "ExternalName");
    // kube-apiserver's patchAllocatedValues: what was allocated stays.
    if svc.spec.cluster_ip.as_deref().unwrap_or("").is_empty() && same_family {
        svc.spec.cluster_ip = old.spec.cluster_ip.clone();
    }
    if svc.spec.cluster_ips.is_empty() && same_family && svc.spec.cluster_ip == old.spec.cluster_ip
    {
        svc.spec.cluster_ips = old.spec.cluster_ips.clone();
    }
    // A patch of `clusterIP` alone leaves the stored `clusterIPs` behind:
    // the singular field speaks for both (kube-apiserver's
    // normalizeClusterIPs), so validation names the one change.
    if svc.spec.cluster_ip != old.spec.cluster_ip && svc.spec.cluster_ips == old.spec.cluster_ips {
        svc.spec.cluster_ips = svc
            .spec
            .cluster_ip
            .iter()
            .filter(|ip| !ip.is_empty())
            .cloned()
            .collect();
    }
    drop_type_dependent_fields(svc, old);
    if svc.has_node_ports() {
        for port in svc.spec.ports.iter_mut().filter(|p| p.node_port.is_none()) {
            port.node_port = old
                .spec
                .ports
                .iter()
                .find(|o| o.port == port.port && o.protocol() == port.protocol())
                .and_then(|o| o.node_port);
        }
    }
    if svc.needs_health_check() && svc.spec.health_check_node_port.is_none_or(|p| p == 0) {
        svc.spec.health_check_node_port = old.spec.health_check_node_port;
    }
    svc.status = old.status.clone();
}

/// The Ready condition belongs to the server: ready at once without a probe
/// (unless the registrant says otherwise), unready until probed with one,
/// and unchanged across re-applies that keep the probe.
fn set_pod_status(pod: &mut Pod, old: Option<&Pod>) {
    let given = pod
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status == "True");
    let kept = old
        .filter(|o| o.has_readiness_probe() && pod.has_readiness_probe())
        .map(Pod::is_ready);
    let ready = match (pod.has_readiness_probe(), kept, given) {
        (true, Some(kept), _) => kept,
        (true, None, _) => false,
        (false, _, given) => given.unwrap_or(true),
    };
    // A pod its unready node took out stays out until the node is back.
    let old_ready = old.and_then(|o| o.status.conditions.iter().find(|c| c.type_ == "Ready"));
    let held_by_node = old_ready
        .is_some_and(|c| c.reason.as_deref() == Some(super::node_ready::NODE_NOT_READY))
        && old.is_some_and(|o| o.spec.node_name == pod.spec.node_name);
    if held_by_node {
        pod.status.conditions.retain(|c| c.type_ != "Ready");
        pod.status.conditions.extend(old_ready.cloned());
        return set_phase(pod);
    }
    let unchanged = old.is_some_and(|o| o.is_ready() == ready);
    let since = old
        .filter(|_| unchanged)
        .and_then(|o| o.status.conditions.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.clone());
    write_ready_condition(pod, ready, since.unwrap_or_else(now_rfc3339));
    set_phase(pod);
}

fn set_phase(pod: &mut Pod) {
    if pod.status.phase.is_none() {
        let phase = if pod.status.pod_ip.is_some() {
            "Running"
        } else {
            "Pending"
        };
        pod.status.phase = Some(phase.to_string());
    }
}

/// Flips the Ready condition, stamping the transition time.
pub fn set_ready_condition(pod: &mut Pod, ready: bool) {
    write_ready_condition(pod, ready, now_rfc3339());
}

pub(super) fn write_ready_condition(pod: &mut Pod, ready: bool, since: String) {
    pod.status.conditions.retain(|c| c.type_ != "Ready");
    pod.status.conditions.push(PodCondition {
        type_: "Ready".to_string(),
        status: if ready { "True" } else { "False" }.to_string(),
        last_transition_time: Some(since),
        ..Default::default()
    });
}

/// A Deployment's status, counted from the pods it selects.
pub fn deployment_status<'a>(d: &mut Deployment, pods: impl IntoIterator<Item = &'a Pod>) {
    let selector = crate::selector::Selector::from_label_selector(&d.spec.selector);
    let (mut total, mut ready) = (0, 0);
    // An empty selector would match every pod; validation forbids it anyway.
    let selects_nothing =
        d.spec.selector.match_labels.is_empty() && d.spec.selector.match_expressions.is_empty();
    for pod in pods
        .into_iter()
        .filter(|p| !selects_nothing && selector.matches(&p.metadata.labels))
    {
        total += 1;
        ready += i32::from(pod.is_ready());
    }
    d.status.replicas = total;
    d.status.ready_replicas = ready;
    d.status.available_replicas = ready;
}
