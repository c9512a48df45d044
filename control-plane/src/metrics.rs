//! Prometheus metrics for what operators watch: API traffic, store commit
//! time, connected agents, snapshot build and push cost, push latency
//! (commit → agent ACK) and NACKs. Served on `--metrics-listen`.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    pub agents_connected: Gauge,
    pub pushes: Counter,
    pub nacks: Counter,
    pub push_latency: Histogram,
    pub push_bytes: Histogram,
    pub snapshot_build: Histogram,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("switchyard");
        let agents_connected = Gauge::default();
        registry.register(
            "agents_connected",
            "Agents with an open snapshot stream",
            agents_connected.clone(),
        );
        let pushes = Counter::default();
        registry.register(
            "snapshot_pushes",
            "Snapshot pushes sent to agents",
            pushes.clone(),
        );
        let nacks = Counter::default();
        registry.register("snapshot_nacks", "Pushes agents rejected", nacks.clone());
        let push_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "snapshot_push_latency_seconds",
            "From the commit of a change to an agent's ACK of the version holding it",
            push_latency.clone(),
        );
        let push_bytes = Histogram::new(exponential_buckets(64.0, 4.0, 12));
        registry.register(
            "snapshot_push_bytes",
            "Encoded size of each push",
            push_bytes.clone(),
        );
        let snapshot_build = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register(
            "snapshot_build_seconds",
            "Time to fold one coalesced burst of changes into the snapshot",
            snapshot_build.clone(),
        );
        Arc::new(Metrics {
            registry,
            agents_connected,
            pushes,
            nacks,
            push_latency,
            push_bytes,
            snapshot_build,
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` until the process exits.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics");
    axum::serve(listener, app).await
}
