//! Benchmark 6, API throughput: sustained Service and Pod writes per second
//! through the real API (each write a durable sled commit before it is
//! acknowledged), and list latency with every Service loaded. Loading the big
//! cluster *is* this benchmark; the store it leaves is cached for the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::context::Ctx;
use crate::control_plane::ControlPlane;
use crate::fixture::{self, Shape};
use crate::report::{Report, Row};
use crate::stats::Summary;

pub const BENCH: &str = "api-throughput";
/// Writes in flight at once, like a busy cluster's controllers and users.
const CONCURRENCY: usize = 64;

/// What loading one cluster measured.
pub struct LoadStats {
    pub services: Phase,
    pub pods: Phase,
    pub list_services_ms: Vec<f64>,
}

pub struct Phase {
    pub writes: usize,
    pub elapsed: Duration,
    pub latencies_ms: Vec<f64>,
}

impl Phase {
    pub fn per_second(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let shape = ctx.shape;
    report.setup(
        BENCH,
        format!(
            "fresh control plane (release build, sled store on local disk, every write flushed before it is acknowledged); \
             {} Services in {} namespaces, then {} Pods ({} per Service), {CONCURRENCY} writes in flight through the gRPC API; \
             list = one `List Service` over all namespaces.",
            shape.services,
            shape.namespaces(),
            shape.pods(),
            shape.endpoints
        ),
    );
    let stats = load_into_cache(ctx, &shape).await?;
    let scale = format!("{} svc / {} pods", shape.services, shape.pods());
    let x = shape.services as f64;
    for (case, phase) in [
        ("service-writes", &stats.services),
        ("pod-writes", &stats.pods),
    ] {
        report.push(
            Row::at(BENCH, &format!("{case}-per-second"), &scale, x).measured(
                "1/s",
                Summary::single(phase.per_second()),
                None,
            ),
        );
        if let Some(s) = Summary::of(&phase.latencies_ms) {
            report.push(
                Row::at(BENCH, &format!("{case}-latency"), &scale, x).measured("ms", s, None),
            );
        }
    }
    if let Some(s) = Summary::of(&stats.list_services_ms) {
        report.push(Row::at(BENCH, "list-all-services", &scale, x).measured("ms", s, None));
    }
    Ok(())
}

/// Loads `shape` into a fresh store, measuring it, and caches the store.
pub async fn load_into_cache(ctx: &Ctx, shape: &Shape) -> anyhow::Result<LoadStats> {
    let staging = ctx.work().join(format!("load-{}", shape.id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let cp = ControlPlane::start(&ctx.bins, &staging, ctx.work()).await?;
    let stats = load(&cp, shape).await?;
    cp.stop();
    let cached = ctx.cached_store(shape);
    let _ = std::fs::remove_dir_all(&cached);
    std::fs::create_dir_all(&ctx.cache)?;
    if std::fs::rename(&staging, &cached).is_err() {
        crate::control_plane::copy_dir(&staging, &cached)?;
    }
    Ok(stats)
}

/// Writes `shape` (namespaces, Services, then Pods) and lists it.
pub async fn load(cp: &ControlPlane, shape: &Shape) -> anyhow::Result<LoadStats> {
    let api = cp.api().await?;
    let namespaces: Vec<Value> = (0..shape.namespaces())
        .map(|n| fixture::namespace_json(&fixture::namespace(n * fixture::SERVICES_PER_NAMESPACE)))
        .collect();
    write_all(&api, namespaces)
        .await
        .context("creating namespaces")?;
    eprintln!("  loading {} services…", shape.services);
    let services = write_all(
        &api,
        (0..shape.services).map(fixture::service_json).collect(),
    )
    .await
    .context("creating services")?;
    eprintln!(
        "  {} services in {:.1}s; loading {} pods…",
        services.writes,
        services.elapsed.as_secs_f64(),
        shape.pods()
    );
    let pods: Vec<Value> = (0..shape.services)
        .flat_map(|i| (0..shape.endpoints).map(move |j| (i, j)))
        .map(|(i, j)| fixture::pod_json(shape, i, j, None))
        .collect();
    let pods = write_all(&api, pods).await.context("creating pods")?;
    eprintln!(
        "  {} pods in {:.1}s",
        pods.writes,
        pods.elapsed.as_secs_f64()
    );
    let mut list_services_ms = Vec::new();
    let mut client = api.clone();
    for _ in 0..10 {
        let t = Instant::now();
        let (n, _) = client.list("Service").await?;
        list_services_ms.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(n >= shape.services, "list returned {n} services");
    }
    Ok(LoadStats {
        services,
        pods,
        list_services_ms,
    })
}

/// Applies every object with [`CONCURRENCY`] writes in flight.
/// A client that writes objects: the gRPC API, or the REST API (`kube_api`).
pub trait Writer: Clone + Send + 'static {
    fn write(
        &mut self,
        obj: &Value,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

impl Writer for Api {
    async fn write(&mut self, obj: &Value) -> anyhow::Result<()> {
        self.apply(obj).await.map(|_| ())
    }
}

/// Writes every object with CONCURRENCY in flight, each write timed.
pub async fn write_all<W: Writer>(writer: &W, objects: Vec<Value>) -> anyhow::Result<Phase> {
    let objects = Arc::new(objects);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (objects, next, mut writer) = (objects.clone(), next.clone(), writer.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(obj) = objects.get(i) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let t = Instant::now();
                writer.write(obj).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
            }
        });
    }
    let mut latencies_ms = Vec::with_capacity(objects.len());
    while let Some(done) = tasks.join_next().await {
        latencies_ms.extend(done??);
    }
    Ok(Phase {
        writes: objects.len(),
        elapsed: started.elapsed(),
        latencies_ms,
    })
}
