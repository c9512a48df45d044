//! Races of the write path, made to happen: a store that parks chosen
//! commits lets a test interleave two writes exactly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use switchyard_api::resources::{Kind, Object};
use tokio::sync::Notify;

use super::{Registry, RegistryConfig};
use crate::controller::endpoints::ZONE_LABEL;
use crate::metrics::Metrics;
use crate::store::{Batch, Loaded, LoggedEvent, Result, SledStore, Store, Visitor, Watch};

/// A real sled store whose commits of Node writes wait, while `park` is
/// on, until the test lets them go.
struct ParkingStore {
    inner: SledStore,
    park: AtomicBool,
    parked: Notify,
    release: Notify,
}

impl Store for ParkingStore {
    fn load<'a>(&'a self, visit: &'a mut Visitor<'_>) -> BoxFuture<'a, Result<Loaded>> {
        self.inner.load(visit)
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
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
    let store = Arc::new(ParkingStore {
        inner: SledStore::open(dir.path()).unwrap(),
        park: AtomicBool::new(false),
        parked: Notify::new(),
        release: Notify::new(),
    });
    let cfg = RegistryConfig {
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_port_range: 30000..=32767,
        lb_pool: None,
        log_retention: 10_000,
    };
    let registry = Registry::open(store.clone(), cfg, Metrics::new(), super::Sharing::Alone)
        .await
        .unwrap();
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
