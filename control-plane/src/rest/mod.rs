//! The Kubernetes REST API, served beside gRPC on the same listener, behind
//! the same edge layer (a request's certificate is its caller) and through
//! the same operations (`api::ResourcesApi`: authorization, audit, the
//! registry), so kubectl, client-go, kube-rs and the Python client work
//! against Switchyard as they do against kube-apiserver. Handlers only
//! translate HTTP to those operations and back; the registry never sees
//! HTTP.
//!
//! `catalog` lists what is served; `path` and `query` read a request;
//! `discovery` and `openapi` describe the API; `objects` serves stored
//! kinds (with `decode`, `patch`, `list`, `table`, `watch`); `derived`
//! serves what is computed (Endpoints, Events, control planes),
//! `review` answers `kubectl auth whoami` and `can-i`, and `portforward`
//! serves `kubectl port-forward` (with `protobuf` for kubectl's typed
//! request bodies).
//!
//! Helpers that may refuse return the refusal itself (`Err(Response)`),
//! built once per request and sent as is: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod catalog;
mod decode;
mod derived;
mod discovery;
mod list;
mod objects;
mod openapi;
mod patch;
mod path;
mod portforward;
mod protobuf;
mod query;
mod response;
mod review;
mod table;
mod watch;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::watch as notify;

use crate::api::ResourcesApi;
use crate::auth::Caller;
use crate::health::Health;
use crate::metrics::RestLabel;
use crate::registry::Registry;
use crate::tunnel::TunnelApi;
use catalog::{Backing, SERVED};
use query::Query;
use table::Include;

/// Kubernetes refuses request bodies over 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A bounded label for a REST request in metrics: its verb and resource,
/// never its object names.
fn metric_label(method: &Method, path: &str) -> String {
    match path::parse(path) {
        Ok(t) => match t.subresource {
            Some(sub) => format!("{method} {}/{sub}", t.served.plural),
            None => format!("{method} {}", t.served.plural),
        },
        Err(_) if crate::auth::policy::is_public_path(path) => {
            format!("{method} {}", path.trim_end_matches('/'))
        }
        Err(_) => format!("{method} discovery"),
    }
}

pub struct Rest {
    api: Arc<ResourcesApi>,
    tunnel: TunnelApi,
    registry: Arc<Registry>,
    stopping: notify::Receiver<bool>,
    /// Built on first request: the documents take a moment to make.
    openapi: OnceLock<OpenApi>,
}

struct OpenApi {
    root: Value,
    group_versions: Vec<((&'static str, &'static str), Value)>,
}

/// One REST request, read once.
pub(crate) struct Call {
    caller: Caller,
    /// What the audit log names: `POST /api/v1/namespaces/default/services`.
    method: String,
    verb: Method,
    query: Query,
    table: bool,
    include: Include,
    content_type: String,
    body: Bytes,
}

impl Rest {
    pub fn new(
        api: Arc<ResourcesApi>,
        tunnel: TunnelApi,
        registry: Arc<Registry>,
        stopping: notify::Receiver<bool>,
    ) -> Arc<Rest> {
        Arc::new(Rest {
            api,
            tunnel,
            registry,
            stopping,
            openapi: OnceLock::new(),
        })
    }

    /// The REST routes: health checks, and everything else the API serves
    /// (to be the gRPC router's fallback).
    pub fn router(self: Arc<Self>, health: Arc<Health>) -> axum::Router {
        crate::health::router(health).fallback(move |req: Request<Body>| {
            let rest = self.clone();
            async move { rest.handle(req).await }
        })
    }

    /// Answers one request, labelled for the metrics layer.
    async fn handle(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        let label = metric_label(req.method(), req.uri().path());
        let mut answer = self.answer(req).await;
        answer.extensions_mut().insert(RestLabel(label));
        answer
    }

    #[tracing::instrument(skip_all, fields(method = %req.method(), path = %req.uri().path()))]
    async fn answer(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        let path = req.uri().path().to_string();
        if req.method() == Method::GET {
            let accept = req
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            if let Some(answer) = self.describe(&path, discovery::wants_aggregated(accept)) {
                return answer;
            }
        }
        let target = match path::parse(&path) {
            Ok(target) => target,
            Err(e) => return response::not_found(e.to_string()),
        };
        if target.subresource.as_deref() == Some("portforward") {
            return self.port_forward(req, &target).await;
        }
        let call = match read_call(req, &path).await {
            Ok(call) => call,
            Err(answer) => return answer,
        };
        match target.served.backing() {
            Backing::Stored(kind) => self.stored(&call, kind, &target).await,
            Backing::Endpoints => self.endpoints(&call, &target).await,
            Backing::Events => self.events(&call, &target).await,
            Backing::ControlPlanes => self.control_planes(&call, &target).await,
            Backing::SelfSubjectReview => review::whoami(&call),
            Backing::SelfSubjectAccessReview => self.can_i(&call),
        }
    }

    /// Discovery and OpenAPI documents; `None` for other paths.
    fn describe(&self, path: &str, aggregated: bool) -> Option<Response<Body>> {
        let ok = StatusCode::OK;
        let json = |value: &Value| match serde_json::to_vec(value) {
            Ok(bytes) => response::with_type(ok, discovery::AGGREGATED, bytes),
            Err(e) => response::internal(e.to_string()),
        };
        let answer = match path.trim_end_matches('/') {
            "/api" if aggregated => json(&discovery::aggregated(true)),
            "/apis" if aggregated => json(&discovery::aggregated(false)),
            "/version" => response::json(ok, &discovery::version()),
            "/api" => response::json(ok, &discovery::core_versions()),
            "/apis" => response::json(ok, &discovery::groups()),
            "/openapi/v3" => response::json(ok, &self.openapi().root),
            p => {
                if let Some(gv) = p.strip_prefix("/openapi/v3/") {
                    return Some(self.openapi_document(gv));
                }
                let (group, version) = match p.split('/').collect::<Vec<_>>()[..] {
                    ["", "api", version] => ("", version),
                    ["", "apis", group, version] => (group, version),
                    _ => return None,
                };
                match discovery::resources(group, version) {
                    Some(list) => response::json(ok, &list),
                    None => response::not_found(format!(
                        "the server could not find the requested resource ({p})"
                    )),
                }
            }
        };
        Some(answer)
    }

    fn openapi(&self) -> &OpenApi {
        self.openapi.get_or_init(|| OpenApi {
            root: openapi::root(SERVED),
            group_versions: catalog::group_versions()
                .into_iter()
                .filter_map(|(g, v)| openapi::group_version(SERVED, g, v).map(|doc| ((g, v), doc)))
                .collect(),
        })
    }

    /// How the fields of a served kind merge in a strategic merge patch.
    fn patch_schemas(&self, served: &catalog::Served) -> Option<&serde_json::Map<String, Value>> {
        self.openapi()
            .group_versions
            .iter()
            .find(|((g, v), _)| *g == served.group && *v == served.version)
            .and_then(|(_, doc)| doc.get("components")?.get("schemas")?.as_object())
    }

    fn openapi_document(&self, gv: &str) -> Response<Body> {
        let (group, version) = match gv.split('/').collect::<Vec<_>>()[..] {
            ["api", version] => ("", version),
            ["apis", group, version] => (group, version),
            _ => ("", ""),
        };
        let doc = self
            .openapi()
            .group_versions
            .iter()
            .find(|((g, v), _)| *g == group && *v == version);
        match doc {
            Some((_, doc)) => response::json(StatusCode::OK, doc),
            None => response::not_found(format!("no OpenAPI document for {gv}")),
        }
    }
}

/// What kubectl's typed commands send instead of JSON.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

impl Call {
    /// The body as JSON; kubectl's protobuf bodies are turned into the JSON
    /// they stand for, so every handler reads one form.
    fn json_body(&self) -> Result<Value, Response<Body>> {
        let media = self.content_type.split(';').next().unwrap_or("").trim();
        match media {
            PROTOBUF => protobuf::to_json(&self.body)
                .map_err(|e| response::bad_request(e.to_string())),
            "" | response::JSON => serde_json::from_slice(&self.body).map_err(|e| {
                response::bad_request(format!(
                    "the body of the request could not be decoded as JSON: {e}"
                ))
            }),
            other => Err(response::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, {PROTOBUF} (got {other:?})"
            ))),
        }
    }
}

/// Reads what every handler needs from a request, its body included.
async fn read_call(req: Request<Body>, path: &str) -> Result<Call, Response<Body>> {
    let (parts, body) = req.into_parts();
    let query =
        Query::parse(parts.uri.query()).map_err(|e| response::bad_request(e.to_string()))?;
    let header = |name: http::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let include = parts
        .uri
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "includeObject")
                .map(|(_, v)| Include::parse(&v))
        })
        .unwrap_or_default();
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        response::status(&crate::status::failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body could not be read: {e}"),
            None,
        ))
    })?;
    Ok(Call {
        caller: Caller::in_extensions(&parts.extensions),
        method: format!("{} {path}", parts.method),
        verb: parts.method,
        table: table::wanted(header(http::header::ACCEPT).as_deref()),
        include,
        content_type: header(http::header::CONTENT_TYPE).unwrap_or_default(),
        query,
        body,
    })
}
