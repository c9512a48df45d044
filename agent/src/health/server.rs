//! kube-proxy's `/healthz` and `/livez`: 200 while the data path is
//! healthy, 503 when not, with kube-proxy's JSON body. `/healthz` also
//! needs the node to be eligible for traffic; a Switchyard node always is
//! while its agent runs (a deleted node's agent is refused and exits).

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::ProxyHealth;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    last_updated: String,
    current_time: String,
    node_eligible: bool,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn answer(health: &ProxyHealth) -> Response {
    let status = health.status();
    let body = Body {
        last_updated: rfc3339(status.last_updated),
        current_time: rfc3339(status.current_time),
        node_eligible: true,
    };
    let code = match status.healthy {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    // Serializing two strings and a bool cannot fail.
    json_response(code, serde_json::to_string(&body).unwrap_or_default())
}

/// Serves `/healthz` and `/livez` on a bound listener (this process's or
/// the predecessor's) until the process exits.
pub async fn serve(
    listener: std::net::TcpListener,
    health: Arc<ProxyHealth>,
) -> std::io::Result<()> {
    let (h, l) = (health.clone(), health);
    let app = axum::Router::new()
        .route("/healthz", get(move || async move { answer(&h) }))
        .route("/livez", get(move || async move { answer(&l) }));
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, app).await
}
