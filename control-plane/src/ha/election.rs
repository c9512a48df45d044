//! The loop every control plane on a shared store runs: hold a lease,
//! announce itself under it, and campaign for the leader key with it.
//!
//! Leadership is given up locally as soon as the lease can no longer be
//! shown alive: when renewals have failed for longer than the lease's TTL
//! minus one renewal interval, the lease may already have expired in etcd,
//! and another control plane may lead; this one stops its once-only work
//! before that can overlap (and its fenced writes fail in any case).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::{Coordination, Member, NodeReport, Peers};
use crate::registry::Registry;

/// The leader lease's TTL: how long a cut-off leader may hold on.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the lease is renewed and the record refreshed.
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// The agents a control plane announces: those streaming from it, and
/// those whose port-forward tunnels end at it.
#[derive(Debug, Clone, Default)]
pub struct Agents {
    pub nodes: BTreeMap<String, NodeReport>,
    pub tunnels: Vec<String>,
}

/// Where the election hands the other control planes' records.
pub type Learn = Arc<dyn Fn(&[Member]) + Send + Sync>;

/// What this control plane says of itself. The election knows nothing of
/// streams or tunnels: the server hands it functions that tell of its
/// agents and learn of the others'.
#[derive(Clone)]
pub struct Announcement {
    pub name: String,
    pub address: String,
    pub started: String,
    /// Its agents, asked afresh for every record.
    pub agents: Arc<dyn Fn() -> Agents + Send + Sync>,
    /// Told every other control plane's record as it is read.
    pub learn: Learn,
    /// What it learns of the other control planes.
    pub peers: Arc<Peers>,
}

impl Announcement {
    /// Its record as of now.
    pub fn member(&self, registry: &Registry) -> Member {
        let Agents { nodes, tunnels } = (self.agents)();
        let announced = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Member {
            name: self.name.clone(),
            address: self.address.clone(),
            started: self.started.clone(),
            revision: registry.revision(),
            agents: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
            nodes,
            tunnels,
            announced_unix_ms: announced,
        }
    }
}

struct Lease {
    id: i64,
    renewed: Instant,
}

/// Runs until the server stops (then the lease is given up, so another
/// control plane leads at once rather than after the TTL) or the registry
/// is gone.
pub async fn run(
    coord: Arc<dyn Coordination>,
    registry: Weak<Registry>,
    me: Announcement,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut lease: Option<Lease> = None;
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = async { stopping.wait_for(|s| *s).await.is_ok() } => {
                // Stop leading before giving the lease up: another control
                // plane may lead as soon as it is gone.
                if let Some(registry) = registry.upgrade() {
                    registry.set_leader(None);
                }
                if let Some(l) = lease {
                    if let Err(e) = coord.revoke(l.id).await {
                        tracing::warn!(error = %e, "cannot give the lease up");
                    }
                }
                return;
            }
        }
        let Some(registry) = registry.upgrade() else {
            return;
        };
        // No step may hold the loop past one interval: a cut-off store
        // must not keep this control plane leading on a stale lease.
        if tokio::time::timeout(RENEW_EVERY, renew(coord.as_ref(), &mut lease))
            .await
            .is_err()
        {
            tracing::warn!("the store did not answer a lease renewal in time");
        }
        if lease.as_ref().is_some_and(|l| !l.usable()) {
            tracing::warn!("cannot renew the lease in time; giving it up");
            lease = None;
        }
        let leading = match &lease {
            Some(l) if l.renewed.elapsed() < RENEW_EVERY => {
                tokio::time::timeout(RENEW_EVERY, lead(coord.as_ref(), &registry, l, &me))
                    .await
                    .unwrap_or_else(|_| registry.is_leader())
            }
            // Not renewed this round, but still surely alive in etcd.
            Some(_) => registry.is_leader(),
            None => false,
        };
        let lease_id = lease.as_ref().map(|l| l.id).filter(|_| leading);
        if registry.set_leader(lease_id) {
            match lease_id {
                Some(id) => {
                    tracing::info!(name = %me.name, lease = id, "leading: this control plane runs compaction and the token sweep")
                }
                None => tracing::warn!(name = %me.name, "not leading (any more)"),
            }
        }
    }
}

impl Lease {
    /// Whether etcd surely still holds the lease: renewed within its TTL
    /// less one renewal interval (the time the next check may take).
    fn usable(&self) -> bool {
        self.renewed.elapsed() + RENEW_EVERY < LEASE_TTL
    }
}

/// Keeps the lease alive, or gets a new one once it is lost.
async fn renew(coord: &dyn Coordination, lease: &mut Option<Lease>) {
    let ttl = i64::try_from(LEASE_TTL.as_secs()).unwrap_or(10);
    match lease {
        None => match coord.grant(ttl).await {
            Ok(id) => {
                *lease = Some(Lease {
                    id,
                    renewed: Instant::now(),
                })
            }
            Err(e) => tracing::warn!(error = %e, "cannot get a lease from the store"),
        },
        Some(l) => match coord.keep_alive(l.id).await {
            Ok(true) => l.renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!(lease = l.id, "the lease expired");
                *lease = None;
            }
            Err(e) => tracing::warn!(lease = l.id, error = %e, "cannot renew the lease; retrying"),
        },
    }
}

/// Announces this control plane and campaigns; whether it leads now.
async fn lead(
    coord: &dyn Coordination,
    registry: &Registry,
    lease: &Lease,
    me: &Announcement,
) -> bool {
    let member = me.member(registry);
    if let Err(e) = coord.announce(lease.id, &member).await {
        tracing::warn!(error = %e, "cannot announce this control plane");
    }
    match coord.members().await {
        Ok(members) => {
            let others: Vec<Member> = members.into_iter().filter(|m| m.name != me.name).collect();
            (me.learn)(&others);
            me.peers.set(others);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the other control planes"),
    }
    match coord.campaign(lease.id, &me.name).await {
        Ok(leading) => leading,
        Err(e) => {
            tracing::warn!(error = %e, "cannot campaign for leadership");
            registry.is_leader() && lease.usable()
        }
    }
}
