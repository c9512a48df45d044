//! Readiness probes for the pods on this node, with Kubernetes' semantics:
//! initial delay, period, timeout, and success/failure thresholds before the
//! Ready condition flips. Each transition is reported to the control plane,
//! which updates the EndpointSlices every agent follows.

mod check;
mod prober;
mod reporter;

pub use check::{run_check, CheckResult};
pub use prober::Prober;
pub use reporter::Reporter;
