//! Prometheus metrics for what operators watch: API traffic, store commit
//! time, connected agents, snapshot build and push cost, push latency
//! (commit → agent ACK) and NACKs. Served on `--metrics-listen`.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

fn push_latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<MethodLabel, Histogram>,
    pub store_commit: Histogram,
    pub agents_connected: Gauge,
    pub pushes: Counter,
    pub nacks: Counter,
    pub push_latency: Family<NodeLabel, Histogram>,
    pub push_bytes: Histogram,
    pub snapshot_build: Histogram,
    pub leader: Gauge,
    pub store_conflicts: Counter,
    pub nodes_not_ready: Gauge,
    pub endpoint_repairs: Counter,
    pub node_transitions: Family<ReadyLabel, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReadyLabel {
    /// "true" or "false": the Ready status the node turned to.
    pub ready: String,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("switchyard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "gRPC calls by method and status code",
            requests.clone(),
        );
        let request_duration = Family::<MethodLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "api_request_duration_seconds",
            "Time to the response head of each gRPC call",
            request_duration.clone(),
        );
        let store_commit = latency_histogram();
        registry.register(
            "store_commit_duration_seconds",
            "Durable store commits (sled transaction plus flush, or one etcd transaction) per write",
            store_commit.clone(),
        );
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
        let push_latency = Family::<NodeLabel, Histogram>::new_with_constructor(
            push_latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "snapshot_push_latency_seconds",
            "From the commit of a change to the ACK of the version holding it, per node",
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
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this control plane holds the leader lease (always, on sled)",
            leader.clone(),
        );
        let store_conflicts = Counter::default();
        registry.register(
            "store_conflicts",
            "Writes prepared again after another control plane changed what they read",
            store_conflicts.clone(),
        );
        let endpoint_repairs = Counter::default();
        registry.register(
            "endpoint_repairs",
            "Services whose EndpointSlices the leader re-derived after another control plane's write",
            endpoint_repairs.clone(),
        );
        let nodes_not_ready = Gauge::default();
        registry.register(
            "nodes_not_ready",
            "Nodes whose Ready condition is not True (as the leader last judged them)",
            nodes_not_ready.clone(),
        );
        let node_transitions = Family::<ReadyLabel, Counter>::default();
        registry.register(
            "node_ready_transitions",
            "Ready condition changes the node lifecycle controller wrote",
            node_transitions.clone(),
        );
        Arc::new(Metrics {
            registry,
            nodes_not_ready,
            node_transitions,
            endpoint_repairs,
            leader,
            store_conflicts,
            requests,
            request_duration,
            store_commit,
            agents_connected,
            pushes,
            nacks,
            push_latency,
            push_bytes,
            snapshot_build,
        })
    }

    pub fn observe_request(&self, method: &str, code: &str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.request_duration
            .get_or_create(&MethodLabel {
                method: method.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `GET /metrics`, in the OpenMetrics text format.
pub fn router(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new().route(
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
    )
}

/// Serves `app` (metrics and health) on `addr` until the process exits.
/// How a REST response names its request in the request metrics (verb
/// and resource, never an object's name): set by the REST router, read by
/// the metrics layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestLabel(pub String);

pub async fn serve(addr: SocketAddr, app: axum::Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics and health");
    axum::serve(listener, app).await
}
