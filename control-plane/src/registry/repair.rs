//! The endpoints controller's second half, for control planes sharing a
//! store. A write derives EndpointSlices inside its own transaction from
//! the state its control plane holds; two control planes writing at once (a
//! Service on one, its Pods on the other) may each miss the other's object.
//! The leader therefore re-derives the slices of every Service that a write
//! from another control plane touched (the Service, the Services selecting
//! a Pod, or those with an endpoint on a Node, whose zone they carry) and
//! writes what differs, fenced on its leader key.
//! Slices that are right already make an empty write, which commits nothing.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use switchyard_api::resources::{Kind, Object};

use super::state::Event;
use super::{Attempt, Registry, Result};
use crate::controller::endpoints;
use crate::controller::slices::{services_with_endpoints_on, sync_service_slices};
use crate::store::key_of;
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

    /// Records the Pods, Services and Nodes of a write the watch delivered,
    /// unless this control plane made it.
    pub fn delivered(&self, revision: u64, events: &[Event]) {
        if !self.enabled() || lock(&self.own).remove(&revision) {
            return;
        }
        let mut touched = lock(&self.touched);
        touched.extend(
            events
                .iter()
                .filter(|e| matches!(e.object.kind(), Kind::Pod | Kind::Service | Kind::Node))
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
            Ok((checked, changed)) => {
                registry.metrics.endpoint_repairs.inc_by(checked as u64);
                if changed > 0 {
                    tracing::info!(
                        services = changed,
                        "repaired EndpointSlices another control plane's write had missed"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot repair EndpointSlices"),
        }
    }
}

impl Registry {
    /// Re-derives the slices of the Services `touched` affects; how many
    /// Services it re-derived, and how many slices it changed.
    async fn repair(&self, touched: &[Arc<Object>]) -> Result<(usize, usize)> {
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
                    Object::Node(node) => {
                        let txn = super::Txn::new(state);
                        for svc in services_with_endpoints_on(&txn, &node.metadata.name) {
                            services.insert((svc.namespace().to_string(), key_of(&svc)));
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
            let mut prepared = txn.finish();
            let changed = prepared.batch.puts.len() + prepared.batch.deletes.len();
            prepared.batch.fence = lease.filter(|l| *l != 0);
            Ok(Attempt::Write(prepared, (services.len(), changed)))
        })
        .await
    }
}
