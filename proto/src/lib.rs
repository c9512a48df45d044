//! Switchyard's wire API.
//!
//! `v1` is the generated gRPC code for package `switchyard.v1`; `resources`
//! holds the Kubernetes-shaped objects those messages carry as JSON. Both are
//! plain data (`columns` says how each kind reads in a table): validation, defaulting and allocation live in the control plane.
#![forbid(unsafe_code)]

pub mod cluster_ips;
pub mod columns;
pub mod endpoint_ports;
pub mod resources;

/// Generated code for package `switchyard.v1`.
#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod v1 {
    tonic::include_proto!("switchyard.v1");
}
