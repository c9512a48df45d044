//! Several control planes on one store: who they are (member records, for
//! `swctl get controlplanes`) and which of them leads (an etcd lease
//! election). What must run once — history compaction, the token sweep —
//! runs on the leader only, and the leader's own writes are fenced on its
//! leader key, so one that lost its lease cannot write as leader.
//!
//! A store only this process writes (sled) needs no election: the one
//! control plane always leads.

mod election;
#[cfg(test)]
mod election_tests;
mod peers;

use std::sync::Arc;

pub use crate::store::coordination::{name_holder, Coordination, Member, NodeReport};
pub use election::{run, Agents, Announcement};
pub use peers::Peers;

use crate::registry::Registry;
use crate::store::StoreError;

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
