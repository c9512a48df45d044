//! Switchyard's control plane: the API server, the store (embedded sled, or
//! etcd shared with other control planes, `ha`), the allocators and the
//! endpoints controller.
//!
//! Requests pass `auth::layer` (the caller's certificate becomes a
//! principal), then flow `api` → `registry` (prepare: `defaulting`,
//! `validation`, `allocator`; derive: `controller`) → `store`. `pki` and
//! `identity` issue certificates and tokens; `node_lifecycle` turns agents
//! that fall silent into NotReady nodes. Everything but the gRPC
//! services, `listener` and `store::SledStore` is plain functions over
//! plain data.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod api;
pub mod auth;
pub mod controller;
pub mod defaulting;
pub mod env;
pub mod ha;
pub mod health;
pub mod identity;
pub mod listener;
pub mod metrics;
pub mod node_lifecycle;
pub mod pki;
pub mod registry;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod sync;
pub mod tunnel;
pub mod validation;
