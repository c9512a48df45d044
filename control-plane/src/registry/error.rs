use switchyard_api::resources::Kind;

use crate::allocator::service::AllocError;
use crate::store::StoreError;
use crate::validation::field::FieldErrors;

/// Why a request was refused; each variant's text is the API server's message.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{kind} \"{name}\" is invalid: {errors}")]
    Invalid {
        kind: Kind,
        name: String,
        errors: FieldErrors,
    },
    #[error("{} \"{name}\" not found", kind.plural())]
    NotFound { kind: Kind, name: String },
    #[error("{} \"{name}\" already exists", kind.plural())]
    AlreadyExists { kind: Kind, name: String },
    /// The object changed since the caller read it.
    #[error("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", kind.plural())]
    Conflict { kind: Kind, name: String },
    #[error("{} \"{name}\" is forbidden: {reason}", kind.plural())]
    Forbidden {
        kind: Kind,
        name: String,
        reason: String,
    },
    #[error("Internal error occurred: {0}")]
    Exhausted(String),
    /// The server's own failure (a task that died, a log entry it cannot
    /// read): never the caller's fault, so never InvalidArgument.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
    /// The store could not read a resumed watch's history whole in time
    /// (a slow etcd): like `Gone`, the watcher lists again.
    #[error(transparent)]
    Relist(StoreError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted { requested, oldest } => {
                RegistryError::Gone { requested, oldest }
            }
            e @ StoreError::HistoryIncomplete { .. } => RegistryError::Relist(e),
            other => RegistryError::Store(other),
        }
    }
}

impl RegistryError {
    pub fn invalid(kind: Kind, name: &str, errors: FieldErrors) -> Self {
        RegistryError::Invalid {
            kind,
            name: name.to_string(),
            errors,
        }
    }

    pub fn from_alloc(kind: Kind, name: &str, e: AllocError) -> Self {
        match e {
            AllocError::Conflict(errors) => RegistryError::invalid(kind, name, errors),
            AllocError::Exhausted(_) => RegistryError::Exhausted(e.to_string()),
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
