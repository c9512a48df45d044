//! The registry: the one place objects are written. Every write runs under a
//! single writer lock (the store's revision is global, like etcd's), is
//! prepared purely against the in-memory state, committed to the store as
//! one batch, and only then made visible to readers and watchers.

mod error;
mod prepare;
pub mod state;
mod type_change;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::SeedableRng;
use switchyard_api::resources::{
    Kind, Namespace, Node, Object, ObjectMeta, Pod, DEFAULT_NAMESPACE,
};
use tokio::sync::{broadcast, Mutex};

pub use error::{RegistryError, Result};
pub use state::Event;
pub use watch::WatchStart;

use crate::allocator::cluster_ip::ClusterIpRange;
use crate::allocator::lb_ip::LbPool;
use crate::allocator::node_port::NodePortRange;
use crate::allocator::service::{held_by, Ranges};
use crate::controller::endpoints;
use crate::metrics::Metrics;
use crate::selector::Selector;
use crate::store::{ObjectKey, Store, StoreError};
use crate::validation::Config as ValidationConfig;
pub(crate) use prepare::stamp_identity;
use prepare::{deployment_status, prepare, Limits};
pub use state::Txn;
use state::{key_of, object_key, State};

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub service_cidr: Ipv4Net,
    pub node_port_range: std::ops::RangeInclusive<u16>,
    pub lb_pool: Option<Ipv4Net>,
    /// How many revisions of history watches can resume from.
    pub log_retention: u64,
}

/// What an apply did, as `kubectl apply` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

pub struct Registry {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    state: RwLock<State>,
    writer: Mutex<StdRng>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
    validation: ValidationConfig,
    ranges: Ranges,
    log_retention: u64,
}

/// Reads the store into memory, decoding each object as it is read, so
/// start-up never holds a copy of every raw record next to the decoded
/// objects (at 100,000 Pods that copy cost ~90 MiB of peak RSS).
fn load_state(store: &dyn Store) -> std::result::Result<State, StoreError> {
    let mut objects: BTreeMap<Kind, BTreeMap<ObjectKey, Arc<Object>>> = BTreeMap::new();
    let loaded = store.load(&mut |kind, key, json| {
        let obj = Object::from_json(kind, json).map_err(|e| StoreError::Corrupt {
            tree: kind.plural().to_string(),
            detail: format!("{key}: {e}"),
        })?;
        objects.entry(kind).or_default().insert(key, Arc::new(obj));
        Ok(())
    })?;
    Ok(State {
        revision: loaded.revision,
        objects,
        allocations: loaded.allocations.into_iter().collect(),
    })
}

impl Registry {
    /// Loads the store and makes sure the `default` namespace exists.
    pub async fn open(
        store: Arc<dyn Store>,
        cfg: RegistryConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Registry>> {
        let state = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || load_state(store.as_ref()))
                .await
                .map_err(|e| RegistryError::Internal(e.to_string()))??
        };
        let (events, _) = broadcast::channel(4096);
        let registry = Arc::new(Registry {
            store,
            metrics,
            state: RwLock::new(state),
            writer: Mutex::new(StdRng::from_os_rng()),
            events,
            validation: ValidationConfig {
                service_cidr: cfg.service_cidr,
                node_port_range: cfg.node_port_range.clone(),
            },
            ranges: Ranges {
                cluster_ips: ClusterIpRange::new(cfg.service_cidr),
                node_ports: NodePortRange::new(cfg.node_port_range),
                lb_pool: cfg.lb_pool.map(LbPool::new),
            },
            log_retention: cfg.log_retention.max(1),
        });
        registry.ensure_default_namespace().await?;
        Ok(registry)
    }

    async fn ensure_default_namespace(&self) -> Result<()> {
        if self
            .read()
            .get(Kind::Namespace, DEFAULT_NAMESPACE)
            .is_some()
        {
            return Ok(());
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: DEFAULT_NAMESPACE.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        self.apply(Object::Namespace(Box::new(ns)), false)
            .await
            .map(|_| ())
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A poisoned lock means a panic mid-update of plain maps; the maps
        // are still structurally sound, so keep serving.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    /// Why the store refuses writes now, if it does.
    pub fn store_failing(&self) -> Option<String> {
        self.store.failing()
    }

    /// Creates or updates an object (`create_only` refuses updates).
    #[tracing::instrument(skip_all, fields(kind = %obj.kind(), name = %obj.name()))]
    pub async fn apply(&self, mut obj: Object, create_only: bool) -> Result<(Object, Outcome)> {
        let kind = obj.kind();
        if kind.is_namespaced() && obj.namespace().is_empty() {
            obj.meta_mut().namespace = Some(DEFAULT_NAMESPACE.to_string());
        } else if !kind.is_namespaced() {
            obj.meta_mut().namespace = None;
        }
        let mut rng = self.writer.lock().await;
        let (commit, stored, outcome) = {
            let state = self.read();
            self.check_namespace(&state, &obj)?;
            let key = key_of(&obj);
            let old = state.get(kind, &key).cloned();
            if create_only && old.is_some() {
                return Err(RegistryError::AlreadyExists {
                    kind,
                    name: obj.name().to_string(),
                });
            }
            let limits = Limits {
                validation: &self.validation,
                ranges: &self.ranges,
            };
            let stored = prepare(obj, old.as_deref(), &state.allocations, &limits, &mut *rng)?;
            if let Some(old) = old.as_deref().filter(|o| state::same_content(o, &stored)) {
                return Ok((old.clone(), Outcome::Unchanged));
            }
            let outcome = if old.is_some() {
                Outcome::Configured
            } else {
                Outcome::Created
            };
            let mut txn = Txn::new(&state);
            record_allocations(&mut txn, old.as_deref(), Some(&stored));
            txn.put(stored);
            let new = txn.get(kind, &key);
            reconcile_endpoints(&mut txn, old.as_deref(), new.as_ref());
            let commit = txn.finish(state.revision + 1);
            (commit, key, outcome)
        };
        let events = self.commit(commit).await?;
        let obj = events
            .iter()
            .find(|e| e.object.kind() == kind && key_of(&e.object) == stored)
            .map(|e| (*e.object).clone())
            .ok_or_else(|| RegistryError::Internal("write produced no object".to_string()))?;
        Ok((obj, outcome))
    }

    /// Deletes an object and everything that hangs off it.
    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object> {
        let _rng = self.writer.lock().await;
        let (commit, old) = {
            let state = self.read();
            let key = object_key(kind, namespace, name);
            let old = state
                .get(kind, &key)
                .cloned()
                .ok_or_else(|| RegistryError::NotFound {
                    kind,
                    name: name.to_string(),
                })?;
            if kind == Kind::Namespace && name == DEFAULT_NAMESPACE {
                return Err(RegistryError::Forbidden {
                    kind,
                    name: name.to_string(),
                    reason: "this namespace may not be deleted".to_string(),
                });
            }
            let mut txn = Txn::new(&state);
            delete_with_dependents(&mut txn, &old);
            (txn.finish(state.revision + 1), old)
        };
        self.commit(commit).await?;
        Ok((*old).clone())
    }

    async fn commit(&self, commit: state::Commit) -> Result<Arc<Vec<Event>>> {
        if commit.is_empty() {
            return Ok(Arc::new(commit.events));
        }
        let store = self.store.clone();
        let batch = commit.batch;
        let started = std::time::Instant::now();
        let batch = tokio::task::spawn_blocking(move || store.commit(&batch).map(|_| batch))
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))??;
        self.metrics
            .store_commit
            .observe(started.elapsed().as_secs_f64());
        let events = Arc::new(commit.events);
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.apply(batch.revision, &events, &batch.claims, &batch.releases);
        }
        let _ = self.events.send(events.clone());
        self.maybe_compact(batch.revision);
        Ok(events)
    }

    /// Trims the revision log every few hundred writes, off the write path.
    fn maybe_compact(&self, revision: u64) {
        if !revision.is_multiple_of(256) || revision <= self.log_retention {
            return;
        }
        let store = self.store.clone();
        let keep_from = revision - self.log_retention;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.compact(keep_from) {
                tracing::warn!(error = %e, "revision log compaction failed");
            }
        });
    }

    fn check_namespace(&self, state: &State, obj: &Object) -> Result<()> {
        let kind = obj.kind();
        if kind.is_namespaced() && state.get(Kind::Namespace, obj.namespace()).is_none() {
            return Err(RegistryError::NotFound {
                kind: Kind::Namespace,
                name: obj.namespace().to_string(),
            });
        }
        Ok(())
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object> {
        let state = self.read();
        let obj = state
            .get(kind, &object_key(kind, namespace, name))
            .ok_or_else(|| RegistryError::NotFound {
                kind,
                name: name.to_string(),
            })?;
        Ok(decorate(&state, obj))
    }

    /// Whether the object exists, without copying it.
    pub fn contains(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.read()
            .get(kind, &object_key(kind, namespace, name))
            .is_some()
    }

    /// The node a pod is bound to (empty when none), without copying it.
    pub fn pod_node(&self, namespace: &str, name: &str) -> Result<String> {
        match self
            .read()
            .get(Kind::Pod, &object_key(Kind::Pod, namespace, name))
            .map(|o| &**o)
        {
            Some(Object::Pod(pod)) => Ok(pod.spec.node_name.clone().unwrap_or_default()),
            _ => Err(RegistryError::NotFound {
                kind: Kind::Pod,
                name: name.to_string(),
            }),
        }
    }

    /// Objects of a kind (`namespace: None` = all namespaces) matching the
    /// selector, with the revision they were read at.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> (Vec<Object>, u64) {
        let state = self.read();
        let namespace = namespace.filter(|_| kind.is_namespaced());
        let items = state
            .in_namespace(kind, namespace)
            .filter(|o| selector.matches(&o.meta().labels))
            .map(|o| decorate(&state, o))
            .collect();
        (items, state.revision)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<Event>>> {
        self.events.subscribe()
    }

    /// Subscribes and reads the state at one instant, so a consumer that
    /// builds from `f` and then follows the receiver misses nothing: every
    /// event it receives with a revision above the one `f` saw is new.
    pub async fn subscribe_with<T>(
        &self,
        f: impl FnOnce(&State) -> T,
    ) -> (broadcast::Receiver<Arc<Vec<Event>>>, T) {
        let _writer = self.writer.lock().await;
        let rx = self.events.subscribe();
        let state = self.read();
        (rx, f(&state))
    }

    /// Runs `f` over a consistent view of every object.
    pub fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.read())
    }

    /// A write the server makes on its own behalf (a join, a renewal):
    /// `f` reads and changes the overlay of the current state under the
    /// writer lock, and what it changed commits as one batch. Objects put
    /// here skip `prepare`, so `f` builds them whole.
    pub async fn write<T>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        let _writer = self.writer.lock().await;
        let (commit, out) = {
            let state = self.read();
            let mut txn = Txn::new(&state);
            let out = f(&mut txn)?;
            (txn.finish(state.revision + 1), out)
        };
        self.commit(commit).await?;
        Ok(out)
    }

    /// Records what a node's agent observed of a pod's readiness probe.
    /// Returns `false` when nothing changed.
    #[tracing::instrument(skip(self))]
    pub async fn set_pod_ready(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
        ready: bool,
    ) -> Result<bool> {
        let _rng = self.writer.lock().await;
        let commit = {
            let state = self.read();
            let key = object_key(Kind::Pod, namespace, name);
            let Some(Object::Pod(pod)) = state.get(Kind::Pod, &key).map(|o| (**o).clone()) else {
                return Err(RegistryError::NotFound {
                    kind: Kind::Pod,
                    name: name.to_string(),
                });
            };
            if pod.spec.node_name.as_deref() != Some(node) {
                return Err(RegistryError::Forbidden {
                    kind: Kind::Pod,
                    name: name.to_string(),
                    reason: format!("node {node:?} does not run this pod"),
                });
            }
            if pod.is_ready() == ready {
                return Ok(false);
            }
            let old = Object::Pod(pod.clone());
            let mut pod = pod;
            prepare::set_ready_condition(&mut pod, ready);
            let mut txn = Txn::new(&state);
            let new = Object::Pod(pod);
            txn.put(new.clone());
            reconcile_endpoints(&mut txn, Some(&old), Some(&new));
            txn.finish(state.revision + 1)
        };
        self.commit(commit).await?;
        Ok(true)
    }
}

/// Adds what is computed at read time: a Deployment's replica counts.
fn decorate(state: &State, obj: &Arc<Object>) -> Object {
    let mut obj = (**obj).clone();
    if let Object::Deployment(d) = &mut obj {
        let ns = d.metadata.namespace.clone();
        let pods = state
            .in_namespace(Kind::Pod, ns.as_deref())
            .filter_map(|o| match &**o {
                Object::Pod(p) => Some(p),
                _ => None,
            });
        deployment_status(d, pods);
    }
    obj
}

fn record_allocations(txn: &mut Txn<'_>, old: Option<&Object>, new: Option<&Object>) {
    let held = |o: Option<&Object>| match o {
        Some(Object::Service(s)) => held_by(s),
        _ => Default::default(),
    };
    let (before, after) = (held(old), held(new));
    for key in before.difference(&after) {
        txn.release(*key);
    }
    if let Some(owner) = new.map(key_of) {
        for key in after.difference(&before) {
            txn.claim(*key, owner.clone());
        }
    }
}

fn delete_with_dependents(txn: &mut Txn<'_>, obj: &Object) {
    let mut doomed = vec![obj.clone()];
    if let Object::Namespace(ns) = obj {
        for kind in Kind::ALL.into_iter().filter(|k| k.is_namespaced()) {
            doomed.extend(txn.list(kind, &ns.metadata.name));
        }
    }
    for o in &doomed {
        record_allocations(txn, Some(o), None);
        txn.delete(o.kind(), key_of(o));
    }
    if !matches!(obj, Object::Namespace(_)) {
        reconcile_endpoints(txn, Some(obj), None);
    }
}

/// Re-runs the endpoints controller for every Service a Service or Pod
/// change can affect, writing the slice differences into the same write.
fn reconcile_endpoints(txn: &mut Txn<'_>, old: Option<&Object>, new: Option<&Object>) {
    let services: Vec<Object> = match (old, new) {
        (_, Some(svc @ Object::Service(_))) | (Some(svc @ Object::Service(_)), None) => {
            vec![svc.clone()]
        }
        (Some(Object::Node(o)), Some(Object::Node(n))) if zone_of(o) != zone_of(n) => {
            services_with_endpoints_on(txn, &n.metadata.name)
        }
        (Some(Object::Pod(_)), _) | (_, Some(Object::Pod(_))) => {
            let ns = old
                .or(new)
                .map(|o| o.namespace().to_string())
                .unwrap_or_default();
            txn.list_where(Kind::Service, &ns, |s| {
                let Object::Service(svc) = s else {
                    return false;
                };
                [old, new].into_iter().flatten().any(|p| match p {
                    Object::Pod(pod) => endpoints::selects(svc, pod),
                    _ => false,
                })
            })
        }
        _ => Vec::new(),
    };
    for svc in services {
        sync_service_slices(txn, &svc);
    }
}

fn zone_of(node: &Node) -> Option<&String> {
    node.metadata.labels.get(endpoints::ZONE_LABEL)
}

/// The zones of the nodes `pods` run on, which their endpoints carry.
fn node_zones(txn: &Txn<'_>, pods: &[Pod]) -> endpoints::NodeZones {
    let nodes: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.spec.node_name.as_deref())
        .collect();
    nodes
        .into_iter()
        .filter_map(
            |name| match txn.get(Kind::Node, &object_key(Kind::Node, "", name))? {
                Object::Node(n) => Some((name.to_string(), zone_of(&n)?.clone())),
                _ => None,
            },
        )
        .collect()
}

/// The Services whose slices list an endpoint on `node`: a change of the
/// node's zone changes their endpoints.
fn services_with_endpoints_on(txn: &Txn<'_>, node: &str) -> Vec<Object> {
    let on_node = |o: &Object| match o {
        Object::EndpointSlice(s) => {
            s.is_managed()
                && s.endpoints
                    .iter()
                    .any(|e| e.node_name.as_deref() == Some(node))
        }
        _ => false,
    };
    let keys: BTreeSet<ObjectKey> = txn
        .list_all_where(Kind::EndpointSlice, on_node)
        .iter()
        .filter_map(|o| match o {
            Object::EndpointSlice(s) => {
                Some(object_key(Kind::Service, o.namespace(), s.service_name()?))
            }
            _ => None,
        })
        .collect();
    keys.iter()
        .filter_map(|key| txn.get(Kind::Service, key))
        .collect()
}

fn sync_service_slices(txn: &mut Txn<'_>, svc_obj: &Object) {
    let Object::Service(svc) = svc_obj else {
        return;
    };
    let ns = svc_obj.namespace().to_string();
    let live = txn.get(Kind::Service, &key_of(svc_obj));
    let desired = match &live {
        Some(Object::Service(live)) => {
            let selected = |o: &Object| matches!(o, Object::Pod(p) if endpoints::selects(live, p));
            let pods: Vec<_> = txn
                .list_where(Kind::Pod, &ns, selected)
                .into_iter()
                .filter_map(|o| match o {
                    Object::Pod(p) => Some(p),
                    _ => None,
                })
                .collect();
            let zones = node_zones(txn, &pods);
            endpoints::desired_slices(live, &pods, &zones)
        }
        _ => Vec::new(),
    };
    let owned = |o: &Object| match o {
        Object::EndpointSlice(s) => s.is_managed() && s.service_name() == Some(&svc.metadata.name),
        _ => false,
    };
    let existing: Vec<ObjectKey> = txn
        .list_where(Kind::EndpointSlice, &ns, owned)
        .iter()
        .map(key_of)
        .collect();
    let desired_keys: Vec<ObjectKey> = desired
        .iter()
        .map(|s| object_key(Kind::EndpointSlice, &ns, &s.metadata.name))
        .collect();
    for key in existing.into_iter().filter(|k| !desired_keys.contains(k)) {
        txn.delete(Kind::EndpointSlice, key);
    }
    for slice in desired {
        let key = object_key(Kind::EndpointSlice, &ns, &slice.metadata.name);
        let mut slice = Object::EndpointSlice(Box::new(slice));
        match txn.get(Kind::EndpointSlice, &key) {
            Some(old) => {
                let meta = slice.meta_mut();
                meta.uid = old.meta().uid.clone();
                meta.creation_timestamp = old.meta().creation_timestamp.clone();
                meta.resource_version = old.meta().resource_version.clone();
            }
            None => {
                let meta = slice.meta_mut();
                meta.uid = Some(uuid::Uuid::new_v4().to_string());
                meta.creation_timestamp = Some(prepare::now_rfc3339());
            }
        }
        txn.put(slice);
    }
}
