//! What the REST API serves without storing it: v1 Endpoints (built from
//! each Service's EndpointSlices, as `kubectl get endpoints` and older
//! clients expect), Events (Switchyard records none: lists are empty and
//! watches stay quiet, so `kubectl describe` and `get events` work), and
//! the control planes sharing the store.

use axum::body::Body;
use chrono::Utc;
use http::{Method, Response, StatusCode};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{json, Value};
use switchyard_api::columns::{self, age::age};
use switchyard_api::resources::{EndpointSlice, Kind, Object, Service};
use switchyard_api::v1::ControlPlane;
use tokio::sync::mpsc;

use super::list::FieldSelector;
use super::objects::{list_meta, list_of};
use super::path::Target;
use super::table::{self, Column, Row};
use super::{response, watch, Call, Rest};
use crate::auth::{Action, Verb};
use crate::selector::Selector;

impl Rest {
    pub(super) async fn endpoints(&self, call: &Call, target: &Target) -> Response<Body> {
        if call.verb != Method::GET || (call.query.watch && target.name.is_none()) {
            return read_only(target);
        }
        if let Err(e) = self.authorize_read(call, target) {
            return e;
        }
        let selector = match Selector::parse(&call.query.label_selector) {
            Ok(selector) => selector,
            Err(e) => return response::bad_request(format!("unable to parse requirement: {e}")),
        };
        let namespace = target.namespace.as_deref();
        let (services, slices, revision) = self.registry.with_state(|state| {
            let services: Vec<Service> = state
                .in_namespace(Kind::Service, namespace)
                .filter_map(|o| match &**o {
                    Object::Service(s) => Some((**s).clone()),
                    _ => None,
                })
                .filter(|s| selector.matches(&s.metadata.labels))
                .filter(|s| target.name.as_deref().is_none_or(|n| s.metadata.name == n))
                .collect();
            // One Service's Endpoints need only its own slices.
            let slices: Vec<EndpointSlice> = state
                .in_namespace(Kind::EndpointSlice, namespace)
                .filter_map(|o| match &**o {
                    Object::EndpointSlice(s) => Some(s),
                    _ => None,
                })
                .filter(|s| {
                    target
                        .name
                        .as_deref()
                        .is_none_or(|n| s.service_name() == Some(n))
                })
                .map(|s| (**s).clone())
                .collect();
            (services, slices, state.revision)
        });
        let endpoints: Vec<Endpoints> = services.iter().map(|s| endpoints_of(s, &slices)).collect();
        if let Some(name) = target.name.as_deref() {
            return match endpoints.into_iter().next() {
                Some(ep) if call.table => self.endpoints_table(call, vec![ep], revision),
                Some(ep) => response::json(StatusCode::OK, &ep),
                None => response::error(&tonic::Status::not_found(format!(
                    "endpoints \"{name}\" not found"
                ))),
            };
        }
        if call.table {
            return self.endpoints_table(call, endpoints, revision);
        }
        let items = endpoints
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        response::json(
            StatusCode::OK,
            &list_of(target, list_meta(revision, None, None), items),
        )
    }

    fn endpoints_table(
        &self,
        call: &Call,
        endpoints: Vec<Endpoints>,
        revision: u64,
    ) -> Response<Body> {
        let now = Utc::now();
        let rows = endpoints
            .into_iter()
            .map(|ep| {
                let created = ep
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_rfc3339());
                Row {
                    cells: vec![
                        ep.metadata.name.clone().unwrap_or_default(),
                        endpoints_cell(&ep),
                        age(created.as_deref(), now),
                    ],
                    object: serde_json::to_value(&ep).unwrap_or(Value::Null),
                }
            })
            .collect();
        let t = table::table(
            &named(&["NAME", "ENDPOINTS", "AGE"]),
            rows,
            list_meta(revision, None, None),
            call.include,
        );
        response::json(StatusCode::OK, &t)
    }

    pub(super) async fn events(&self, call: &Call, target: &Target) -> Response<Body> {
        if call.verb != Method::GET {
            return read_only(target);
        }
        if let Err(e) = self.authorize_read(call, target) {
            return e;
        }
        if let Err(e) = FieldSelector::parse("Event", &call.query.field_selector) {
            return response::bad_request(e);
        }
        if let Some(name) = target.name.as_deref() {
            return response::error(&tonic::Status::not_found(format!(
                "events \"{name}\" not found"
            )));
        }
        let revision = self.registry.revision();
        if call.query.watch {
            let (tx, rx) = mpsc::channel(1);
            // Nothing is ever sent: the watch stays open until it ends.
            tokio::spawn(async move { tx.closed().await });
            return watch::stream(
                call,
                target.served,
                rx,
                FieldSelector::default(),
                self.registry.clone(),
                self.stopping.clone(),
            );
        }
        if call.table {
            let columns = named(&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
            let t = table::table(
                &columns,
                Vec::new(),
                list_meta(revision, None, None),
                call.include,
            );
            return response::json(StatusCode::OK, &t);
        }
        response::json(
            StatusCode::OK,
            &list_of(target, list_meta(revision, None, None), Vec::new()),
        )
    }

    pub(super) async fn control_planes(&self, call: &Call, target: &Target) -> Response<Body> {
        if call.verb != Method::GET || call.query.watch {
            return read_only(target);
        }
        if let Err(e) = self.authorize_read(call, target) {
            return e;
        }
        let listed = match self.api.control_plane_list().await {
            Ok(listed) => listed,
            Err(e) => return response::error(&e),
        };
        let listed: Vec<ControlPlane> = listed
            .into_iter()
            .filter(|cp| target.name.as_deref().is_none_or(|n| cp.name == n))
            .collect();
        let revision = self.registry.revision();
        if let (Some(name), true) = (target.name.as_deref(), listed.is_empty()) {
            return response::error(&tonic::Status::not_found(format!(
                "controlplanes \"{name}\" not found"
            )));
        }
        if call.table {
            let now = Utc::now();
            let rows = listed
                .iter()
                .map(|cp| Row {
                    cells: columns::control_plane_cells(cp, now),
                    object: control_plane(cp),
                })
                .collect();
            let columns = named(&columns::CONTROL_PLANE_HEADER);
            let t = table::table(
                &columns,
                rows,
                list_meta(revision, None, None),
                call.include,
            );
            return response::json(StatusCode::OK, &t);
        }
        let mut items: Vec<Value> = listed.iter().map(control_plane).collect();
        match target.name {
            Some(_) => response::json(StatusCode::OK, &items.remove(0)),
            None => response::json(
                StatusCode::OK,
                &list_of(target, list_meta(revision, None, None), items),
            ),
        }
    }

    /// Authorizes reading a derived resource (reads are not audited).
    fn authorize_read(&self, call: &Call, target: &Target) -> Result<(), Response<Body>> {
        let verb = match (call.query.watch, &target.name) {
            (true, _) => Verb::Watch,
            (false, Some(_)) => Verb::Get,
            (false, None) => Verb::List,
        };
        let mut action = Action::new(verb, target.served.plural);
        action.namespace = target.namespace.as_deref();
        action.name = target.name.as_deref();
        self.api
            .authorize(&call.caller, &call.method, action)
            .map_err(|e| response::error(&e))
    }
}

fn read_only(target: &Target) -> Response<Body> {
    response::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({})",
        target.served.plural
    ))
}

fn named(names: &[&str]) -> Vec<Column> {
    names
        .iter()
        .map(|n| Column {
            name: n.to_string(),
            wide: false,
        })
        .collect()
}

fn control_plane(cp: &ControlPlane) -> Value {
    json!({
        "apiVersion": "switchyard.io/v1",
        "kind": "ControlPlane",
        "metadata": { "name": cp.name, "creationTimestamp": cp.started },
        "status": {
            "address": cp.address,
            "leader": cp.leader,
            "revision": cp.revision,
            "agents": cp.agents,
            "started": cp.started,
        }
    })
}

/// A Service's Endpoints: one subset per port set of its slices, ready
/// addresses apart from the rest, as the Endpoints controller writes them.
/// Endpoints hold one family, the Service's primary one, as in Kubernetes.
pub fn endpoints_of(svc: &Service, slices: &[EndpointSlice]) -> Endpoints {
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let mut subsets: Vec<EndpointSubset> = Vec::new();
    let families = svc.ip_family_names();
    let own = slices.iter().filter(|s| {
        s.metadata.namespace.as_deref() == Some(namespace.as_str())
            && s.service_name() == Some(svc.metadata.name.as_str())
            && families
                .first()
                .is_none_or(|family| s.address_type == *family)
    });
    for slice in own {
        let ports: Vec<EndpointPort> = slice
            .ports
            .iter()
            .map(|p| EndpointPort {
                app_protocol: None,
                name: p.name.clone(),
                port: p.port.unwrap_or_default(),
                protocol: p.protocol.clone(),
            })
            .collect();
        let index = match subsets
            .iter()
            .position(|s| s.ports.as_deref().unwrap_or_default() == ports)
        {
            Some(i) => i,
            None => {
                subsets.push(EndpointSubset {
                    ports: (!ports.is_empty()).then_some(ports),
                    ..EndpointSubset::default()
                });
                subsets.len() - 1
            }
        };
        let subset = &mut subsets[index];
        for endpoint in &slice.endpoints {
            for ip in &endpoint.addresses {
                let address = EndpointAddress {
                    hostname: endpoint.hostname.clone(),
                    ip: ip.clone(),
                    node_name: endpoint.node_name.clone(),
                    target_ref: endpoint.target_ref.as_ref().map(|r| ObjectReference {
                        kind: Some(r.kind.clone()),
                        name: Some(r.name.clone()),
                        namespace: r.namespace.clone(),
                        uid: r.uid.clone(),
                        ..ObjectReference::default()
                    }),
                };
                let list = match endpoint.conditions.is_ready() {
                    true => subset.addresses.get_or_insert_with(Vec::new),
                    false => subset.not_ready_addresses.get_or_insert_with(Vec::new),
                };
                list.push(address);
            }
        }
    }
    subsets.retain(|s| s.addresses.is_some() || s.not_ready_addresses.is_some());
    let created = svc
        .metadata
        .creation_timestamp
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| Time(t.with_timezone(&Utc)));
    Endpoints {
        metadata: ObjectMeta {
            name: Some(svc.metadata.name.clone()),
            namespace: Some(namespace),
            labels: (!svc.metadata.labels.is_empty()).then(|| {
                svc.metadata
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            creation_timestamp: created,
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// The ENDPOINTS cell: ready `ip:port` pairs, as kubectl prints them.
fn endpoints_cell(ep: &Endpoints) -> String {
    let mut pairs = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let addresses = subset.addresses.iter().flatten();
        match subset.ports.as_deref() {
            None | Some([]) => pairs.extend(addresses.map(|a| a.ip.clone())),
            Some(ports) => {
                for port in ports {
                    let addresses = subset.addresses.iter().flatten();
                    pairs.extend(addresses.map(|a| host_port(&a.ip, port.port)));
                }
            }
        }
    }
    columns::truncated_list(pairs.into_iter()).unwrap_or_else(|| "<none>".to_string())
}

fn host_port(ip: &str, port: i32) -> String {
    match ip.contains(':') {
        true => format!("[{ip}]:{port}"),
        false => format!("{ip}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(service: &str, ready: &[(&str, bool)], port: i32) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": ready.iter().map(|(ip, r)| json!({"addresses": [ip], "conditions": {"ready": r}, "nodeName": "node-1"})).collect::<Vec<_>>(),
            "ports": [{"name": "", "port": port, "protocol": "TCP"}]
        }))
        .unwrap()
    }

    #[test]
    fn ready_and_not_ready_addresses_of_the_services_slices() {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}}))
                .unwrap();
        let slices = vec![
            slice("web", &[("10.244.1.5", true), ("10.244.2.7", false)], 5000),
            slice("api", &[("10.244.1.9", true)], 8080),
        ];
        let ep = endpoints_of(&svc, &slices);
        let subsets = ep.subsets.as_ref().unwrap();
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].addresses.as_ref().unwrap()[0].ip, "10.244.1.5");
        assert_eq!(
            subsets[0].not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.244.2.7"
        );
        assert_eq!(endpoints_cell(&ep), "10.244.1.5:5000");
        let none: Service =
            serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "default"}}))
                .unwrap();
        assert_eq!(endpoints_cell(&endpoints_of(&none, &slices)), "<none>");
    }

    #[test]
    fn a_dual_stack_service_lists_its_primary_family_only() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ipFamilies": ["IPv6", "IPv4"]}
        }))
        .unwrap();
        let mut v6 = slice("web", &[("fd00:10:244:1::5", true)], 5000);
        v6.address_type = "IPv6".to_string();
        let slices = vec![slice("web", &[("10.244.1.5", true)], 5000), v6];
        assert_eq!(
            endpoints_cell(&endpoints_of(&svc, &slices)),
            "[fd00:10:244:1::5]:5000"
        );
    }
}
