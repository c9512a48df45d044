//! The endpoints controller's second half, for control planes sharing a
//! store. A write derives EndpointSlices inside its own transaction from
//! the state its control plane holds; two control planes writing at once (a
//! Service on one, its Pods on the other) may each miss the other's object.
//! The leader therefore re-derives the slices of every Service that a write
//! from another control plane touched (the Service, or the Services
//! selecting a Pod) and writes what differs, fenced on its leader key.
//! Slices that are right already make an empty write, which commits nothing.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use switchyard_api::resources::{Kind, Object};

use super::state::{key_of, Event};
use super::{sync_service_slices, Attempt, Registry, Result};
use crate::controller::endpoints;
use crate::store::ObjectKey;

/// How often the leader repairs what other control planes' writes touched.
const EVERY: Duration = Duration::from_millis(500);

/// Pods and Services written by other control planes, not yet repaired.
#[derive(Default)]
pub(super) struct Foreign {
    /// Off until the store is shared (a store one process writes needs no repair).
    enabled: std::sync::atomic::AtomicBool,
    own: Mutex<HashSet<u64>>,
    touched: Mutex<Vec<Arc<Object>>>,
}

impl Foreign {
    pub fn enable(&self) {
        self.enabled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A revision this control plane committed (until its watch delivered it).
    pub fn committing(&self, revision: u64) {
        if self.enabled() {
            lock(&self.own).insert(revision);
        }
    }

    pub fn committed(&self, revision: u64) {
        if self.enabled() {
            lock(&self.own).remove(&revision);
        }
    }

    /// Records the Pods and Services of a write the watch delivered, unless
    /// this control plane made it.
    pub fn delivered(&self, revision: u64, events: &[Event]) {
        if !self.enabled() || lock(&self.own).remove(&revision) {
            return;
        }
        let mut touched = lock(&self.touched);
        touched.extend(
            events
                .iter()
                .filter(|e| matches!(e.object.kind(), Kind::Pod | Kind::Service))
                .map(|e| e.object.clone()),
        );
    }

    fn take(&self) -> Vec<Arc<Object>> {
        std::mem::take(&mut *lock(&self.touched))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs for as long as the registry lives.
pub async fn run(registry: Weak<Registry>) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        if !registry.is_leader() {
            // Another control plane leads and repairs; what piled up here
            // is its to repair.
            registry.foreign.take();
            continue;
        }
        let touched = registry.foreign.take();
        if touched.is_empty() {
            continue;
        }
        match registry.repair(&touched).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                services = n,
                "repaired EndpointSlices another control plane's write had missed"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot repair EndpointSlices"),
        }
    }
}

impl Registry {
    /// Re-derives the slices of the Services `touched` affects; how many
    /// Services' slices it changed.
    async fn repair(&self, touched: &[Arc<Object>]) -> Result<usize> {
        let lease = self.leader_lease();
        self.run(|state, _| {
            let mut services: BTreeSet<(String, ObjectKey)> = BTreeSet::new();
            for object in touched {
                let ns = object.namespace().to_string();
                match &**object {
                    Object::Service(_) => {
                        services.insert((ns, key_of(object)));
                    }
                    Object::Pod(pod) => {
                        for svc in state.in_namespace(Kind::Service, Some(&ns)) {
                            if let Object::Service(s) = &**svc {
                                if endpoints::selects(s, pod) {
                                    services.insert((ns.clone(), key_of(svc)));
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            let mut txn = super::Txn::new(state);
            for (_, key) in &services {
                if let Some(svc) = txn.get(Kind::Service, key) {
                    sync_service_slices(&mut txn, &svc);
                }
            }
            let mut batch = txn.finish();
            let changed = batch.puts.len() + batch.deletes.len();
            batch.fence = lease.filter(|l| *l != 0);
            Ok(Attempt::Write(batch, changed))
        })
        .await
    }
}
