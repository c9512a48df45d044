//! The agent's main loop: keep the snapshot stream open, fold every push
//! into the cluster view, apply it to nftables as one transaction, ACK or
//! NACK, clear stale UDP flows, feed the probes, and repair the table if
//! someone else changes it.
//!
//! The loop owns the data path, so applies, drift checks and repairs never
//! race. When the stream is down the data path is only touched to repair
//! drift, from the last view: the last ruleset keeps serving. The periodic
//! full resync lists the table in a task of its own (seconds at 10,000
//! Services) and the loop repairs from the listing if no apply ran since.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use switchyard_api::v1::{Push, Register};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connection::Channels;
use crate::conntrack::{stale_flows, Conntrack, Flush, Unapplied};
use crate::dns;
use crate::health::ProxyHealth;
use crate::metrics::Metrics;
use crate::model::{NodeContext, ServiceEntry, ServiceKey, Snapshot};
use crate::nft::{self, DataPath, Live, NftRunner};
use crate::sync::{self, Backoff, Session};
use crate::view::{self, ClusterView};

/// Reconnect delays: a partition or a control plane restart is over for
/// the data path within the cap (plus jitter) of healing.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_CAP: Duration = Duration::from_secs(2);
/// Delays between attempts to apply a push the kernel refused.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(30);
/// How often the cheap drift check runs.
pub const DRIFT_CHECK: Duration = Duration::from_secs(2);
/// How often the whole table is read back and reconciled, by default.
pub const FULL_RESYNC: Duration = Duration::from_secs(300);

/// The Services a push changed: those it named, or for a full push every
/// Service before or after it.
fn touched(
    named: Option<BTreeSet<ServiceKey>>,
    before: &Snapshot,
    now: &Snapshot,
) -> BTreeSet<ServiceKey> {
    named.unwrap_or_else(|| {
        let keys = before.services.keys().chain(now.services.keys());
        keys.cloned().collect()
    })
}

/// Why the control plane will never take this agent as it is configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

pub struct AgentConfig {
    pub node: NodeContext,
    pub agent_version: String,
    /// Services this agent serves on its own behalf.
    pub local_services: Vec<(ServiceKey, ServiceEntry)>,
    /// Where this node's DNS responder listens; the cluster DNS address is
    /// DNATed there (it arrives with the first push).
    pub dns_listen: Option<std::net::SocketAddr>,
    /// How often the whole table is read back and reconciled.
    pub full_resync: Duration,
    /// How long a change may wait for the data path before this node
    /// reports itself unhealthy.
    pub health_timeout: Duration,
    /// `--node-labels`, registered with the node.
    pub node_labels: BTreeMap<String, String>,
    /// Every address and pod CIDR of the node, one per family, as it
    /// registers them; `node` holds the IPv4 ones the data path serves.
    /// Empty: `node`'s.
    pub registered: NodeAddresses,
}

/// A node's addresses and pod CIDRs across both families, primary first.
#[derive(Debug, Clone, Default)]
pub struct NodeAddresses {
    pub node_ips: Vec<std::net::IpAddr>,
    pub pod_cidrs: Vec<ipnet::IpNet>,
}

pub struct Runtime<R> {
    cfg: AgentConfig,
    channels: Channels,
    datapath: DataPath<R>,
    conntrack: Conntrack,
    view: Arc<ClusterView>,
    views: watch::Sender<Arc<ClusterView>>,
    applied: Option<u64>,
    /// What the data path should hold: the view's Services plus ours. Kept
    /// in step with the view push by push, so a delta costs what it changes.
    snapshot: Snapshot,
    /// What the kernel still holds of the Services whose changes failed to
    /// apply, kept until an apply succeeds: stale UDP flows are computed
    /// from what really was applied.
    unapplied: Option<Unapplied>,
    /// A push whose parts are still arriving.
    partial: Option<Partial>,
    /// The periodic full resync's listing of the table, while it runs.
    listing: Option<JoinHandle<nft::Result<Live>>>,
    /// The last push, while its apply keeps failing.
    retry: Option<Retry>,
    metrics: Arc<Metrics>,
    health: Arc<ProxyHealth>,
}

/// A push whose apply failed: applied again from the whole snapshot, with
/// backoff, until it goes through (the kernel may refuse for a while: a
/// foreign table in the way, a full netlink buffer, nft missing). The
/// control plane shows the node NACKED meanwhile, SYNCED after.
struct Retry {
    ack_for: Push,
    at: tokio::time::Instant,
    backoff: Backoff,
}

/// The parts of a push received so far, folded into a view of their own:
/// DNS and the data path see the push only once its last part is in, so a
/// full snapshot never shows them half a cluster.
struct Partial {
    view: ClusterView,
    /// What the parts name, `None` once one was full (apply everything).
    named: Option<BTreeSet<ServiceKey>>,
    started: Instant,
}

impl<R: NftRunner + Clone + 'static> Runtime<R> {
    pub fn new(
        cfg: AgentConfig,
        channels: Channels,
        datapath: DataPath<R>,
        conntrack: Conntrack,
        metrics: Arc<Metrics>,
    ) -> (Self, watch::Receiver<Arc<ClusterView>>) {
        let (views, rx) = watch::channel(Arc::new(ClusterView::default()));
        let health = Arc::new(ProxyHealth::new(cfg.health_timeout));
        let runtime = Self {
            cfg,
            channels,
            datapath,
            conntrack,
            view: Arc::default(),
            views,
            applied: None,
            snapshot: Snapshot::default(),
            unapplied: None,
            partial: None,
            listing: None,
            retry: None,
            metrics,
            health,
        };
        (runtime, rx)
    }

    /// Whether this node's data path holds what it was sent, for the
    /// health endpoints.
    pub fn health(&self) -> Arc<ProxyHealth> {
        self.health.clone()
    }

    /// Stops redirecting the cluster DNS address to this node's responder,
    /// for when the responder could not start.
    pub fn disable_dns(&mut self) {
        self.cfg.dns_listen = None;
    }

    /// Runs until the control plane refuses this node for good (its
    /// identity may not act as this node): that is a configuration error
    /// for the operator, which the agent exits with.
    pub async fn run(mut self) -> Refused {
        let mut drift = tokio::time::interval(DRIFT_CHECK);
        let period = self.cfg.full_resync;
        let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_CAP);
        let mut rng = rand::rngs::StdRng::from_os_rng();
        loop {
            let channel = self.channels.borrow().clone();
            let session = match sync::open(channel, self.register()).await {
                Ok(session) => session,
                Err(sync::StreamError::Open(status))
                    if status.code() == tonic::Code::PermissionDenied =>
                {
                    return Refused(status.message().to_string());
                }
                Err(sync::StreamError::Open(status))
                    if status.code() == tonic::Code::Unauthenticated =>
                {
                    let delay = backoff.next_delay(&mut rng);
                    tracing::error!(error = %status.message(), retry_in = ?delay,
                        "the control plane refuses this node's certificate; join again with a new token (--join-token); keeping the last ruleset");
                    self.wait(delay, &mut drift, &mut resync).await;
                    continue;
                }
                Err(e) => {
                    let delay = backoff.next_delay(&mut rng);
                    tracing::warn!(error = %e, retry_in = ?delay, "control plane unreachable; keeping the last ruleset");
                    self.wait(delay, &mut drift, &mut resync).await;
                    continue;
                }
            };
            self.metrics.connected.set(1);
            let reason = self
                .serve(session, &mut drift, &mut resync, &mut backoff)
                .await;
            self.metrics.connected.set(0);
            let delay = backoff.next_delay(&mut rng);
            tracing::warn!(error = %reason, retry_in = ?delay, "snapshot stream lost; keeping the last ruleset");
            self.wait(delay, &mut drift, &mut resync).await;
        }
    }

    fn register(&self) -> Register {
        let node = &self.cfg.node;
        let registered = &self.cfg.registered;
        let node_ips: Vec<String> = match registered.node_ips.is_empty() {
            true => node.node_ips.iter().map(ToString::to_string).collect(),
            false => registered
                .node_ips
                .iter()
                .map(ToString::to_string)
                .collect(),
        };
        let pod_cidrs: Vec<String> = match registered.pod_cidrs.is_empty() {
            true => node.pod_cidr.iter().map(ToString::to_string).collect(),
            false => registered
                .pod_cidrs
                .iter()
                .map(ToString::to_string)
                .collect(),
        };
        Register {
            node_name: node.node_name.clone(),
            node_ips,
            pod_cidr: pod_cidrs.first().cloned().unwrap_or_default(),
            pod_cidrs,
            agent_version: self.cfg.agent_version.clone(),
            applied_version: self.applied.unwrap_or(0),
            node_labels: self.cfg.node_labels.clone().into_iter().collect(),
        }
    }

    /// Sleeps out a reconnect delay while still guarding the table.
    async fn wait(
        &mut self,
        delay: Duration,
        drift: &mut tokio::time::Interval,
        resync: &mut tokio::time::Interval,
    ) {
        let until = tokio::time::sleep(delay);
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut until => return,
                _ = drift.tick() => self.repair_drift().await,
                _ = resync.tick() => self.start_full_resync(),
                live = listed(&mut self.listing) => self.finish_full_resync(live).await,
            }
        }
    }

    async fn serve(
        &mut self,
        mut session: Session,
        drift: &mut tokio::time::Interval,
        resync: &mut tokio::time::Interval,
        backoff: &mut Backoff,
    ) -> sync::StreamError {
        // The rest of a push cut short by a lost stream never comes: the
        // next session resends from the last applied version.
        self.partial = None;
        loop {
            let retry_at = self.retry.as_ref().map(|r| r.at);
            tokio::select! {
                push = session.next() => match push {
                    Ok(push) => {
                        backoff.reset();
                        if let Err(e) = self.handle_push(&session, push).await {
                            return e;
                        }
                    }
                    Err(e) => return e,
                },
                _ = drift.tick() => self.repair_drift().await,
                _ = resync.tick() => self.start_full_resync(),
                live = listed(&mut self.listing) => self.finish_full_resync(live).await,
                _ = sleep_until(retry_at) => {
                    if let Err(e) = self.retry_apply(&session).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Applies the failed push again, from the whole snapshot.
    async fn retry_apply(&mut self, session: &Session) -> Result<(), sync::StreamError> {
        let Some(ack_for) = self.retry.as_ref().map(|r| r.ack_for.clone()) else {
            return Ok(());
        };
        tracing::info!(version = ack_for.version, "applying the failed push again");
        let started = Instant::now();
        let (result, flows) = self.apply_push(None).await;
        self.report(session, ack_for, result, flows, started).await
    }

    /// ACKs an apply that went through, or NACKs one that failed with the
    /// kernel's (or nft's) words and schedules it to be tried again.
    async fn report(
        &mut self,
        session: &Session,
        ack_for: Push,
        result: nft::Result<nft::ApplyStats>,
        flows: BTreeSet<Flush>,
        started: Instant,
    ) -> Result<(), sync::StreamError> {
        match result {
            Ok(stats) => {
                tracing::info!(?stats, elapsed = ?started.elapsed(), "applied");
                session.ack(&ack_for, None).await?;
                self.conntrack.flush_in_background(flows);
                self.applied = Some(ack_for.version);
                self.retry = None;
                self.health.updated();
                self.metrics.synced();
                self.metrics.programmed(ack_for.committed_unix_micros);
                self.metrics
                    .applied_version
                    .set(i64::try_from(ack_for.version).unwrap_or(i64::MAX));
            }
            Err(e) => {
                let text = e
                    .nft_stderr()
                    .map(str::to_string)
                    .unwrap_or_else(|| switchyard_tls::error_chain(&e));
                let mut backoff = self
                    .retry
                    .take()
                    .map(|r| r.backoff)
                    .unwrap_or_else(|| Backoff::new(RETRY_FIRST, RETRY_CAP));
                let delay = backoff.next_delay(&mut rand::rng()).max(RETRY_FIRST);
                tracing::error!(error = %text, retry_in = ?delay, "nftables apply failed; the last good ruleset stays");
                self.metrics.sync_errors.inc();
                session.ack(&ack_for, Some(text)).await?;
                self.retry = Some(Retry {
                    ack_for,
                    at: tokio::time::Instant::now() + delay,
                    backoff,
                });
            }
        }
        Ok(())
    }

    /// What the data path should hold for a view: its services plus ours.
    fn snapshot(&self, view: &ClusterView) -> Snapshot {
        let mut snap = view.data_path_snapshot();
        snap.services
            .extend(self.cfg.local_services.iter().cloned());
        if let Some(listen) = self.cfg.dns_listen {
            snap.services
                .extend(dns::dns_service_for(view, listen, &self.cfg.node.node_name));
        }
        snap
    }

    /// The snapshot entry `key` should have now (`None`: absent).
    fn desired_entry(&self, key: &ServiceKey) -> Option<ServiceEntry> {
        if let Some((_, local)) = self.cfg.local_services.iter().find(|(k, _)| k == key) {
            return Some(local.clone());
        }
        if let Some((dns_key, entry)) = self.dns_service() {
            if dns_key == *key {
                return Some(entry);
            }
        }
        self.view
            .services
            .get(key)
            .and_then(|s| view::data_path_entry(s))
    }

    fn dns_service(&self) -> Option<(ServiceKey, ServiceEntry)> {
        let listen = self.cfg.dns_listen?;
        dns::dns_service_for(&self.view, listen, &self.cfg.node.node_name)
    }

    /// Brings [`Self::snapshot`] in line with the view for the Services a
    /// delta names (plus the DNS Service, which follows the cluster config);
    /// returns the ones that changed and their entries before and after.
    fn fold_into_snapshot(
        &mut self,
        named: BTreeSet<ServiceKey>,
    ) -> (BTreeSet<ServiceKey>, Snapshot, Snapshot) {
        let mut keys = named;
        keys.insert(ServiceKey::new(
            dns::DNS_SERVICE_NAMESPACE,
            dns::DNS_SERVICE_NAME,
        ));
        let (mut before, mut after) = (Snapshot::default(), Snapshot::default());
        let mut changed = BTreeSet::new();
        // One search of the (large) snapshot per key: a push usually
        // replaces entries in place, which needs no removal and reinsertion.
        for key in keys {
            let want = self.desired_entry(&key);
            match (self.snapshot.services.entry(key.clone()), want) {
                (Entry::Occupied(held), Some(new)) if *held.get() == new => continue,
                (Entry::Occupied(mut held), Some(new)) => {
                    after.services.insert(key.clone(), new.clone());
                    before.services.insert(key.clone(), held.insert(new));
                }
                (Entry::Occupied(held), None) => {
                    before.services.insert(key.clone(), held.remove());
                }
                (Entry::Vacant(slot), Some(new)) => {
                    after.services.insert(key.clone(), new.clone());
                    slot.insert(new);
                }
                (Entry::Vacant(_), None) => continue,
            }
            changed.insert(key);
        }
        self.snapshot.version = self.view.version;
        (changed, before, after)
    }

    /// Applies the push just folded into the view: only the Services it
    /// names when it is a delta, everything otherwise. Returns the result
    /// and the UDP flows the change makes stale.
    async fn apply_push(
        &mut self,
        named: Option<BTreeSet<ServiceKey>>,
    ) -> (nft::Result<nft::ApplyStats>, BTreeSet<Flush>) {
        let unapplied = self.unapplied.take();
        // `after: None` is the whole new snapshot, compared in place rather
        // than copied (~10 MB at 10,000 Services); `changed: None`, every key.
        let (result, changed, before, after) = match named.filter(|_| self.applied.is_some()) {
            Some(named) => {
                let (changed, before, after) = self.fold_into_snapshot(named);
                let result = self
                    .datapath
                    .apply_changes(&self.cfg.node, &self.snapshot, &changed)
                    .await;
                (result, Some(changed), before, Some(after))
            }
            None => {
                let full = crate::cpu::heavy(|| self.snapshot(&self.view));
                let before = std::mem::replace(&mut self.snapshot, full);
                let result = self.datapath.apply(&self.cfg.node, &self.snapshot).await;
                (result, None, before, None)
            }
        };
        let flows = match (&result, unapplied) {
            (Ok(_), None) => stale_flows(&before, after.as_ref().unwrap_or(&self.snapshot)),
            (Ok(_), Some(unapplied)) => {
                let changed = touched(changed, &before, &self.snapshot);
                unapplied.stale_after(changed, &before, &self.snapshot)
            }
            (Err(_), unapplied) => {
                let mut unapplied = unapplied.unwrap_or_default();
                unapplied.failed(touched(changed, &before, &self.snapshot), &before);
                self.unapplied = Some(unapplied);
                BTreeSet::new()
            }
        };
        (result, flows)
    }

    #[tracing::instrument(skip_all, fields(version = push.version, full = push.full, services = push.services.len(), more = push.more))]
    async fn handle_push(
        &mut self,
        session: &Session,
        push: Push,
    ) -> Result<(), sync::StreamError> {
        let ack_for = Push {
            version: push.version,
            nonce: push.nonce.clone(),
            committed_unix_micros: push.committed_unix_micros,
            ..Default::default()
        };
        self.health.queued();
        let more = push.more;
        let (base, named, started) = match self.partial.take() {
            Some(p) => (Some(p.view), p.named, p.started),
            None => (None, Some(BTreeSet::new()), Instant::now()),
        };
        let named = named.filter(|_| !push.full).map(|mut named| {
            named.extend(named_services(&push));
            named
        });
        let view = crate::cpu::heavy(|| {
            let base = base.as_ref().unwrap_or(&self.view);
            let changes = base.changes(&push);
            self.metrics.service_changes.inc_by(changes.services);
            self.metrics.endpoint_changes.inc_by(changes.endpoints);
            base.fold(push)
        });
        if more {
            self.partial = Some(Partial {
                view,
                named,
                started,
            });
            return Ok(());
        }
        self.view = Arc::new(view);
        self.views.send_replace(self.view.clone());
        let (result, flows) = self.apply_push(named).await;
        self.metrics
            .sync_duration
            .observe(started.elapsed().as_secs_f64());
        self.report(session, ack_for, result, flows, started).await
    }

    async fn repair_drift(&mut self) {
        if self.applied.is_none() {
            return;
        }
        match self
            .datapath
            .repair_if_drifted(&self.cfg.node, &self.snapshot)
            .await
        {
            Ok(true) => {
                self.metrics.repairs.inc();
                tracing::warn!("the nftables table was changed from outside; repaired");
                self.verified();
            }
            Ok(false) => self.verified(),
            Err(e) => {
                tracing::error!(error = %e, "drift check failed");
                self.health.queued();
            }
        }
    }

    /// The table was found as applied: healthy, unless a push is still
    /// waiting for it.
    fn verified(&self) {
        if self.retry.is_none() && self.partial.is_none() {
            self.health.updated();
            self.metrics.synced();
        }
    }

    /// Starts listing the table for a full resync, unless one is running.
    fn start_full_resync(&mut self) {
        if self.applied.is_some() && self.listing.is_none() {
            self.listing = Some(tokio::spawn(self.datapath.read_live_later()));
        }
    }

    async fn finish_full_resync(&mut self, live: nft::Result<Live>) {
        let result = match live {
            Ok(live) => {
                self.datapath
                    .resync_from(&self.cfg.node, &self.snapshot, live)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(stats)) if stats.is_empty() => {
                tracing::info!("periodic full resync: the table is as applied")
            }
            Ok(Some(stats)) => {
                self.metrics.repairs.inc();
                tracing::warn!(?stats, "periodic full resync repaired the table");
            }
            Ok(None) => tracing::info!("periodic full resync skipped: the listing is out of date"),
            Err(e) => tracing::error!(error = %e, "periodic full resync failed"),
        }
    }
}

/// Resolves at `at`; pending without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The running listing's result; pending while none runs.
async fn listed(listing: &mut Option<JoinHandle<nft::Result<Live>>>) -> nft::Result<Live> {
    let Some(handle) = listing else {
        return std::future::pending().await;
    };
    let result = handle
        .await
        .unwrap_or_else(|e| Err(nft::NftError::Malformed(format!("listing task: {e}"))));
    *listing = None;
    result
}

/// The Services a delta push adds, changes or removes.
fn named_services(push: &Push) -> BTreeSet<ServiceKey> {
    push.services
        .iter()
        .map(|s| ServiceKey::new(s.namespace.clone(), s.name.clone()))
        .chain(
            push.removed
                .iter()
                .map(|r| ServiceKey::new(r.namespace.clone(), r.name.clone())),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use switchyard_api::v1::{
        ClusterConfig, Endpoint, EndpointPort, EndpointPorts, ServicePort, ServiceRef, ServiceState,
    };

    use super::*;
    use crate::nft::RecordingRunner;

    const SLOTS: usize = 5;

    fn service(
        slot: usize,
        udp: bool,
        endpoints: Vec<(u8, bool)>,
        elsewhere: bool,
    ) -> ServiceState {
        let protocol = if udp { "UDP" } else { "TCP" };
        ServiceState {
            namespace: "default".into(),
            name: format!("svc-{slot}"),
            r#type: "ClusterIP".into(),
            cluster_ip: format!("10.96.0.{}", slot + 1),
            ports: vec![ServicePort {
                name: "p".into(),
                protocol: protocol.into(),
                port: 53,
                node_port: 0,
            }],
            endpoints: endpoints
                .into_iter()
                .map(|(host, ready)| Endpoint {
                    ip: format!("10.244.1.{host}"),
                    node_name: "node-1".into(),
                    ready,
                    serving: ready,
                    ..Default::default()
                })
                .collect(),
            port_sets: vec![EndpointPorts {
                ports: vec![EndpointPort {
                    name: "p".into(),
                    protocol: protocol.into(),
                    port: 5353,
                }],
            }],
            proxied_elsewhere: elsewhere,
            ..Default::default()
        }
    }

    /// One delta: some slots replaced or removed, and now and then a new
    /// cluster DNS address (which moves the synthetic DNS Service).
    fn delta() -> impl Strategy<Value = Push> {
        let slot = (
            0..SLOTS,
            proptest::option::of((
                any::<bool>(),
                proptest::collection::vec((1u8..5, any::<bool>()), 0..4),
                proptest::bool::weighted(0.2),
            )),
        );
        (
            proptest::collection::vec(slot, 1..4),
            proptest::option::of(prop_oneof![Just("10.96.0.10"), Just("10.96.0.11")]),
        )
            .prop_map(|(slots, dns)| {
                let mut push = Push {
                    cluster: dns.map(|dns| ClusterConfig {
                        cluster_dns: dns.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                for (slot, change) in slots {
                    match change {
                        Some((udp, endpoints, elsewhere)) => {
                            push.services.push(service(slot, udp, endpoints, elsewhere))
                        }
                        None => push.removed.push(ServiceRef {
                            namespace: "default".into(),
                            name: format!("svc-{slot}"),
                        }),
                    }
                }
                push
            })
    }

    fn runtime() -> Runtime<RecordingRunner> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = rt.enter();
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
        let datapath = rt
            .block_on(DataPath::open("switchyard", RecordingRunner::new()))
            .unwrap();
        let local = ServiceKey::new("kube-system", "local");
        let cfg = AgentConfig {
            node: NodeContext {
                zone: None,
                node_name: "node-1".into(),
                node_ips: vec![],
                pod_cidr: None,
            },
            agent_version: "test".into(),
            local_services: vec![(local, ServiceEntry::default())],
            dns_listen: "192.168.50.2:53".parse().ok(),
            full_resync: FULL_RESYNC,
            health_timeout: crate::health::DEFAULT_TIMEOUT,
            node_labels: BTreeMap::new(),
            registered: NodeAddresses::default(),
        };
        let channels = crate::connection::fixed(channel);
        Runtime::new(
            cfg,
            channels,
            datapath,
            Conntrack::disabled(),
            Metrics::new(),
        )
        .0
    }

    proptest! {
        /// What a delta folds into the data path's snapshot, Service by
        /// Service, is the snapshot built from the whole view; the entries
        /// it reports changed are exactly those that differ, and the stale
        /// flows of those alone are the stale flows of the whole snapshots.
        #[test]
        fn folding_deltas_equals_building_from_the_whole_view(
            deltas in proptest::collection::vec(delta(), 1..12),
        ) {
            let mut rt = runtime();
            rt.snapshot = rt.snapshot(&rt.view);
            for (version, mut push) in deltas.into_iter().enumerate() {
                push.version = version as u64 + 1;
                let named = named_services(&push);
                let whole_before = rt.snapshot.clone();
                rt.view = Arc::new(rt.view.fold(push));
                let (changed, before, after) = rt.fold_into_snapshot(named);
                let whole = rt.snapshot(&rt.view);
                prop_assert_eq!(&rt.snapshot, &whole);
                let differing: BTreeSet<ServiceKey> = whole_before
                    .services
                    .keys()
                    .chain(whole.services.keys())
                    .filter(|k| whole_before.services.get(*k) != whole.services.get(*k))
                    .cloned()
                    .collect();
                prop_assert_eq!(&changed, &differing);
                prop_assert_eq!(stale_flows(&before, &after), stale_flows(&whole_before, &whole));
            }
        }
    }
}
