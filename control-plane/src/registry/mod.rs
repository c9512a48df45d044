//! The registry: the one place objects are written. A write is prepared
//! purely against the in-memory state, committed to the store as one batch
//! guarded by what it read, and answered once the store's watch brought it
//! back into that state ([`feed`]), so every control plane on one store sees
//! the same history. A write that lost a race with another control plane
//! prepares again against the newer state. Writers of one process take turns
//! preparing (a writer lock) and commit side by side unless they touch the
//! same keys ([`inflight`]), so only writes from elsewhere ever conflict.

mod error;
mod feed;
mod inflight;
mod node_ready;
mod prepare;
#[cfg(test)]
mod race_tests;
mod repair;
pub mod state;
mod type_change;
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::SeedableRng;
use switchyard_api::resources::{Kind, Namespace, Object, ObjectMeta, DEFAULT_NAMESPACE};
use tokio::sync::{broadcast, watch as notify, Mutex};

pub use error::{RegistryError, Result};
pub use node_ready::NODE_NOT_READY;
pub use state::Event;
pub use watch::WatchStart;

use crate::allocator::cluster_ip::ServiceCidrs;
use crate::allocator::lb_ip::LbPool;
use crate::allocator::node_port::NodePortRange;
use crate::allocator::service::{held_by, Ranges};
use crate::controller::slices::reconcile_endpoints;
use crate::metrics::Metrics;
use crate::selector::Selector;
use crate::store::{key_of, object_key};
use crate::store::{Batch, ObjectKey, Store, StoreError};
use crate::validation::Config as ValidationConfig;
pub(crate) use prepare::stamp_identity;
use prepare::{deployment_status, prepare, Limits};
use state::State;
pub use state::Txn;

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub service_cidrs: ServiceCidrs,
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
    /// Writes take turns preparing (their commits overlap, see
    /// [`inflight`]); the turn holds the allocators' random source.
    prepare_turn: Mutex<PrepareTurn>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
    /// The revision the state has reached, for writers waiting on their own.
    applied: notify::Sender<u64>,
    inflight: inflight::InFlight,
    foreign: repair::Foreign,
    validation: ValidationConfig,
    ranges: Ranges,
    log_retention: u64,
    /// The revision the history was last compacted at.
    compacted: std::sync::atomic::AtomicU64,
    /// `Some(lease)` while this control plane leads (lease 0: it is the
    /// only one); what must run once checks it, and fences on the lease.
    leader: std::sync::Mutex<Option<i64>>,
}

/// Held by the write preparing now.
struct PrepareTurn {
    rng: StdRng,
}

/// How often a write prepares again after losing a race to another writer.
const CONFLICT_RETRIES: usize = 16;
/// How long a write waits for the store's watch to bring back its revision.
const APPLY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a write that lost a race waits for the winner's revision before
/// preparing again anyway (the conflicting key may have been deleted, which
/// leaves no revision to wait for).
const CONFLICT_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);
/// History is compacted every this many revisions.
const COMPACT_EVERY: u64 = 256;

/// The object `key` names, if it may be deleted.
fn deletable(state: &State, kind: Kind, key: &ObjectKey, name: &str) -> Result<Arc<Object>> {
    let old = state
        .get(kind, key)
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
    Ok(old)
}

/// Which page of a list to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest<'a> {
    /// The key the previous page ended with.
    pub after: Option<&'a str>,
    pub limit: Option<usize>,
}

/// A page of a list, and where the next one starts.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Object>,
    /// The last item's key, when more remain.
    pub last: Option<ObjectKey>,
    pub remaining: usize,
    pub revision: u64,
}

/// How an apply may write.
#[derive(Debug, Clone, Default)]
pub struct Write {
    /// Refuse an object that exists (POST).
    pub create_only: bool,
    /// Refuse an object that does not exist (PUT, PATCH).
    pub update_only: bool,
    /// Prepare whole (validation, defaults, allocations), commit nothing.
    pub dry_run: bool,
    /// The caller read the object at this resourceVersion: refuse the
    /// write if it changed since (Kubernetes' optimistic concurrency).
    pub precondition: Option<String>,
}

impl Write {
    fn admits(&self, obj: &Object, old: Option<&Object>) -> Result<()> {
        let (kind, name) = (obj.kind(), obj.name().to_string());
        match old {
            Some(_) if self.create_only => Err(RegistryError::AlreadyExists { kind, name }),
            None if self.update_only => Err(RegistryError::NotFound { kind, name }),
            Some(old)
                if self
                    .precondition
                    .as_ref()
                    .is_some_and(|v| old.meta().resource_version.as_ref() != Some(v)) =>
            {
                Err(RegistryError::Conflict { kind, name })
            }
            _ => Ok(()),
        }
    }
}

/// What one try of a write came to.
enum Attempt<T> {
    /// Nothing to write: answer `T` now.
    Done(T),
    /// Commit the write, then answer `T`.
    Write(state::Prepared, T),
}

/// Reads the store into memory, decoding each object as it is read, so
/// start-up never holds a copy of every raw record next to the decoded
/// objects (at 100,000 Pods that copy cost ~90 MiB of peak RSS).
pub(crate) async fn load_state(store: &dyn Store) -> std::result::Result<State, StoreError> {
    let mut objects: BTreeMap<Kind, BTreeMap<ObjectKey, Arc<Object>>> = BTreeMap::new();
    let loaded = store
        .load(&mut |kind, key, json, mod_revision| {
            let mut obj = Object::from_json(kind, json).map_err(|e| StoreError::Corrupt {
                tree: kind.plural().to_string(),
                detail: format!("{key}: {e}"),
            })?;
            if mod_revision != 0 {
                obj.meta_mut().resource_version = Some(mod_revision.to_string());
            }
            objects.entry(kind).or_default().insert(key, Arc::new(obj));
            Ok(())
        })
        .await?;
    Ok(State {
        revision: loaded.revision,
        objects,
        allocations: loaded.allocations.into_iter().collect(),
    })
}

/// Whether this control plane writes its store alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Only this process writes (sled): it always leads.
    Alone,
    /// Other control planes write the same store: it leads only once the
    /// election says so, and its leader repairs what their writes derived
    /// from older states.
    Shared,
}

impl Registry {
    /// Loads the store and makes sure the `default` namespace exists.
    pub async fn open(
        store: Arc<dyn Store>,
        cfg: RegistryConfig,
        metrics: Arc<Metrics>,
        sharing: Sharing,
    ) -> Result<Arc<Registry>> {
        let state = load_state(store.as_ref()).await?;
        let watch = store.watch(state.revision).await?;
        let (events, _) = broadcast::channel(4096);
        let (applied, _) = notify::channel(state.revision);
        let registry = Arc::new(Registry {
            store,
            metrics,
            compacted: std::sync::atomic::AtomicU64::new(state.revision),
            state: RwLock::new(state),
            prepare_turn: Mutex::new(PrepareTurn {
                rng: StdRng::from_os_rng(),
            }),
            events,
            applied,
            inflight: inflight::InFlight::default(),
            foreign: repair::Foreign::default(),
            leader: std::sync::Mutex::new(None),
            validation: ValidationConfig {
                families: cfg.service_cidrs.families(),
                node_port_range: cfg.node_port_range.clone(),
            },
            ranges: Ranges {
                cluster_ips: cfg.service_cidrs.clone(),
                node_ports: NodePortRange::new(cfg.node_port_range),
                lb_pool: cfg.lb_pool.map(LbPool::new),
            },
            log_retention: cfg.log_retention.max(1),
        });
        match sharing {
            Sharing::Alone => {
                registry.set_leader(Some(0));
            }
            Sharing::Shared => {
                registry.set_leader(None);
                registry.foreign.enable();
                tokio::spawn(repair::run(Arc::downgrade(&registry)));
            }
        }
        tokio::spawn(feed::follow(Arc::downgrade(&registry), watch));
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

    /// Records whether this control plane leads; `true` when that changed.
    pub fn set_leader(&self, lease: Option<i64>) -> bool {
        self.metrics.leader.set(i64::from(lease.is_some()));
        let mut leader = self.leader.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *leader, lease) != lease
    }

    /// Whether this control plane runs what must run once.
    pub fn is_leader(&self) -> bool {
        self.leader_lease().is_some()
    }

    fn leader_lease(&self) -> Option<i64> {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the store refuses writes now, if it does.
    pub fn store_failing(&self) -> Option<String> {
        self.store.failing()
    }

    /// Creates or updates an object (`create_only` refuses updates).
    pub async fn apply(&self, obj: Object, create_only: bool) -> Result<(Object, Outcome)> {
        let write = Write {
            create_only,
            ..Write::default()
        };
        self.apply_with(obj, &write).await
    }

    /// Creates or updates an object as `write` says: the REST API's create
    /// (POST), update (PUT, with its resourceVersion precondition) and
    /// dry runs, which prepare whole and commit nothing.
    #[tracing::instrument(skip_all, fields(kind = %obj.kind(), name = %obj.name()))]
    pub async fn apply_with(&self, mut obj: Object, write: &Write) -> Result<(Object, Outcome)> {
        let kind = obj.kind();
        if kind.is_namespaced() && obj.namespace().is_empty() {
            obj.meta_mut().namespace = Some(DEFAULT_NAMESPACE.to_string());
        } else if !kind.is_namespaced() {
            obj.meta_mut().namespace = None;
        }
        let key = key_of(&obj);
        let outcome = self
            .run(|state, rng| {
                self.check_namespace(state, &obj)?;
                let old = state.get(kind, &key).cloned();
                write.admits(&obj, old.as_deref())?;
                let limits = Limits {
                    validation: &self.validation,
                    ranges: &self.ranges,
                };
                let mut stored = prepare(
                    obj.clone(),
                    old.as_deref(),
                    &state.allocations,
                    &limits,
                    rng,
                )?;
                if let Object::Pod(pod) = &mut stored {
                    node_ready::hold_on_unready_node(pod, state, &prepare::now_rfc3339());
                }
                if let Some(old) = old.as_deref().filter(|o| state::same_content(o, &stored)) {
                    return Ok(Attempt::Done((Outcome::Unchanged, Some(old.clone()))));
                }
                let outcome = if old.is_some() {
                    Outcome::Configured
                } else {
                    Outcome::Created
                };
                if write.dry_run {
                    return Ok(Attempt::Done((outcome, Some(stored))));
                }
                let mut txn = Txn::new(state);
                record_allocations(&mut txn, old.as_deref(), Some(&stored));
                txn.put(stored);
                let new = txn.get(kind, &key);
                reconcile_endpoints(&mut txn, old.as_deref(), new.as_ref());
                Ok(Attempt::Write(txn.finish(), (outcome, None)))
            })
            .await?;
        match outcome {
            (outcome, Some(obj)) => Ok((obj, outcome)),
            (outcome, None) => {
                let obj = self.read().get(kind, &key).map(|o| (**o).clone());
                let obj = obj.ok_or_else(|| {
                    RegistryError::Internal("write produced no object".to_string())
                })?;
                Ok((obj, outcome))
            }
        }
    }

    /// Deletes an object and everything that hangs off it.
    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object> {
        self.delete_fenced(kind, namespace, name, None).await
    }

    /// What [`Registry::delete`] would delete, refused for the same
    /// reasons, with nothing deleted (`dryRun=All`).
    pub fn delete_dry_run(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object> {
        let state = self.read();
        let old = deletable(&state, kind, &object_key(kind, namespace, name), name)?;
        Ok((*old).clone())
    }

    /// A delete that only the leader makes (a sweep): refused once this
    /// control plane no longer leads, also when another took over between
    /// its check and its commit.
    pub async fn delete_as_leader(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object> {
        let lease = self
            .leader_lease()
            .ok_or_else(|| RegistryError::Forbidden {
                kind,
                name: name.to_string(),
                reason: "this control plane does not lead".to_string(),
            })?;
        self.delete_fenced(kind, namespace, name, Some(lease)).await
    }

    async fn delete_fenced(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        fence: Option<i64>,
    ) -> Result<Object> {
        let key = object_key(kind, namespace, name);
        self.run(|state, _| {
            let old = deletable(state, kind, &key, name)?;
            let mut txn = Txn::new(state);
            delete_with_dependents(&mut txn, &old);
            let mut prepared = txn.finish();
            prepared.batch.fence = fence.filter(|lease| *lease != 0);
            Ok(Attempt::Write(prepared, (*old).clone()))
        })
        .await
    }

    /// Runs a write: `attempt` prepares it against the state (writes take
    /// turns preparing), the store commits it if nothing it read changed,
    /// and the answer waits until the state holds it. Commits overlap
    /// unless they touch the same keys ([`inflight`]); a write that lost a
    /// race with another control plane tries again against the newer state.
    async fn run<T>(
        &self,
        mut attempt: impl FnMut(&State, &mut StdRng) -> Result<Attempt<T>>,
    ) -> Result<T> {
        let mut tries = 0;
        loop {
            let prepared = {
                let mut turn = self.prepare_turn.lock().await;
                let state = self.read();
                match attempt(&state, &mut turn.rng)? {
                    Attempt::Done(out) => return Ok(out),
                    Attempt::Write(p, out) if p.batch.is_empty() => return Ok(out),
                    Attempt::Write(p, out) => match self.inflight.claim(&p) {
                        Ok(claimed) => Ok((p.batch, out, claimed)),
                        Err(released) => Err(released),
                    },
                }
            };
            let (batch, out, claimed) = match prepared {
                Ok(prepared) => prepared,
                Err(mut released) => {
                    let _ = released.changed().await;
                    continue;
                }
            };
            match self.commit(batch, claimed).await {
                Ok(()) => return Ok(out),
                Err(RegistryError::Store(StoreError::Conflict { seen }))
                    if tries < CONFLICT_RETRIES =>
                {
                    tries += 1;
                    self.metrics.store_conflicts.inc();
                    tracing::debug!(seen, tries, "write lost a race; preparing again");
                    let _ = self.wait_for(seen, CONFLICT_PATIENCE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits a claimed write and waits until the state holds it. It takes
    /// the claim and gives it back only then, so no write of this process
    /// prepares against a state that lacks it.
    async fn commit(&self, batch: Batch, claimed: inflight::Claimed) -> Result<()> {
        let started = std::time::Instant::now();
        let revision = self.store.commit(batch).await?;
        self.metrics
            .store_commit
            .observe(started.elapsed().as_secs_f64());
        self.foreign.committing(revision);
        let applied = self.wait_for(revision, APPLY_PATIENCE).await;
        self.foreign.committed(revision);
        drop(claimed);
        applied
    }

    /// Waits until the state has reached `revision`.
    async fn wait_for(&self, revision: u64, patience: std::time::Duration) -> Result<()> {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(patience, applied.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok());
        match reached {
            true => Ok(()),
            false => Err(RegistryError::Internal(format!(
                "revision {revision} was committed but the store's watch has not delivered it yet"
            ))),
        }
    }

    /// Trims the history every few hundred revisions, off the write path.
    fn maybe_compact(&self, revision: u64) {
        use std::sync::atomic::Ordering;
        let last = self.compacted.load(Ordering::SeqCst);
        if revision < last + COMPACT_EVERY || revision <= self.log_retention || !self.is_leader() {
            return;
        }
        if self
            .compacted
            .compare_exchange(last, revision, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        let store = self.store.clone();
        let keep_from = revision - self.log_retention;
        tokio::spawn(async move {
            if let Err(e) = store.compact(keep_from).await {
                tracing::warn!(error = %e, "history compaction failed");
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

    /// One page of a list: the objects of `kind` in `namespace` after key
    /// `page.after` that `admits` takes, at most `page.limit` of them, with
    /// how many more there are. Only the page is copied, so a client reading
    /// a big list in chunks costs each chunk, not the whole list each time.
    pub fn list_page(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        page: &PageRequest<'_>,
        admits: &dyn Fn(&Object) -> bool,
    ) -> Page {
        let state = self.read();
        let namespace = namespace.filter(|_| kind.is_namespaced());
        let mut matching = state
            .after(kind, namespace, page.after)
            .filter(|(_, o)| admits(o));
        let limit = page.limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last = None;
        for (key, obj) in matching.by_ref().take(limit) {
            items.push(decorate(&state, obj));
            last = Some(key.clone());
        }
        let remaining = matching.count();
        Page {
            items,
            last: last.filter(|_| remaining > 0),
            remaining,
            revision: state.revision,
        }
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
        // The feed sends each write's events while it holds the state's
        // write lock, so a receiver made under the read lock misses nothing
        // newer than what `f` sees.
        let state = self.read();
        let rx = self.events.subscribe();
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
    pub async fn write<T>(&self, mut f: impl FnMut(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        self.run(|state, _| {
            let mut txn = Txn::new(state);
            let out = f(&mut txn)?;
            Ok(Attempt::Write(txn.finish(), out))
        })
        .await
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
        let key = object_key(Kind::Pod, namespace, name);
        self.run(|state, _| {
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
                return Ok(Attempt::Done(false));
            }
            let old = Object::Pod(pod.clone());
            let mut pod = pod;
            prepare::set_ready_condition(&mut pod, ready);
            let mut txn = Txn::new(state);
            let new = Object::Pod(pod);
            txn.put(new.clone());
            reconcile_endpoints(&mut txn, Some(&old), Some(&new));
            Ok(Attempt::Write(txn.finish(), true))
        })
        .await
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
