//! The agent's Prometheus metrics: how long each nftables sync takes, how
//! many fail, which version is applied, whether the stream is up, and how
//! often the table had to be repaired. Served on `--metrics-listen`.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    pub sync_duration: Histogram,
    pub sync_errors: Counter,
    pub applied_version: Gauge,
    pub connected: Gauge,
    pub repairs: Counter,
    pub nft_fallbacks: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("switchyard_agent");
        let sync_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "sync_duration_seconds",
            "Time to fold a push and apply its nftables transaction",
            sync_duration.clone(),
        );
        let sync_errors = Counter::default();
        registry.register(
            "sync_errors",
            "Pushes the data path failed to apply (NACKed)",
            sync_errors.clone(),
        );
        let applied_version = Gauge::default();
        registry.register(
            "applied_version",
            "Snapshot version the data path holds",
            applied_version.clone(),
        );
        let connected = Gauge::default();
        registry.register(
            "connected",
            "1 while the snapshot stream is open",
            connected.clone(),
        );
        let repairs = Counter::default();
        registry.register(
            "table_repairs",
            "Times the table was found changed by someone else and repaired",
            repairs.clone(),
        );
        let nft_fallbacks = Counter::default();
        registry.register(
            "nft_fallbacks",
            "Transactions applied with nft -f because netlink could not carry them",
            nft_fallbacks.clone(),
        );
        Arc::new(Metrics {
            nft_fallbacks,
            registry,
            sync_duration,
            sync_errors,
            applied_version,
            connected,
            repairs,
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on a bound listener (this process's, or the one
/// a predecessor handed over) until the process exits.
pub async fn serve(listener: std::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { metrics.render() }
        }),
    );
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, app).await
}
