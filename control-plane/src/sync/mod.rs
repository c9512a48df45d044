//! The snapshot stream: what every agent must know, kept current by
//! [`cache::SnapshotCache`] and pushed to each agent by a [`session`].
//!
//! Versions are store revisions, so a version means the same thing across
//! control-plane restarts and an agent that reconnects with the current
//! revision needs nothing resent.

pub mod cache;
pub mod encoded;
pub mod nodes;
pub mod parts;
pub mod service;
pub mod session;
pub mod snapshot;
pub mod wire;

pub use cache::SnapshotCache;
pub use nodes::NodeTable;
pub use service::SyncApi;
