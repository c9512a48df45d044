//! Keeping each Service's EndpointSlices in step inside the very write
//! that changes what they derive from: a Service, the Pods it selects, or
//! the zone of a Node its endpoints run on. It works over any [`Objects`]
//! view, so the registry runs it on its pending write, and the leader's
//! repair on the current state.

use std::collections::BTreeSet;

use switchyard_api::resources::{Kind, Node, Object, Pod};

use crate::store::{key_of, object_key, ObjectKey};

/// The objects of a write as it would leave them, and its changes.
pub trait Objects {
    fn get(&self, kind: Kind, key: &str) -> Option<Object>;
    /// Objects of `kind` in `namespace` that pass `keep`.
    fn list_where(
        &self,
        kind: Kind,
        namespace: &str,
        keep: &dyn Fn(&Object) -> bool,
    ) -> Vec<Object>;
    /// Objects of `kind` in every namespace that pass `keep`.
    fn list_all_where(&self, kind: Kind, keep: &dyn Fn(&Object) -> bool) -> Vec<Object>;
    fn put(&mut self, obj: Object);
    fn delete(&mut self, kind: Kind, key: ObjectKey);
}

/// Re-runs the endpoints controller for every Service a Service or Pod
/// change can affect, writing the slice differences into the same write.
pub fn reconcile_endpoints(txn: &mut impl Objects, old: Option<&Object>, new: Option<&Object>) {
    let services: Vec<Object> = match (old, new) {
        (_, Some(svc @ Object::Service(_))) | (Some(svc @ Object::Service(_)), None) => {
            vec![svc.clone()]
        }
        (Some(Object::Node(o)), Some(Object::Node(n))) if zone_of(o) != zone_of(n) => {
            services_with_endpoints_on(txn, &n.metadata.name)
        }
        (Some(Object::Pod(_)), _) | (_, Some(Object::Pod(_))) => {
            let ns = old
                .or(new)
                .map(|o| o.namespace().to_string())
                .unwrap_or_default();
            txn.list_where(Kind::Service, &ns, &|s: &Object| {
                let Object::Service(svc) = s else {
                    return false;
                };
                [old, new].into_iter().flatten().any(|p| match p {
                    Object::Pod(pod) => super::endpoints::selects(svc, pod),
                    _ => false,
                })
            })
        }
        _ => Vec::new(),
    };
    for svc in services {
        sync_service_slices(txn, &svc);
    }
}

fn zone_of(node: &Node) -> Option<&String> {
    node.metadata.labels.get(super::endpoints::ZONE_LABEL)
}

/// The zones of the nodes `pods` run on, which their endpoints carry.
fn node_zones(txn: &impl Objects, pods: &[Pod]) -> super::endpoints::NodeZones {
    let nodes: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.spec.node_name.as_deref())
        .collect();
    nodes
        .into_iter()
        .filter_map(
            |name| match txn.get(Kind::Node, &object_key(Kind::Node, "", name))? {
                Object::Node(n) => Some((name.to_string(), zone_of(&n)?.clone())),
                _ => None,
            },
        )
        .collect()
}

/// The Services whose slices list an endpoint on `node`: a change of the
/// node's zone changes their endpoints.
pub fn services_with_endpoints_on(txn: &impl Objects, node: &str) -> Vec<Object> {
    let on_node = |o: &Object| match o {
        Object::EndpointSlice(s) => {
            s.is_managed()
                && s.endpoints
                    .iter()
                    .any(|e| e.node_name.as_deref() == Some(node))
        }
        _ => false,
    };
    let keys: BTreeSet<ObjectKey> = txn
        .list_all_where(Kind::EndpointSlice, &on_node)
        .iter()
        .filter_map(|o| match o {
            Object::EndpointSlice(s) => {
                Some(object_key(Kind::Service, o.namespace(), s.service_name()?))
            }
            _ => None,
        })
        .collect();
    keys.iter()
        .filter_map(|key| txn.get(Kind::Service, key))
        .collect()
}

pub fn sync_service_slices(txn: &mut impl Objects, svc_obj: &Object) {
    let Object::Service(svc) = svc_obj else {
        return;
    };
    let ns = svc_obj.namespace().to_string();
    let live = txn.get(Kind::Service, &key_of(svc_obj));
    let desired = match &live {
        Some(Object::Service(live)) => {
            let selected =
                |o: &Object| matches!(o, Object::Pod(p) if super::endpoints::selects(live, p));
            let pods: Vec<_> = txn
                .list_where(Kind::Pod, &ns, &selected)
                .into_iter()
                .filter_map(|o| match o {
                    Object::Pod(p) => Some(p),
                    _ => None,
                })
                .collect();
            let zones = node_zones(txn, &pods);
            super::endpoints::desired_slices(live, &pods, &zones)
        }
        _ => Vec::new(),
    };
    let owned = |o: &Object| match o {
        Object::EndpointSlice(s) => s.is_managed() && s.service_name() == Some(&svc.metadata.name),
        _ => false,
    };
    let existing: Vec<ObjectKey> = txn
        .list_where(Kind::EndpointSlice, &ns, &owned)
        .iter()
        .map(key_of)
        .collect();
    let desired_keys: Vec<ObjectKey> = desired
        .iter()
        .map(|s| object_key(Kind::EndpointSlice, &ns, &s.metadata.name))
        .collect();
    for key in existing.into_iter().filter(|k| !desired_keys.contains(k)) {
        txn.delete(Kind::EndpointSlice, key);
    }
    for slice in desired {
        let key = object_key(Kind::EndpointSlice, &ns, &slice.metadata.name);
        let mut slice = Object::EndpointSlice(Box::new(slice));
        match txn.get(Kind::EndpointSlice, &key) {
            Some(old) => {
                let meta = slice.meta_mut();
                meta.uid = old.meta().uid.clone();
                meta.creation_timestamp = old.meta().creation_timestamp.clone();
                meta.resource_version = old.meta().resource_version.clone();
            }
            None => {
                let meta = slice.meta_mut();
                meta.uid = Some(uuid::Uuid::new_v4().to_string());
                meta.creation_timestamp =
                    Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
        }
        txn.put(slice);
    }
}
