//! Serving the accepted connections: HTTP/2 (gRPC, and REST for clients
//! that negotiate it) and HTTP/1.1 with upgrades (kubectl's port-forward
//! upgrades its connection to SPDY or WebSocket), on one listener. Each
//! request carries its connection's [`ConnInfo`] for the edge layer. On
//! shutdown accepting stops at once, HTTP/2 connections get GOAWAY and
//! HTTP/1.1 ones finish their request; the caller bounds how long open
//! streams may take.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use crate::listener::Conn;

/// How HTTP/2 connections are kept honest.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// Ping interval; a ping unanswered this long drops the connection.
    pub interval: Duration,
}

/// Serves every connection `incoming` yields with `service` until
/// `shutdown` resolves, then drains them.
pub async fn serve<S, B>(
    incoming: impl Stream<Item = std::io::Result<Conn>>,
    service: S,
    keepalive: Keepalive,
    shutdown: impl Future<Output = ()>,
) where
    S: tower::Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(keepalive.interval)
        .keep_alive_timeout(keepalive.interval);
    let graceful = GracefulShutdown::new();
    {
        tokio::pin!(incoming, shutdown);
        loop {
            let conn = tokio::select! {
                _ = &mut shutdown => break,
                conn = incoming.next() => conn,
            };
            match conn {
                Some(Ok(conn)) => serve_one(&builder, &graceful, conn, service.clone()),
                Some(Err(e)) => tracing::debug!(error = %e, "accepting a connection failed"),
                None => break,
            }
        }
        // `incoming` is dropped here: the listeners stop accepting.
    }
    graceful.shutdown().await;
}

fn serve_one<S, B>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    conn: Conn,
    service: S,
) where
    S: tower::Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let info = conn.info().clone();
    let service = service.map_request(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        req
    });
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(conn), TowerToHyperService::new(service))
        .into_owned();
    let watched = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = watched.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}
