//! The snapshot cache: every Service as agents see it, the probe list of
//! every node, and a bounded log of which of them changed at which version,
//! from which any agent's delta is computed.
//!
//! A single builder task follows the registry's commits. It coalesces a
//! burst (until the feed is quiet for [`QUIET`], at most [`MAX_DELAY`]) into
//! one new version, so a storm of endpoint changes costs one push per agent.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use switchyard_api::resources::{Kind, Object};
use switchyard_api::v1::{ClusterConfig, PodProbe, ServiceRef, ServiceState};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use super::snapshot::{probes_for_node, service_state};
use crate::metrics::Metrics;
use crate::registry::state::State;
use crate::registry::{Event, Registry};

/// How long the feed must be quiet before a new version is cut.
pub const QUIET: Duration = Duration::from_millis(2);
/// The longest a change waits for its burst to end.
pub const MAX_DELAY: Duration = Duration::from_millis(20);
const CHANGE_LOG_LIMIT: usize = 200_000;

pub type ServiceKey = (String, String);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Changed {
    Service(ServiceKey),
    Probes(String),
}

/// What every agent holding some version needs to catch up, whatever its
/// node: the same for all of them, so it is encoded once (see
/// [`super::encoded`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub version: u64,
    pub full: bool,
    pub services: Vec<Arc<ServiceState>>,
    pub removed: Vec<ServiceRef>,
    /// The nodes whose probe list changed (every node's, on a full push).
    pub probes: ProbesChanged,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum ProbesChanged {
    #[default]
    All,
    Of(BTreeSet<String>),
}

impl ProbesChanged {
    pub fn includes(&self, node: &str) -> bool {
        match self {
            ProbesChanged::All => true,
            ProbesChanged::Of(nodes) => nodes.contains(node),
        }
    }
}

#[derive(Default)]
struct Snapshot {
    version: u64,
    services: BTreeMap<ServiceKey, Arc<ServiceState>>,
    probes: HashMap<String, Arc<Vec<PodProbe>>>,
    changes: VecDeque<(u64, Changed)>,
    /// Deltas can be computed from any version at or above this one.
    oldest: u64,
    /// When the first change of each recent version was committed.
    started: VecDeque<(u64, Instant)>,
}

pub struct SnapshotCache {
    snapshot: RwLock<Snapshot>,
    version: watch::Sender<u64>,
    cluster: ClusterConfig,
}

impl SnapshotCache {
    /// Builds from the registry's current state and keeps following it.
    pub async fn start(
        registry: Arc<Registry>,
        cluster: ClusterConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<SnapshotCache> {
        let (rx, snapshot) = registry.subscribe_with(full_build).await;
        let (version, _) = watch::channel(snapshot.version);
        let cache = Arc::new(SnapshotCache {
            snapshot: RwLock::new(snapshot),
            version,
            cluster,
        });
        tokio::spawn(builder(
            cache.clone(),
            Arc::downgrade(&registry),
            rx,
            metrics,
        ));
        cache
    }

    pub fn cluster(&self) -> &ClusterConfig {
        &self.cluster
    }

    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        // Poisoning means a panic between plain map updates; the maps remain usable.
        self.snapshot.read().unwrap_or_else(|e| e.into_inner())
    }

    /// When the change that produced `version` was committed, for push
    /// latency. Searched from the newest: nearly every ACK is for it.
    pub fn started_at(&self, version: u64) -> Option<Instant> {
        let snap = self.read();
        snap.started
            .iter()
            .rev()
            .find(|(v, _)| *v == version)
            .map(|(_, t)| *t)
    }

    /// Nodes whose current probe list holds this pod.
    fn nodes_probing(&self, namespace: &str, name: &str) -> Vec<String> {
        self.read()
            .probes
            .iter()
            .filter(|(_, list)| {
                list.iter()
                    .any(|p| p.namespace == namespace && p.name == name)
            })
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// What an agent holding version `from` (`None`: nothing) needs;
    /// `None` when it is current.
    pub fn delta(&self, from: Option<u64>) -> Option<Delta> {
        let snap = self.read();
        if from == Some(snap.version) {
            return None;
        }
        let Some(from) = from.filter(|f| *f <= snap.version && *f >= snap.oldest) else {
            return Some(Delta {
                version: snap.version,
                full: true,
                services: snap.services.values().cloned().collect(),
                removed: Vec::new(),
                probes: ProbesChanged::All,
            });
        };
        let start = snap.changes.partition_point(|(v, _)| *v <= from);
        let changed: BTreeSet<&Changed> = snap.changes.range(start..).map(|(_, c)| c).collect();
        let mut out = Delta {
            version: snap.version,
            probes: ProbesChanged::Of(BTreeSet::new()),
            ..Default::default()
        };
        for c in changed {
            match c {
                Changed::Service(key) => match snap.services.get(key) {
                    Some(s) => out.services.push(s.clone()),
                    None => out.removed.push(ServiceRef {
                        namespace: key.0.clone(),
                        name: key.1.clone(),
                    }),
                },
                Changed::Probes(node) => {
                    if let ProbesChanged::Of(nodes) = &mut out.probes {
                        nodes.insert(node.clone());
                    }
                }
            }
        }
        Some(out)
    }

    /// The pods `node` must probe now.
    pub fn probes(&self, node: &str) -> Arc<Vec<PodProbe>> {
        self.read().probes.get(node).cloned().unwrap_or_default()
    }
}

fn full_build(state: &State) -> Snapshot {
    let mut slices: HashMap<ServiceKey, Vec<&switchyard_api::resources::EndpointSlice>> =
        HashMap::new();
    for o in state.in_namespace(Kind::EndpointSlice, None) {
        if let Object::EndpointSlice(s) = &**o {
            if let Some(svc) = s.service_name() {
                let ns = s.metadata.namespace.clone().unwrap_or_default();
                slices.entry((ns, svc.to_string())).or_default().push(s);
            }
        }
    }
    let mut snap = Snapshot {
        version: state.revision,
        oldest: state.revision,
        ..Default::default()
    };
    for o in state.in_namespace(Kind::Service, None) {
        if let Object::Service(svc) = &**o {
            let key = (
                svc.metadata.namespace.clone().unwrap_or_default(),
                svc.metadata.name.clone(),
            );
            let state = service_state(svc, slices.get(&key).into_iter().flatten().copied());
            snap.services.insert(key, Arc::new(state));
        }
    }
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    for o in state.in_namespace(Kind::Pod, None) {
        if let Object::Pod(p) = &**o {
            nodes.extend(p.spec.node_name.clone());
        }
    }
    for node in nodes {
        snap.probes
            .insert(node.clone(), Arc::new(node_probes(state, &node)));
    }
    snap
}

fn node_probes(state: &State, node: &str) -> Vec<PodProbe> {
    let pods = state
        .in_namespace(Kind::Pod, None)
        .filter_map(|o| match &**o {
            Object::Pod(p) => Some(p),
            _ => None,
        });
    probes_for_node(node, pods)
}

fn rebuild_service(state: &State, key: &ServiceKey) -> Option<ServiceState> {
    let Some(Object::Service(svc)) = state
        .get(Kind::Service, &format!("{}/{}", key.0, key.1))
        .map(|o| &**o)
    else {
        return None;
    };
    let slices = state
        .in_namespace(Kind::EndpointSlice, Some(&key.0))
        .filter_map(|o| match &**o {
            Object::EndpointSlice(s) if s.service_name() == Some(key.1.as_str()) => Some(&**s),
            _ => None,
        });
    Some(service_state(svc, slices))
}

/// The services and nodes an event can change.
fn affected(cache: &SnapshotCache, e: &Event, out: &mut BTreeSet<Changed>) {
    let ns = e.object.namespace().to_string();
    match &*e.object {
        Object::Service(s) => {
            out.insert(Changed::Service((ns, s.metadata.name.clone())));
        }
        Object::EndpointSlice(s) => {
            if let Some(svc) = s.service_name() {
                out.insert(Changed::Service((ns, svc.to_string())));
            }
        }
        Object::Pod(p) => {
            // Rebuilding a node's probe list scans every pod, so only pods
            // that are or were probed trigger it (most pods have no probe).
            if let Some(node) = p
                .spec
                .node_name
                .as_ref()
                .filter(|_| p.has_readiness_probe())
            {
                out.insert(Changed::Probes(node.clone()));
            }
            for node in cache.nodes_probing(&ns, &p.metadata.name) {
                out.insert(Changed::Probes(node));
            }
        }
        _ => {}
    }
}

/// One coalesced burst of commits.
struct Burst {
    changed: BTreeSet<Changed>,
    version: u64,
    /// The feed overflowed mid-burst: events were lost, rebuild everything.
    lagged: bool,
}

/// Absorbs commits after `first` until the feed is quiet for [`QUIET`] or
/// [`MAX_DELAY`] has passed.
async fn collect_burst(
    cache: &SnapshotCache,
    first: &[Event],
    start_version: u64,
    rx: &mut broadcast::Receiver<Arc<Vec<Event>>>,
) -> Burst {
    let mut burst = Burst {
        changed: BTreeSet::new(),
        version: start_version,
        lagged: false,
    };
    let absorb = |batch: &[Event], burst: &mut Burst| {
        for e in batch {
            affected(cache, e, &mut burst.changed);
            burst.version = burst.version.max(e.revision);
        }
    };
    absorb(first, &mut burst);
    let deadline = tokio::time::Instant::now() + MAX_DELAY;
    loop {
        let quiet = tokio::time::Instant::now() + QUIET;
        match tokio::time::timeout_at(quiet.min(deadline), rx.recv()).await {
            Ok(Ok(batch)) => absorb(&batch, &mut burst),
            Ok(Err(RecvError::Lagged(_))) => {
                burst.lagged = true;
                return burst;
            }
            Ok(Err(RecvError::Closed)) | Err(_) => return burst,
        }
    }
}

/// Follows the registry until it is dropped. It holds the registry weakly:
/// the registry owns the feed this task reads, so a strong reference would
/// keep both alive forever.
async fn builder(
    cache: Arc<SnapshotCache>,
    registry: Weak<Registry>,
    mut rx: broadcast::Receiver<Arc<Vec<Event>>>,
    metrics: Arc<Metrics>,
) {
    loop {
        let first = match rx.recv().await {
            Ok(batch) => Some(batch),
            Err(RecvError::Closed) => return,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "snapshot builder fell behind; rebuilding everything"
                );
                None
            }
        };
        let started = Instant::now();
        let burst = match &first {
            Some(batch) => collect_burst(&cache, batch, cache.version(), &mut rx).await,
            None => Burst {
                changed: BTreeSet::new(),
                version: 0,
                lagged: true,
            },
        };
        let Some(registry) = registry.upgrade() else {
            return;
        };
        if burst.lagged {
            resync(&cache, &registry);
            continue;
        }
        apply_changes(&cache, &registry, burst.changed, burst.version, started);
        metrics
            .snapshot_build
            .observe(started.elapsed().as_secs_f64());
    }
}

fn apply_changes(
    cache: &SnapshotCache,
    registry: &Registry,
    changed: BTreeSet<Changed>,
    version: u64,
    started: Instant,
) {
    if changed.is_empty() {
        return;
    }
    registry.with_state(|state| {
        let mut snap = cache.snapshot.write().unwrap_or_else(|e| e.into_inner());
        for c in changed {
            match &c {
                Changed::Service(key) => match rebuild_service(state, key) {
                    Some(s) => {
                        snap.services.insert(key.clone(), Arc::new(s));
                    }
                    None => {
                        snap.services.remove(key);
                    }
                },
                Changed::Probes(node) => {
                    snap.probes
                        .insert(node.clone(), Arc::new(node_probes(state, node)));
                }
            }
            snap.changes.push_back((version, c));
        }
        while snap.changes.len() > CHANGE_LOG_LIMIT {
            if let Some((v, _)) = snap.changes.pop_front() {
                snap.oldest = v;
            }
        }
        snap.version = version;
        snap.started.push_back((version, started));
        while snap.started.len() > 1024 {
            snap.started.pop_front();
        }
    });
    cache.version.send_replace(version);
}

/// After missing events, rebuild from scratch; agents get full pushes.
fn resync(cache: &SnapshotCache, registry: &Registry) {
    let fresh = registry.with_state(full_build);
    let version = fresh.version;
    *cache.snapshot.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    cache.version.send_replace(version);
}
