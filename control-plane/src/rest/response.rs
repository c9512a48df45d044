//! How the REST API answers: JSON bodies, Kubernetes Status errors, the
//! `Warning:` headers kube-apiserver sends.

use axum::body::Body;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status as KubeStatus;
use serde::Serialize;

use crate::status::{failure, http_code, kube_status};

pub const JSON: &str = "application/json";

pub fn json<T: Serialize>(code: StatusCode, body: &T) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => with_type(code, JSON, bytes),
        Err(e) => internal(format!("encoding the response: {e}")),
    }
}

pub fn with_type(code: StatusCode, content_type: &'static str, bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A failure, as the Status kube-apiserver sends.
pub fn status(s: &KubeStatus) -> Response<Body> {
    json(http_code(s), s)
}

/// A failed operation's gRPC status, as Kubernetes' Status.
pub fn error(s: &tonic::Status) -> Response<Body> {
    status(&kube_status(s))
}

pub fn bad_request(message: String) -> Response<Body> {
    status(&failure(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        message,
        None,
    ))
}

pub fn not_found(message: String) -> Response<Body> {
    status(&failure(StatusCode::NOT_FOUND, "NotFound", message, None))
}

pub fn method_not_allowed(message: String) -> Response<Body> {
    status(&failure(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        message,
        None,
    ))
}

pub fn unsupported_media_type(message: String) -> Response<Body> {
    status(&failure(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        message,
        None,
    ))
}

pub fn internal(message: String) -> Response<Body> {
    status(&failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        message,
        None,
    ))
}

/// Adds one `Warning: 299 - "…"` header per warning, as kube-apiserver
/// does; kubectl prints each as `Warning: …`.
pub fn warn(mut response: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let quoted = serde_json::to_string(w).unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&format!("299 - {quoted}")) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}
