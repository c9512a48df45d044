//! Registry errors as gRPC statuses. The message is the API server's text;
//! the code tells `swctl` which kubectl prefix to print.

use tonic::{Code, Status};

use crate::registry::RegistryError;

pub fn to_status(e: RegistryError) -> Status {
    let code = match &e {
        RegistryError::Invalid { .. } => Code::InvalidArgument,
        RegistryError::NotFound { .. } => Code::NotFound,
        RegistryError::AlreadyExists { .. } => Code::AlreadyExists,
        RegistryError::Forbidden { .. } => Code::PermissionDenied,
        RegistryError::Exhausted(_) => Code::ResourceExhausted,
        RegistryError::Gone { .. } | RegistryError::Relist(_) => Code::OutOfRange,
        RegistryError::Store(_) | RegistryError::Internal(_) => Code::Internal,
    };
    if code == Code::Internal {
        tracing::error!(error = %e, "request failed");
    }
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_failures_are_internal() {
        let status = to_status(RegistryError::Internal("corrupt log entry: eof".into()));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "Internal error occurred: corrupt log entry: eof"
        );
    }

    /// A history the store could not read whole sends the watcher to list
    /// again, as a compacted one does.
    #[test]
    fn an_incomplete_history_is_out_of_range() {
        let incomplete = crate::store::StoreError::HistoryIncomplete {
            after: 3,
            until: 9,
            reached: 5,
            within: std::time::Duration::from_secs(3),
        };
        let status = to_status(incomplete.into());
        assert_eq!(status.code(), Code::OutOfRange);
        assert!(
            status.message().ends_with("list again and resume"),
            "{}",
            status.message()
        );
    }
}
