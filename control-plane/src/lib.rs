//! Switchyard's control plane: the API server, the sled-backed store, the
//! allocators and the endpoints controller.
//!
//! Requests flow `api` → `registry` (prepare: `defaulting`, `validation`,
//! `allocator`; derive: `controller`) → `store`. Everything but `api` and
//! `store::SledStore` is plain functions over plain data.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod api;
pub mod controller;
pub mod defaulting;
pub mod env;
pub mod listener;
pub mod metrics;
pub mod registry;
pub mod selector;
pub mod server;
pub mod store;
pub mod sync;
pub mod tunnel;
pub mod validation;
