//! The write path under faults made to happen: a real sled store wrapped so
//! a test can park chosen commits (to interleave two writes exactly), lose
//! races on purpose, or fail a commit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use switchyard_api::resources::{Kind, Object};
use tokio::sync::Notify;

use super::{Registry, RegistryConfig};
use crate::controller::endpoints::ZONE_LABEL;
use crate::metrics::Metrics;
use crate::store::{
    Batch, Loaded, LoggedEvent, Result, SledStore, Store, StoreError, Visitor, Watch,
};

/// A real sled store whose commits of Node writes wait, while `park` is
/// on, until the test lets them go; the next `conflicts` commits lose a race
/// they never ran, and with `fail` on the next one fails outright.
struct FaultyStore {
    inner: SledStore,
    park: AtomicBool,
    parked: Notify,
    release: Notify,
    conflicts: AtomicUsize,
    fail: AtomicBool,
}

impl FaultyStore {
    fn open(dir: &std::path::Path) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner: SledStore::open(dir).unwrap(),
            park: AtomicBool::new(false),
            parked: Notify::new(),
            release: Notify::new(),
            conflicts: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        })
    }
}

impl Store for FaultyStore {
    fn load<'a>(&'a self, visit: &'a mut Visitor<'_>) -> BoxFuture<'a, Result<Loaded>> {
        self.inner.load(visit)
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let lose = |n: usize| n.checked_sub(1);
            if self
                .conflicts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, lose)
                .is_ok()
            {
                return Err(StoreError::Conflict { seen: 0 });
            }
            if self.fail.swap(false, Ordering::SeqCst) {
                return Err(StoreError::Backend("IO error: injected".into()));
            }
            let node = batch.puts.iter().any(|p| p.object.kind() == Kind::Node);
            if node && self.park.swap(false, Ordering::SeqCst) {
                self.parked.notify_one();
                self.release.notified().await;
            }
            self.inner.commit(batch).await
        })
    }

    fn watch(&self, after: u64) -> BoxFuture<'_, Result<Watch>> {
        self.inner.watch(after)
    }

    fn failing(&self) -> Option<String> {
        self.inner.failing()
    }

    fn events_after(&self, after: u64, until: u64) -> BoxFuture<'_, Result<Vec<LoggedEvent>>> {
        self.inner.events_after(after, until)
    }

    fn compact(&self, keep_from: u64) -> BoxFuture<'_, Result<()>> {
        self.inner.compact(keep_from)
    }
}

async fn open(dir: &std::path::Path) -> (Arc<FaultyStore>, Arc<Registry>) {
    let store = FaultyStore::open(dir);
    let cfg = RegistryConfig {
        service_cidrs: "10.96.0.0/12".parse().unwrap(),
        node_port_range: 30000..=32767,
        lb_pool: None,
        log_retention: 10_000,
    };
    let registry = Registry::open(store.clone(), cfg, Metrics::new(), super::Sharing::Alone)
        .await
        .unwrap();
    (store, registry)
}

fn service(name: &str) -> Object {
    let svc = serde_json::json!({
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [{"port": 80}]},
    });
    object(Kind::Service, svc)
}

fn object(kind: Kind, value: serde_json::Value) -> Object {
    Object::from_value(kind, value).unwrap()
}

fn node(zone: &str) -> Object {
    object(
        Kind::Node,
        serde_json::json!({"metadata": {"name": "node-1", "labels": {ZONE_LABEL: zone}}}),
    )
}

/// The zones web's slices give its endpoints.
fn endpoint_zones(registry: &Registry, service: &str) -> Vec<Option<String>> {
    let (slices, _) = registry.list(Kind::EndpointSlice, Some("default"), &Default::default());
    slices
        .iter()
        .filter_map(|o| match o {
            Object::EndpointSlice(s) if s.service_name() == Some(service) => Some(s),
            _ => None,
        })
        .flat_map(|s| s.endpoints.iter().map(|e| e.zone.clone()))
        .collect()
}

/// A Service created while its endpoint's node changes zone must not keep
/// the old zone: it read the node, so it may not commit beside the zone
/// change (issue 24, defect 1). Fails on a write path that claims only
/// what a write writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_created_during_a_zone_change_gets_the_new_zone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, registry) = open(dir.path()).await;
    registry.apply(node("zone-0"), false).await.unwrap();
    let pod = serde_json::json!({
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
        "status": {"podIP": "10.244.1.10"},
    });
    registry.apply(object(Kind::Pod, pod), false).await.unwrap();

    let rounds = 1000;
    let mut stale = 0;
    for round in 1..=rounds {
        let zone = format!("zone-{round}");
        store.park.store(true, Ordering::SeqCst);
        let zone_change = tokio::spawn({
            let (registry, zone) = (registry.clone(), zone.clone());
            async move { registry.apply(node(&zone), false).await.map(|_| ()) }
        });
        store.parked.notified().await;
        // The zone change holds its claim, parked in the store; the
        // Service prepares now, reading the node's old zone.
        let name = format!("web-{round}");
        let create = tokio::spawn({
            let (registry, name) = (registry.clone(), name.clone());
            let svc = serde_json::json!({
                "metadata": {"name": name},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
            });
            async move {
                registry
                    .apply(object(Kind::Service, svc), false)
                    .await
                    .map(|_| ())
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        store.release.notify_one();
        zone_change.await.unwrap().unwrap();
        create.await.unwrap().unwrap();
        if endpoint_zones(&registry, &name) != vec![Some(zone)] {
            stale += 1;
        }
        registry
            .delete(Kind::Service, "default", &name)
            .await
            .unwrap();
    }
    println!("{stale} of {rounds} Services created during a zone change kept the old zone");
    assert_eq!(stale, 0);
}

/// A write that loses races prepares again against the newer state, up to
/// its limit of tries; each lost race is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_loses_races_prepares_again_and_then_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let (store, registry) = open(dir.path()).await;
    store.conflicts.store(3, Ordering::SeqCst);
    let (svc, _) = registry.apply(service("web"), false).await.unwrap();
    assert_eq!(registry.metrics.store_conflicts.get(), 3);
    assert_eq!(registry.get(Kind::Service, "default", "web").unwrap(), svc);

    store.conflicts.store(100, Ordering::SeqCst);
    let lost = registry.apply(service("api"), false).await.unwrap_err();
    assert_eq!(
        lost.to_string(),
        "conflict: another write changed an object or allocation this one read (store at revision 0)"
    );
    assert_eq!(registry.metrics.store_conflicts.get(), 3 + 16);
    assert!(registry.get(Kind::Service, "default", "api").is_err());
}

/// A commit the store fails changes nothing: no object, no allocation held,
/// and the next write takes what the failed one would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, registry) = open(dir.path()).await;
    let allocations = registry.with_state(|s| s.allocations.len());
    store.fail.store(true, Ordering::SeqCst);
    let failed = registry.apply(service("web"), false).await.unwrap_err();
    assert_eq!(failed.to_string(), "storage: IO error: injected");
    assert!(registry.get(Kind::Service, "default", "web").is_err());
    assert_eq!(registry.with_state(|s| s.allocations.len()), allocations);
    let (svc, _) = registry.apply(service("web"), false).await.unwrap();
    let Object::Service(svc) = svc else {
        panic!("not a Service")
    };
    assert!(svc.spec.cluster_ip.is_some() && svc.spec.ports[0].node_port.is_some());
    assert_eq!(
        registry.with_state(|s| s.allocations.len()),
        allocations + 2
    );
}
