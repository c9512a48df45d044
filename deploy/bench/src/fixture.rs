//! The synthetic cluster every benchmark uses: `services` ClusterIP Services,
//! each selecting `endpoints` Pods, spread over namespaces of
//! [`SERVICES_PER_NAMESPACE`] Services. Names and addresses are pure
//! functions of indices, so the API loader, the agent-side snapshots and the
//! generated rulesets all describe the same cluster.

use std::net::Ipv4Addr;

use serde_json::{json, Value};
use switchyard_agent::model::{
    EndpointEntry, EndpointPortEntry, Protocol, ServiceEntry, ServiceKey, ServicePortEntry,
    Snapshot,
};
use switchyard_api::v1::{Endpoint, EndpointPort, EndpointPorts, ServicePort, ServiceState};

/// Big clusters spread Services over many namespaces; 100 per namespace
/// keeps the registry's per-namespace work what it is in such clusters.
pub const SERVICES_PER_NAMESPACE: usize = 100;
/// Pods are spread over this many node names.
pub const NODES: usize = 100;
pub const SERVICE_PORT: u16 = 80;
pub const TARGET_PORT: u16 = 8080;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub services: usize,
    pub endpoints: usize,
}

impl Shape {
    pub fn pods(&self) -> usize {
        self.services * self.endpoints
    }

    pub fn namespaces(&self) -> usize {
        self.services.div_ceil(SERVICES_PER_NAMESPACE)
    }

    /// Cache key for a loaded control-plane data directory.
    pub fn id(&self) -> String {
        format!("{}x{}", self.services, self.endpoints)
    }
}

pub fn namespace(i: usize) -> String {
    format!("bench-{:04}", i / SERVICES_PER_NAMESPACE)
}

pub fn service_name(i: usize) -> String {
    format!("svc-{i:05}")
}

pub fn pod_name(i: usize, j: usize) -> String {
    format!("svc-{i:05}-{j}")
}

pub fn node_name(i: usize, j: usize) -> String {
    format!("node-{:03}", (i + j) % NODES)
}

/// Pod addresses come from 10.128.0.0/9, one per (service, endpoint).
pub fn pod_ip(shape: &Shape, i: usize, j: usize) -> Ipv4Addr {
    let k = (i * shape.endpoints + j) as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 1)) + k)
}

/// Agent-side ClusterIPs (the control plane allocates its own).
pub fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 20)) + i as u32)
}

pub fn namespace_json(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn service_json(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(i), "namespace": namespace(i)},
        "spec": {
            "selector": {"app": service_name(i)},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": TARGET_PORT}]
        }
    })
}

/// A pod of service `i`; `ready: Some(false)` writes an unready condition.
pub fn pod_json(shape: &Shape, i: usize, j: usize, ready: Option<bool>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(i, j),
            "namespace": namespace(i),
            "labels": {"app": service_name(i)}
        },
        "spec": {
            "nodeName": node_name(i, j),
            "containers": [{"name": "main", "ports": [{"name": "http", "containerPort": TARGET_PORT}]}]
        },
        "status": {"podIP": pod_ip(shape, i, j).to_string()}
    });
    if let Some(ready) = ready {
        pod["status"]["conditions"] =
            json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]);
    }
    pod
}

/// The same cluster as the agent's data path sees it.
pub fn snapshot(shape: &Shape) -> Snapshot {
    let mut snap = Snapshot {
        version: 1,
        ..Default::default()
    };
    for i in 0..shape.services {
        snap.services
            .insert(service_key(i), service_entry(shape, i));
    }
    snap
}

pub fn service_key(i: usize) -> ServiceKey {
    ServiceKey::new(namespace(i), service_name(i))
}

pub fn service_entry(shape: &Shape, i: usize) -> ServiceEntry {
    ServiceEntry {
        cluster_ip: Some(cluster_ip(i)),
        ports: vec![ServicePortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: SERVICE_PORT,
            node_port: None,
        }],
        endpoints: (0..shape.endpoints)
            .map(|j| endpoint(pod_ip(shape, i, j), &node_name(i, j)))
            .collect(),
        ..Default::default()
    }
}

/// Service `i` as the control plane pushes it ([`service_entry`] is what
/// the agent's data path makes of it).
pub fn service_state(shape: &Shape, i: usize) -> ServiceState {
    let ip = cluster_ip(i).to_string();
    ServiceState {
        namespace: namespace(i),
        name: service_name(i),
        r#type: "ClusterIP".into(),
        cluster_ip: ip.clone(),
        cluster_ips: vec![ip],
        ports: vec![ServicePort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: SERVICE_PORT.into(),
            node_port: 0,
        }],
        endpoints: (0..shape.endpoints)
            .map(|j| Endpoint {
                ip: pod_ip(shape, i, j).to_string(),
                node_name: node_name(i, j),
                ready: true,
                serving: true,
                ..Default::default()
            })
            .collect(),
        port_sets: vec![EndpointPorts {
            ports: vec![EndpointPort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: TARGET_PORT.into(),
            }],
        }],
        ..Default::default()
    }
}

pub fn endpoint(ip: Ipv4Addr, node: &str) -> EndpointEntry {
    EndpointEntry {
        hints: None,
        ip,
        node_name: Some(node.to_owned()),
        ready: true,
        serving: true,
        terminating: false,
        ports: vec![EndpointPortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: TARGET_PORT,
        }]
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_are_distinct() {
        let shape = Shape {
            services: 10_000,
            endpoints: 10,
        };
        assert_eq!(shape.namespaces(), 100);
        assert_eq!(pod_ip(&shape, 0, 0), Ipv4Addr::new(10, 128, 0, 1));
        assert_eq!(pod_ip(&shape, 9_999, 9), Ipv4Addr::new(10, 129, 134, 160));
        assert_ne!(namespace(99), namespace(100));
        let state = service_state(&shape, 9_999);
        let entry = switchyard_agent::view::data_path_entry(&state);
        assert_eq!(entry, Some(service_entry(&shape, 9_999)));
        assert_eq!(
            snapshot(&Shape {
                services: 3,
                endpoints: 2
            })
            .services
            .len(),
            3
        );
    }
}
