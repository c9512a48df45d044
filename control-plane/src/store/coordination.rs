//! What a store several control planes share offers them: leases, a
//! leader key held under a lease, and member records that vanish with
//! their lease. The store owns this contract (etcd implements it); `ha`
//! runs the election and the records on top of it.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::StoreError;

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
