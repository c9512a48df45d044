//! Kubernetes v1 resource types, with Kubernetes' JSON field names.
//!
//! Optional fields stay `Option` so that "not given" survives a round trip:
//! defaulting is the control plane's job, and `swctl apply` must be able to
//! tell a field the user left out from one set to its default.

mod compact;
mod deployment;
mod endpoint_slice;
mod identity;
mod kind;
mod labels;
mod meta;
mod namespace;
mod node;
mod object;
mod pod;
mod schema;
mod service;

pub use deployment::*;
pub use endpoint_slice::*;
pub use identity::*;
pub use kind::*;
pub use meta::*;
pub use namespace::*;
pub use node::*;
pub use object::*;
pub use pod::*;
pub use schema::{drop_unknown_fields, field_path, unknown_fields, Step};
pub use service::*;
