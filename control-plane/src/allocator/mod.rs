//! Address and port allocation for Services.
//!
//! Allocators are pure: they look at an [`AllocationTable`] (who holds what)
//! and decide; the registry writes the resulting claims and releases in the
//! same store transaction as the Service itself, so a crash can never leave a
//! ClusterIP or NodePort leaked or held twice.

pub mod cluster_ip;
pub mod lb_ip;
pub mod node_port;
mod range;
pub mod service;
mod table;

#[cfg(test)]
mod properties;

pub use table::{AllocKey, AllocationTable};
