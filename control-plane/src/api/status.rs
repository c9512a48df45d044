//! Registry errors as gRPC statuses. The message is the API server's text;
//! the code tells `swctl` which kubectl prefix to print.

use tonic::{Code, Status};

use crate::registry::RegistryError;

pub fn to_status(e: RegistryError) -> Status {
    let code = match &e {
        RegistryError::Invalid { .. } | RegistryError::BadRequest(_) => Code::InvalidArgument,
        RegistryError::NotFound { .. } => Code::NotFound,
        RegistryError::AlreadyExists { .. } => Code::AlreadyExists,
        RegistryError::Forbidden { .. } => Code::PermissionDenied,
        RegistryError::Exhausted(_) => Code::ResourceExhausted,
        RegistryError::Gone { .. } => Code::OutOfRange,
        RegistryError::Store(_) => Code::Internal,
    };
    if code == Code::Internal {
        tracing::error!(error = %e, "request failed");
    }
    Status::new(code, e.to_string())
}
