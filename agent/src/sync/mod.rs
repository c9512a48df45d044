//! The snapshot stream client: one bidirectional stream to the control
//! plane, re-opened with capped, jittered exponential backoff whenever it
//! breaks. While it is down nothing touches the data path, so the last
//! ruleset keeps serving.

mod backoff;
mod stream;

pub use backoff::Backoff;
pub use stream::{open, Session, StreamError};
