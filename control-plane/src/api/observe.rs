//! A tower layer counting every gRPC call by method and status (REST
//! requests by verb, resource and HTTP status), and timing it to the
//! response head (for streams: until the stream is established).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use crate::metrics::{Metrics, RestLabel};

#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
}

impl ObserveLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// gRPC reports failures of unary calls in the response head
/// (trailers-only); anything else counts as OK here.
fn status_code(headers: &http::HeaderMap) -> String {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(|c| format!("{:?}", tonic::Code::from(c)))
        .unwrap_or_else(|| "Ok".to_string())
}

impl<S, B, RB> Service<http::Request<B>> for Observe<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let grpc = crate::protocol::is_grpc(req.headers());
        let path = req.uri().path().to_string();
        let verb = req.method().clone();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(resp) if !grpc => resp.status().as_u16().to_string(),
                Ok(resp) => status_code(resp.headers()),
                Err(_) => "Transport".to_string(),
            };
            // REST requests are labelled by the REST router (verb and
            // resource); one it did not answer, by its verb alone.
            let method = match &result {
                _ if grpc => path,
                Ok(resp) => resp
                    .extensions()
                    .get::<RestLabel>()
                    .map_or_else(|| format!("{verb} unrouted"), |l| l.0.clone()),
                Err(_) => format!("{verb} unrouted"),
            };
            metrics.observe_request(&method, &code, started.elapsed());
            result
        })
    }
}
