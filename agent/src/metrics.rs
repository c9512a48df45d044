//! The agent's Prometheus metrics: how long each nftables sync takes, how
//! many fail, which version is applied, whether the stream is up, and how
//! often the table had to be repaired, and how the DNS responder's
//! forwarding holds up under its cap. Served on `--metrics-listen`.
//!
//! Beside its own (`switchyard_agent_*`) it exports the kube-proxy metrics
//! operators already alert on, under kube-proxy's names and meanings, so
//! existing dashboards and alerts work unchanged.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::dns::ForwardMetrics;

pub struct Metrics {
    registry: Registry,
    pub sync_duration: Histogram,
    pub sync_errors: Counter,
    pub last_sync: Gauge<f64, AtomicU64>,
    pub programming_duration: Histogram,
    pub service_changes: Counter,
    pub endpoint_changes: Counter,
    pub applied_version: Gauge,
    pub connected: Gauge,
    pub repairs: Counter,
    pub nft_fallbacks: Counter,
    pub mirror_pods: Gauge,
    /// The DNS responder's forwarding: its cap, in flight, coalesced.
    pub dns_forward: ForwardMetrics,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut root = Registry::default();
        let kube_proxy = KubeProxy::register(&mut root);
        let registry = root.sub_registry_with_prefix("switchyard_agent");
        let sync_duration = kube_proxy.sync_duration.clone();
        registry.register(
            "sync_duration_seconds",
            "Time to fold a push and apply its nftables transaction",
            sync_duration.clone(),
        );
        let sync_errors = kube_proxy.sync_failures.clone();
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
        let mirror_pods = Gauge::default();
        registry.register(
            "mirror_pods",
            "Pods the --pod-manifests files declare (mirror pods of this node)",
            mirror_pods.clone(),
        );
        let dns_forward = ForwardMetrics::default();
        registry.register(
            "dns_forward_max_concurrent_rejects",
            "DNS questions for outside names REFUSED at once because --dns-forward-max were waiting on upstreams (CoreDNS: coredns_forward_max_concurrent_rejects_total)",
            dns_forward.max_concurrent_rejects.clone(),
        );
        registry.register(
            "dns_forwards_in_flight",
            "DNS questions waiting on upstream resolvers now (at most --dns-forward-max)",
            dns_forward.in_flight.clone(),
        );
        registry.register(
            "dns_forward_coalesced",
            "DNS questions that joined an identical one already waiting on upstreams",
            dns_forward.coalesced.clone(),
        );
        registry.register(
            "dns_forward_failures",
            "Forwarded DNS questions no upstream answered (the client got SERVFAIL)",
            dns_forward.failures.clone(),
        );
        Arc::new(Metrics {
            dns_forward,
            nft_fallbacks,
            mirror_pods,
            registry: root,
            sync_duration,
            sync_errors,
            last_sync: kube_proxy.last_sync,
            programming_duration: kube_proxy.programming_duration,
            service_changes: kube_proxy.service_changes,
            endpoint_changes: kube_proxy.endpoint_changes,
            applied_version,
            connected,
            repairs,
        })
    }

    /// A sync went through: the data path holds what it was sent.
    pub fn synced(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_sync.set(now.as_secs_f64());
    }

    /// A change committed at `committed_unix_micros` is in the data path.
    pub fn programmed(&self, committed_unix_micros: i64) {
        let Some(micros) = u64::try_from(committed_unix_micros).ok().filter(|m| *m > 0) else {
            return;
        };
        let committed = UNIX_EPOCH + Duration::from_micros(micros);
        let elapsed = SystemTime::now()
            .duration_since(committed)
            .unwrap_or_default();
        self.programming_duration.observe(elapsed.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// kube-proxy's metrics (pkg/proxy/metrics), which share their values with
/// the agent's own where both exist.
struct KubeProxy {
    sync_duration: Histogram,
    sync_failures: Counter,
    last_sync: Gauge<f64, AtomicU64>,
    programming_duration: Histogram,
    service_changes: Counter,
    endpoint_changes: Counter,
}

impl KubeProxy {
    fn register(root: &mut Registry) -> KubeProxy {
        let sync_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        root.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds: folding a push and applying its nftables transaction",
            sync_duration.clone(),
        );
        let last_sync = Gauge::<f64, AtomicU64>::default();
        root.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time the data path was found or made to hold what this node was sent",
            last_sync.clone(),
        );
        let programming_duration = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        root.register(
            "kubeproxy_network_programming_duration_seconds",
            "From the commit of a change on the control plane to its nftables transaction applied on this node",
            programming_duration.clone(),
        );
        let sync_failures = Counter::default();
        root.register(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures",
            "nftables transactions that failed (the push was NACKed and is retried)",
            sync_failures.clone(),
        );
        let endpoint_changes = Counter::default();
        root.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "Services whose endpoints a push changed",
            endpoint_changes.clone(),
        );
        let service_changes = Counter::default();
        root.register(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Services a push added, removed or changed other than in their endpoints",
            service_changes.clone(),
        );
        KubeProxy {
            sync_duration,
            sync_failures,
            last_sync,
            programming_duration,
            service_changes,
            endpoint_changes,
        }
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
