//! Validation of every kind, with the Kubernetes API server's rules, field
//! paths and messages, so users see the errors they already know.
//!
//! Validators are pure and expect defaulted objects (see `crate::defaulting`);
//! each collects every problem rather than stopping at the first.

pub mod field;

mod cluster;
mod common;
mod deployment;
mod endpoint_slice;
pub(crate) mod golang;
mod identity;
mod names;
mod pod;
mod service;

use std::ops::RangeInclusive;

use switchyard_api::resources::{
    BootstrapToken, Deployment, EndpointSlice, Namespace, Node, Pod, Service, User,
};

use crate::ip_family::IpFamily;
use field::FieldErrors;

/// The ranges a Service may draw from, which Kubernetes checks in its
/// allocators but Switchyard checks before allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The families of `--service-cidr`, primary first.
    pub families: Vec<IpFamily>,
    pub node_port_range: RangeInclusive<u16>,
}

/// `old` is the stored Service on update, whose ClusterIP may not change.
pub fn service(svc: &Service, old: Option<&Service>, cfg: &Config) -> Result<(), FieldErrors> {
    service::validate(svc, old, cfg).into_result()
}

/// Settles `svc`'s IP family fields against the cluster's families before
/// the rest of validation, as kube-apiserver does (see
/// `service::ip_families`).
pub fn service_ip_families(
    svc: &mut Service,
    old: Option<&Service>,
    cfg: &Config,
) -> Result<(), FieldErrors> {
    service::ip_families::settle(svc, old, &cfg.families).into_result()
}

/// `old` is the stored Pod on update, whose node may not change.
pub fn pod(pod: &Pod, old: Option<&Pod>) -> Result<(), FieldErrors> {
    pod::validate(pod, old).into_result()
}

pub fn deployment(d: &Deployment) -> Result<(), FieldErrors> {
    deployment::validate(d).into_result()
}

pub fn endpoint_slice(s: &EndpointSlice) -> Result<(), FieldErrors> {
    endpoint_slice::validate(s).into_result()
}

pub fn namespace(ns: &Namespace) -> Result<(), FieldErrors> {
    cluster::namespace(ns).into_result()
}

pub fn node(n: &Node) -> Result<(), FieldErrors> {
    cluster::node(n).into_result()
}

pub fn user(u: &User) -> Result<(), FieldErrors> {
    identity::user(u).into_result()
}

pub fn bootstrap_token(t: &BootstrapToken) -> Result<(), FieldErrors> {
    identity::bootstrap_token(t).into_result()
}
