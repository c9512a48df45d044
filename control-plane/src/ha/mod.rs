//! Several control planes on one store: who they are (member records, for
//! `swctl get controlplanes`) and which of them leads (an etcd lease
//! election). What must run once — history compaction, the token sweep —
//! runs on the leader only, and the leader's own writes are fenced on its
//! leader key, so one that lost its lease cannot write as leader.
//!
//! A store only this process writes (sled) needs no election: the one
//! control plane always leads.

mod election;
mod peers;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use election::{run, Announcement, LEASE_TTL};
pub use peers::Peers;

use crate::registry::Registry;
use crate::store::StoreError;

/// A control plane as it announces itself to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub address: String,
    pub started: String,
    pub revision: u64,
    pub agents: u32,
    /// The agents streaming from it and how far each applied, so every
    /// control plane's `get nodes` shows nodes connected elsewhere.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeReport>,
    /// The agents whose port-forward tunnels end here.
    #[serde(default)]
    pub tunnels: Vec<String>,
    /// When this record was written (Unix ms, its writer's clock): how old
    /// the last-heard times in `nodes` are.
    #[serde(default)]
    pub announced_unix_ms: u64,
}

/// One agent's sync state as the control plane it streams from saw it:
/// snapshot versions are that control plane's own (they follow the bursts
/// of changes it saw), so others show its verdict rather than compare.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// SYNCED, STALE or NACKED.
    pub state: String,
    pub applied_version: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the agent last sent anything (Unix milliseconds, 0: never):
    /// the leader judges every node's Ready condition from these.
    #[serde(default)]
    pub last_heard_unix_ms: u64,
}

/// What a shared store offers for coordination: leases, a leader key held
/// under a lease, and member records that vanish with their lease.
pub trait Coordination: Send + Sync + 'static {
    /// A lease that lives `ttl` seconds unless kept alive.
    fn grant(&self, ttl: i64) -> BoxFuture<'_, Result<i64, StoreError>>;
    /// Renews a lease; `false` when it is gone (expired or revoked).
    fn keep_alive(&self, lease: i64) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Takes the leader key under `lease` if nobody holds it; `true` when
    /// `lease` holds it now.
    fn campaign<'a>(&'a self, lease: i64, name: &'a str)
        -> BoxFuture<'a, Result<bool, StoreError>>;
    /// The name the leader key holds, if anyone holds it.
    fn leader(&self) -> BoxFuture<'_, Result<Option<String>, StoreError>>;
    /// Writes this control plane's record under `lease`.
    fn announce<'a>(
        &'a self,
        lease: i64,
        member: &'a Member,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Every control plane's record.
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, StoreError>>;
    /// Gives the lease up (a clean shutdown hands leadership over at once).
    fn revoke(&self, lease: i64) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// The live record of another control plane holding `name`: one at
/// another address. Records are kept by name, so two live control planes
/// of one name would overwrite each other's; a restart of the same one
/// (same address, its old lease not yet expired) holds nobody else's.
pub async fn name_holder(
    coord: &dyn Coordination,
    name: &str,
    address: &str,
) -> Result<Option<Member>, StoreError> {
    Ok(coord
        .members()
        .await?
        .into_iter()
        .find(|m| m.name == name && m.address != address))
}

/// Answers `swctl get controlplanes`.
pub struct Directory {
    coord: Option<Arc<dyn Coordination>>,
    me: Announcement,
}

/// A control plane's record and whether it leads.
pub type Listed = (Member, bool);

impl Directory {
    pub fn new(coord: Option<Arc<dyn Coordination>>, me: Announcement) -> Self {
        Self { coord, me }
    }

    /// Every control plane, sorted by name: from the store when it is
    /// shared, else just this one (which leads).
    pub async fn list(&self, registry: &Registry) -> Result<Vec<Listed>, StoreError> {
        let Some(coord) = &self.coord else {
            return Ok(vec![(self.me.member(registry), true)]);
        };
        let leader = coord.leader().await?;
        let mut members: Vec<Listed> = coord
            .members()
            .await?
            .into_iter()
            .map(|m| {
                let leads = leader.as_deref() == Some(m.name.as_str());
                (m, leads)
            })
            .collect();
        // This control plane's own row is live, not as last announced.
        for (m, _) in &mut members {
            if m.name == self.me.name {
                *m = self.me.member(registry);
            }
        }
        members.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(members)
    }
}
