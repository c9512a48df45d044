//! gRPC handlers: translate wire messages into registry calls and back,
//! nothing more.

pub mod observe;
mod resources;

pub use resources::{ResourcesApi, Scope};
