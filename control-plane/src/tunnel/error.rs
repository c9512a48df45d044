//! Why a forward failed, and the gRPC status swctl sees for it.

use tonic::{Code, Status};

use super::resolve::ResolveError;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The node's agent went away between resolving and dialling.
    #[error("the agent of node \"{node}\" (running pod \"{pod}\") is not connected to the control plane")]
    AgentGone { node: String, pod: String },
    #[error("the agent of node \"{node}\" did not answer the request to connect to pod \"{pod}\" within {seconds}s")]
    DialTimeout {
        node: String,
        pod: String,
        seconds: u64,
    },
    /// The agent could not connect to the pod (refused, unreachable, timed out).
    #[error("error forwarding port {port} to pod \"{pod}\": {reason}")]
    Refused {
        pod: String,
        port: u32,
        reason: String,
    },
    /// The pod was deleted while a connection to it was open: the data was
    /// cut short, so both ends abort rather than see a clean close.
    #[error("error forwarding port {port} to pod \"{pod}\": the pod was deleted")]
    PodDeleted { pod: String, port: u32 },
    /// The pod's node agent went away while a connection was open.
    #[error("error forwarding port {port} to pod \"{pod}\": lost the tunnel to the agent of node \"{node}\"")]
    TunnelLost {
        node: String,
        pod: String,
        port: u32,
    },
    #[error("{0}")]
    Protocol(String),
}

impl From<TunnelError> for Status {
    fn from(e: TunnelError) -> Status {
        let code = match &e {
            TunnelError::Resolve(ResolveError::NotFound(_)) => Code::NotFound,
            TunnelError::Resolve(ResolveError::Invalid(_)) | TunnelError::Protocol(_) => {
                Code::InvalidArgument
            }
            TunnelError::Resolve(ResolveError::NoReadyPod(_))
            | TunnelError::Resolve(ResolveError::Unroutable(_)) => Code::FailedPrecondition,
            TunnelError::Resolve(ResolveError::AgentDisconnected { .. })
            | TunnelError::AgentGone { .. }
            | TunnelError::Refused { .. } => Code::Unavailable,
            TunnelError::DialTimeout { .. } => Code::DeadlineExceeded,
            // Only these: swctl ends the whole forward on ABORTED.
            TunnelError::PodDeleted { .. } | TunnelError::TunnelLost { .. } => Code::Aborted,
        };
        Status::new(code, e.to_string())
    }
}
