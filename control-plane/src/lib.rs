//! Switchyard's control plane: the API server, the store (embedded sled, or
//! etcd shared with other control planes, `ha`), the allocators and the
//! endpoints controller.
//!
//! `connections` serves what `listener` accepts; `protocol` tells gRPC
//! from the Kubernetes REST API (`rest`, which calls the same operations
//! as the gRPC handlers in `api`). Requests pass `auth::layer` (the
//! caller's certificate becomes a principal), then flow `api` → `registry` (prepare: `defaulting`,
//! `validation`, `allocator`; derive: `controller`) → `store`. `pki` and
//! `identity` issue certificates and tokens; `node_lifecycle` turns agents
//! that fall silent into NotReady nodes. Everything but the gRPC
//! services, `listener` and `store::SledStore` is plain functions over
//! plain data.
#![forbid(unsafe_code)]

pub mod allocator;
mod api;
mod auth;
mod connections;
mod controller;
mod defaulting;
mod env;
mod ha;
pub mod health;
mod identity;
pub mod ip_family;
mod listener;
pub mod metrics;
pub mod node_lifecycle;
mod pki;
mod protocol;
pub mod registry;
mod rest;
mod selector;
pub mod server;
mod status;
pub mod store;
mod sync;
mod tunnel;
mod validation;
