//! The edge: a tower layer that turns each request's connection into a
//! [`Caller`] once, before any handler runs. A request from nobody (no
//! certificate, or one the CA did not sign, that expired or was revoked)
//! is answered UNAUTHENTICATED here, except the join call. Streams of a
//! user or node are cut the moment that identity is revoked: the response
//! body ends with UNAUTHENTICATED trailers, which ends the handler's stream
//! too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use switchyard_tls::server::Peer;
use tower::{Layer, Service};

use super::principal::{Caller, Principal};
use super::Authenticator;
use crate::listener::ConnInfo;

/// The one call open to a caller without a certificate.
pub const JOIN_PATH: &str = "/switchyard.v1.Identity/Join";

#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Authenticate<S> {
        Authenticate {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type Response = http::Response<tonic::body::Body>;

fn unauthenticated(reason: &str) -> Response {
    tonic::Status::unauthenticated(format!("Unauthorized: {reason}")).into_http()
}

/// The REST API's refusal: a Kubernetes Status, 401, as kubectl expects.
fn unauthorized(reason: &str) -> Response {
    let status = crate::status::failure(
        http::StatusCode::UNAUTHORIZED,
        "Unauthorized",
        format!("Unauthorized: {reason}"),
        None,
    );
    let body = serde_json::to_vec(&status).unwrap_or_default();
    let mut response = http::Response::new(tonic::body::Body::new(axum::body::Body::from(body)));
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl<S, B> Service<http::Request<B>> for Authenticate<S>
where
    S: Service<http::Request<B>, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let conn = req.extensions().get::<ConnInfo>().cloned();
        let remote = conn.as_ref().and_then(|c| c.remote);
        let peer = conn.map(|c| c.peer).unwrap_or(Peer::Anonymous);
        // Subscribed before the check, so a revocation right after it is seen.
        let revocations = self.auth.revocations();
        let grpc = crate::protocol::is_grpc(req.headers());
        let open = match grpc {
            true => req.uri().path() == JOIN_PATH,
            false => super::policy::is_public_path(req.uri().path()),
        };
        let principal = match self.auth.authenticate(&peer) {
            Ok(Principal::Anonymous) if !open => {
                Err("a client certificate signed by the cluster CA is required".to_string())
            }
            other => other,
        };
        let principal = match principal {
            Ok(p) => p,
            Err(reason) => {
                tracing::info!(%reason, ?remote, method = req.uri().path(), "refused an unauthenticated request");
                let refusal = match grpc {
                    true => unauthenticated(&reason),
                    false => unauthorized(&reason),
                };
                return Box::pin(std::future::ready(Ok(refusal)));
            }
        };
        let guarded = matches!(principal, Principal::User { .. } | Principal::Node { .. });
        req.extensions_mut().insert(Caller { principal, remote });
        let response = self.inner.call(req);
        let auth = self.auth.clone();
        Box::pin(async move {
            let response = response.await?;
            if !guarded {
                return Ok(response);
            }
            let revoked = Box::pin(auth.until_revoked(peer, revocations));
            Ok(response.map(|body| tonic::body::Body::new(Guarded::new(body, revoked))))
        })
    }
}

type Revoked = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A response body that ends early, with UNAUTHENTICATED, once its
/// caller is revoked.
struct Guarded {
    inner: tonic::body::Body,
    /// `None` once the inner body sent its own trailers.
    revoked: Option<Revoked>,
    cut: bool,
}

impl Guarded {
    fn new(inner: tonic::body::Body, revoked: Revoked) -> Self {
        Self {
            inner,
            revoked: Some(revoked),
            cut: false,
        }
    }
}

fn revoked_trailers() -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("16"));
    trailers.insert(
        "grpc-message",
        http::HeaderValue::from_static("Unauthorized: the certificate was revoked"),
    );
    trailers
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(None);
        }
        if let Some(revoked) = this.revoked.as_mut() {
            if revoked.as_mut().poll(cx).is_ready() {
                this.cut = true;
                return Poll::Ready(Some(Ok(Frame::trailers(revoked_trailers()))));
            }
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame {
            if f.is_trailers() {
                this.revoked = None;
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.cut || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
