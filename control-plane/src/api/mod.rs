//! gRPC handlers: translate wire messages into registry calls and back,
//! nothing more.

pub mod observe;
mod resources;
mod status;

pub use resources::ResourcesApi;
pub use status::to_status;
