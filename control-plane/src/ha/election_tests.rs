//! The election loop against a coordination store held in memory, whose
//! leases expire on tokio's (paused) clock and whose clients can be cut
//! off: leadership without etcd, and never two leaders.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::time::Instant;

use super::election::LEASE_TTL;
use super::{run, Agents, Announcement, Coordination, Member, Peers};
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryConfig, Sharing};
use crate::store::{SledStore, StoreError};

/// etcd's part in an election: leases with deadlines, the leader key and
/// member records held under leases.
#[derive(Default)]
struct Shared {
    next: i64,
    leases: HashMap<i64, (Instant, Duration)>,
    leader: Option<(i64, String)>,
    members: HashMap<String, (i64, Member)>,
}

impl Shared {
    /// Drops expired leases and what they held.
    fn expire(&mut self) {
        let now = Instant::now();
        self.leases.retain(|_, (until, _)| *until > now);
        let leases = &self.leases;
        if self
            .leader
            .as_ref()
            .is_some_and(|(l, _)| !leases.contains_key(l))
        {
            self.leader = None;
        }
        self.members.retain(|_, (l, _)| leases.contains_key(l));
    }
}

/// One control plane's connection to the shared store; `cut` makes every
/// call hang, as a partitioned etcd does.
struct Client {
    shared: Arc<Mutex<Shared>>,
    cut: Arc<AtomicBool>,
}

impl Client {
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Shared) -> T + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let (shared, cut) = (self.shared.clone(), self.cut.clone());
        async move {
            if cut.load(Ordering::SeqCst) {
                futures::future::pending::<()>().await;
            }
            let mut shared = shared.lock().unwrap();
            shared.expire();
            Ok(f(&mut shared))
        }
        .boxed()
    }
}

impl Coordination for Client {
    fn grant(&self, ttl: i64) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.call(move |s| {
            s.next += 1;
            let ttl = Duration::from_secs(ttl as u64);
            s.leases.insert(s.next, (Instant::now() + ttl, ttl));
            s.next
        })
    }

    fn keep_alive(&self, lease: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.call(move |s| match s.leases.get_mut(&lease) {
            Some((until, ttl)) => {
                *until = Instant::now() + *ttl;
                true
            }
            None => false,
        })
    }

    fn campaign<'a>(
        &'a self,
        lease: i64,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let name = name.to_string();
        self.call(move |s| {
            if s.leader.is_none() && s.leases.contains_key(&lease) {
                s.leader = Some((lease, name));
            }
            s.leader.as_ref().is_some_and(|(l, _)| *l == lease)
        })
    }

    fn leader(&self) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        self.call(|s| s.leader.as_ref().map(|(_, n)| n.clone()))
    }

    fn announce<'a>(
        &'a self,
        lease: i64,
        member: &'a Member,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let member = member.clone();
        self.call(move |s| {
            if s.leases.contains_key(&lease) {
                s.members.insert(member.name.clone(), (lease, member));
            }
        })
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, StoreError>> {
        self.call(|s| s.members.values().map(|(_, m)| m.clone()).collect())
    }

    fn revoke(&self, lease: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.call(move |s| {
            s.leases.remove(&lease);
            s.expire();
        })
    }
}

/// A control plane running the election: its registry (on a sled store of
/// its own: the election only reads and sets leadership), its link to the
/// shared store, and its stop switch.
struct ControlPlane {
    registry: Arc<Registry>,
    cut: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn control_plane(name: &str, shared: &Arc<Mutex<Shared>>) -> ControlPlane {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let cfg = RegistryConfig {
        service_cidrs: "10.96.0.0/12".parse().unwrap(),
        node_port_range: 30000..=32767,
        lb_pool: None,
        log_retention: 1000,
    };
    let registry = Registry::open(store, cfg, Metrics::new(), Sharing::Shared)
        .await
        .unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let client = Arc::new(Client {
        shared: shared.clone(),
        cut: cut.clone(),
    });
    let me = Announcement {
        name: name.to_string(),
        address: format!("https://{name}:7443"),
        started: String::new(),
        agents: Arc::new(Agents::default),
        learn: Arc::new(|_| {}),
        peers: Peers::new(None),
    };
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(run(client, Arc::downgrade(&registry), me, stopping));
    ControlPlane {
        registry,
        cut,
        stop,
        _dir: dir,
    }
}

/// Advances the paused clock in small steps for `total`, checking after
/// each that no two control planes lead; returns who leads then.
async fn run_for(total: Duration, cps: &[&ControlPlane]) -> Vec<bool> {
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while waited < total {
        tokio::time::sleep(step).await;
        waited += step;
        let leading = cps.iter().filter(|c| c.registry.is_leader()).count();
        assert!(leading <= 1, "{leading} control planes lead at once");
    }
    cps.iter().map(|c| c.registry.is_leader()).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn one_control_plane_leads_and_the_other_takes_over_when_it_stops() {
    let (shared, a, b) = cp1_leading_then_cp2().await;
    assert_eq!(
        run_for(Duration::from_secs(6), &[&a, &b]).await,
        [true, false]
    );
    let names: Vec<String> = {
        let s = shared.lock().unwrap();
        let mut names: Vec<String> = s.members.keys().cloned().collect();
        names.sort();
        names
    };
    assert_eq!(names, ["cp-1", "cp-2"]);
    // A clean stop gives the lease up: the other leads at its next round,
    // long before the lease would have expired.
    a.stop.send_replace(true);
    assert_eq!(
        run_for(Duration::from_secs(3), &[&a, &b]).await,
        [false, true]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_leader_cut_off_from_the_store_steps_down_before_another_can_lead() {
    let (_shared, a, b) = cp1_leading_then_cp2().await;
    assert_eq!(
        run_for(Duration::from_secs(4), &[&a, &b]).await,
        [true, false]
    );
    a.cut.store(true, Ordering::SeqCst);
    // run_for asserts at every step that the two never lead at once.
    let cut_at = Instant::now();
    let mut stepped_down = None;
    while cut_at.elapsed() < LEASE_TTL * 2 {
        run_for(Duration::from_millis(100), &[&a, &b]).await;
        if stepped_down.is_none() && !a.registry.is_leader() {
            stepped_down = Some(cut_at.elapsed());
        }
    }
    let stepped_down = stepped_down.expect("the cut-off leader never stepped down");
    assert!(
        stepped_down < LEASE_TTL,
        "stepped down after {stepped_down:?}"
    );
    assert!(b.registry.is_leader(), "nobody took over");
}

/// cp-1 started and leading alone, then cp-2 started beside it; the
/// clock is paused from then on.
async fn cp1_leading_then_cp2() -> (Arc<Mutex<Shared>>, ControlPlane, ControlPlane) {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let a = control_plane("cp-1", &shared).await;
    tokio::time::pause();
    assert_eq!(run_for(Duration::from_secs(1), &[&a]).await, [true]);
    let b = control_plane_paused("cp-2", &shared).await;
    (shared, a, b)
}

/// [`control_plane`] started while the clock is paused: the registry's
/// first write must not wait on virtual time running ahead of sled.
async fn control_plane_paused(name: &str, shared: &Arc<Mutex<Shared>>) -> ControlPlane {
    tokio::time::resume();
    let cp = control_plane(name, shared).await;
    tokio::time::pause();
    cp
}
