//! Why a request failed, in both of the API's languages, made in one place
//! so swctl and kubectl print the same words: a gRPC status whose message
//! is the API server's text (its code tells swctl which kubectl prefix to
//! print), and Kubernetes' own `metav1.Status` (reason, HTTP code,
//! `details.causes`), which the registry's errors carry in the gRPC
//! status's details and the REST API sends as is.

use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, StatusDetails};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status as KubeStatus, StatusCause};
use switchyard_api::resources::Kind;
use tonic::{Code, Status};

use crate::registry::RegistryError;

pub fn to_status(e: RegistryError) -> Status {
    let code = match &e {
        RegistryError::Invalid { .. } => Code::InvalidArgument,
        RegistryError::NotFound { .. } => Code::NotFound,
        RegistryError::AlreadyExists { .. } => Code::AlreadyExists,
        RegistryError::Conflict { .. } => Code::Aborted,
        RegistryError::Forbidden { .. } => Code::PermissionDenied,
        RegistryError::Exhausted(_) => Code::ResourceExhausted,
        RegistryError::Gone { .. } | RegistryError::Relist(_) => Code::OutOfRange,
        RegistryError::Store(_) | RegistryError::Internal(_) => Code::Internal,
    };
    if code == Code::Internal {
        tracing::error!(error = %e, "request failed");
    }
    let kube = registry_status(&e);
    let details = serde_json::to_vec(&kube).unwrap_or_default();
    Status::with_details(code, e.to_string(), details.into())
}

/// The Kubernetes Status a failed operation answers with: the one the
/// registry attached, else one made from the gRPC code and message (a
/// policy refusal, a body that does not decode, a store that is down).
pub fn kube_status(status: &Status) -> KubeStatus {
    serde_json::from_slice::<KubeStatus>(status.details())
        .ok()
        .filter(|s| s.code.is_some())
        .unwrap_or_else(|| {
            let (http, reason) = http_reason(status.code());
            failure(http, reason, status.message().to_string(), None)
        })
}

/// The HTTP status a Kubernetes Status is sent with.
pub fn http_code(status: &KubeStatus) -> StatusCode {
    status
        .code
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A failure Status, as kube-apiserver writes one.
pub fn failure(
    http: StatusCode,
    reason: &str,
    message: String,
    details: Option<StatusDetails>,
) -> KubeStatus {
    KubeStatus {
        code: Some(i32::from(http.as_u16())),
        details,
        message: Some(message),
        metadata: ListMeta::default(),
        reason: Some(reason.to_string()),
        status: Some("Failure".to_string()),
    }
}

fn http_reason(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::InvalidArgument | Code::FailedPrecondition => (StatusCode::BAD_REQUEST, "BadRequest"),
        Code::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "AlreadyExists"),
        Code::Aborted => (StatusCode::CONFLICT, "Conflict"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "Forbidden"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "Unauthorized"),
        Code::OutOfRange => (StatusCode::GONE, "Expired"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
        Code::Unimplemented => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    }
}

/// The API group of a kind (`""` for the core group).
fn group(kind: Kind) -> String {
    kind.api_version()
        .rsplit_once('/')
        .map_or(String::new(), |(g, _)| g.to_string())
}

fn registry_status(e: &RegistryError) -> KubeStatus {
    let message = e.to_string();
    let named = |kind: Kind, name: &str, kind_name: &str| StatusDetails {
        group: Some(group(kind)),
        kind: Some(kind_name.to_string()),
        name: Some(name.to_string()),
        ..StatusDetails::default()
    };
    match e {
        RegistryError::Invalid { kind, name, errors } => {
            let causes = errors
                .iter()
                .map(|f| StatusCause {
                    field: Some(f.path.clone()),
                    message: Some(f.message()),
                    reason: Some(f.cause_type().to_string()),
                })
                .collect();
            let details = StatusDetails {
                causes: Some(causes),
                ..named(*kind, name, kind.as_str())
            };
            failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                message,
                Some(details),
            )
        }
        RegistryError::NotFound { kind, name } => {
            let details = named(*kind, name, kind.plural());
            failure(StatusCode::NOT_FOUND, "NotFound", message, Some(details))
        }
        RegistryError::AlreadyExists { kind, name } => {
            let details = named(*kind, name, kind.plural());
            failure(
                StatusCode::CONFLICT,
                "AlreadyExists",
                message,
                Some(details),
            )
        }
        RegistryError::Conflict { kind, name } => {
            let details = named(*kind, name, kind.plural());
            failure(StatusCode::CONFLICT, "Conflict", message, Some(details))
        }
        RegistryError::Forbidden { kind, name, .. } => {
            let details = named(*kind, name, kind.plural());
            failure(StatusCode::FORBIDDEN, "Forbidden", message, Some(details))
        }
        RegistryError::Gone { .. } | RegistryError::Relist(_) => {
            failure(StatusCode::GONE, "Expired", message, None)
        }
        RegistryError::Exhausted(_) | RegistryError::Internal(_) | RegistryError::Store(_) => {
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                message,
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::field::{FieldError, FieldErrors};

    #[test]
    fn the_servers_own_failures_are_internal() {
        let status = to_status(RegistryError::Internal("corrupt log entry: eof".into()));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "Internal error occurred: corrupt log entry: eof"
        );
        assert_eq!(
            kube_status(&status).reason.as_deref(),
            Some("InternalError")
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
        assert_eq!(http_code(&kube_status(&status)), StatusCode::GONE);
    }

    /// kubectl prints `The Service "web" is invalid: <field>: <message>`
    /// from the details, so each cause must split where kube-apiserver's do.
    #[test]
    fn invalid_objects_carry_their_field_errors_as_causes() {
        let errors = FieldErrors::from(FieldError::invalid(
            "spec.ports[0].port",
            70000,
            "must be between 1 and 65535, inclusive",
        ));
        let status = to_status(RegistryError::invalid(Kind::Service, "web", errors));
        let kube = serde_json::to_value(kube_status(&status)).unwrap();
        assert_eq!(
            kube,
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Status",
                "metadata": {},
                "status": "Failure",
                "message": "Service \"web\" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "reason": "Invalid",
                "details": {
                    "name": "web",
                    "group": "",
                    "kind": "Service",
                    "causes": [{
                        "reason": "FieldValueInvalid",
                        "message": "Invalid value: 70000: must be between 1 and 65535, inclusive",
                        "field": "spec.ports[0].port"
                    }]
                },
                "code": 422
            })
        );
    }

    #[test]
    fn statuses_without_details_are_made_from_their_code() {
        let refused = Status::permission_denied("services is forbidden: User \"v\" cannot create resource \"services\" in API group \"\" in the namespace \"default\"");
        let kube = kube_status(&refused);
        assert_eq!(http_code(&kube), StatusCode::FORBIDDEN);
        assert_eq!(kube.reason.as_deref(), Some("Forbidden"));
        assert_eq!(kube.message.as_deref(), Some(refused.message()));
    }
}
