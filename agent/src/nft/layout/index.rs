//! The constant layout's desired table kept between applies, by Service,
//! so a push recompiles only the Services it changed and the delta names
//! only the tuples they touch: its cost follows the change, not the table.
//!
//! Two Services may want one tuple (both list an external IP and port, or
//! the same NodePort); every claimant is remembered and the first in
//! Service order owns it, as a full [`compile`](super::compile) decides,
//! so the table after any sequence of updates equals one built at once.
//! When the owner goes, the next claimant's facts take its place.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::compile::{service, Wanted};
use super::table::{Table, TupleFacts};
use crate::model::{NodeContext, ServiceKey, Snapshot};
use crate::nft::state::{MapKey, Target};

/// Every Service's wants, and who claims each tuple.
#[derive(Debug, Clone, Default)]
pub struct Index {
    wanted: BTreeMap<ServiceKey, Wanted>,
    /// The Services wanting each tuple, in Service order. Nearly always
    /// one, so a sorted list rather than a map.
    claims: BTreeMap<MapKey, Vec<ServiceKey>>,
    /// How many Services list each hairpin address.
    hairpin: BTreeMap<Ipv4Addr, usize>,
    /// How many Services want each affinity timeout.
    timeouts: BTreeMap<u32, usize>,
}

/// The part of the table one update may have changed: the touched tuples
/// and hairpin addresses, before and after. [`delta`](super::delta)
/// between the two is the update's transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub before: Table,
    pub after: Table,
}

impl Index {
    /// Compiles every Service of `snap`.
    pub fn build(ctx: &NodeContext, snap: &Snapshot) -> Index {
        let mut index = Index::default();
        let all: BTreeSet<ServiceKey> = snap.services.keys().cloned().collect();
        index.update(ctx, snap, &all);
        index
    }

    /// The whole desired table (for a full load: walks every tuple).
    pub fn table(&self) -> Table {
        let mut table = Table {
            hairpin: self.hairpin.keys().copied().collect(),
            affinity_timeouts: self.timeouts.keys().copied().collect(),
            ..Table::default()
        };
        for (tuple, claimants) in &self.claims {
            if let Some(facts) = self.owner_facts(tuple, claimants) {
                table.tuples.insert(*tuple, facts.clone());
            }
            for loser in claimants.iter().skip(1) {
                table
                    .conflicts
                    .push(format!("{loser}: {tuple} already taken"));
            }
        }
        table
    }

    /// Recompiles the Services in `changed` from `snap` (absent: removed)
    /// and returns what that changed.
    pub fn update(
        &mut self,
        ctx: &NodeContext,
        snap: &Snapshot,
        changed: &BTreeSet<ServiceKey>,
    ) -> Change {
        let fresh: Vec<(&ServiceKey, Wanted)> = changed
            .iter()
            .map(|key| {
                let wanted = snap
                    .services
                    .get(key)
                    .map(|svc| service(ctx, svc))
                    .unwrap_or_default();
                (key, wanted)
            })
            .collect();
        let mut tuples = BTreeSet::new();
        let mut hairpin = BTreeSet::new();
        for (key, wanted) in &fresh {
            let old = self.wanted.get(*key);
            tuples.extend(old.into_iter().flat_map(|w| w.tuples.keys()).copied());
            tuples.extend(wanted.tuples.keys().copied());
            hairpin.extend(old.into_iter().flat_map(|w| &w.hairpin).copied());
            hairpin.extend(wanted.hairpin.iter().copied());
        }
        let before = self.part(&tuples, &hairpin);
        for (key, wanted) in fresh {
            self.forget(key);
            self.remember(key, wanted);
        }
        let after = self.part(&tuples, &hairpin);
        Change { before, after }
    }

    /// The table restricted to `tuples` and `hairpin`.
    fn part(&self, tuples: &BTreeSet<MapKey>, hairpin: &BTreeSet<Ipv4Addr>) -> Table {
        Table {
            tuples: tuples
                .iter()
                .filter_map(|t| {
                    let facts = self.owner_facts(t, self.claims.get(t)?)?;
                    Some((*t, facts.clone()))
                })
                .collect(),
            hairpin: hairpin
                .iter()
                .filter(|ip| self.hairpin.contains_key(ip))
                .copied()
                .collect(),
            conflicts: Vec::new(),
            affinity_timeouts: self.timeouts.keys().copied().collect(),
        }
    }

    /// Where the owner of `tuple` sends new connections; `None` when no
    /// Service has it.
    pub fn targets(&self, tuple: &MapKey) -> Option<BTreeSet<Target>> {
        let facts = self.owner_facts(tuple, self.claims.get(tuple)?)?;
        Some(facts.slots.values().copied().collect())
    }

    /// The tuples Services in `keys` want that another Service wants too,
    /// worded as [`Table::conflicts`].
    pub fn conflicts_among(&self, keys: &BTreeSet<ServiceKey>) -> Vec<String> {
        let tuples: BTreeSet<&MapKey> = keys
            .iter()
            .filter_map(|k| self.wanted.get(k))
            .flat_map(|w| w.tuples.keys())
            .collect();
        tuples
            .into_iter()
            .flat_map(|tuple| {
                let claimants = self
                    .claims
                    .get(tuple)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                claimants
                    .iter()
                    .skip(1)
                    .map(move |loser| format!("{loser}: {tuple} already taken"))
            })
            .collect()
    }

    /// Whether some Service has `tuple`.
    pub fn has(&self, tuple: &MapKey) -> bool {
        self.claims.contains_key(tuple)
    }

    fn owner_facts(&self, tuple: &MapKey, claimants: &[ServiceKey]) -> Option<&TupleFacts> {
        self.wanted.get(claimants.first()?)?.tuples.get(tuple)
    }

    fn forget(&mut self, key: &ServiceKey) {
        let Some(old) = self.wanted.remove(key) else {
            return;
        };
        for tuple in old.tuples.keys() {
            if let Some(claimants) = self.claims.get_mut(tuple) {
                claimants.retain(|k| k != key);
                if claimants.is_empty() {
                    self.claims.remove(tuple);
                }
            }
        }
        for ip in &old.hairpin {
            release(&mut self.hairpin, ip);
        }
        for timeout in timeouts(&old) {
            release(&mut self.timeouts, &timeout);
        }
    }

    fn remember(&mut self, key: &ServiceKey, wanted: Wanted) {
        if wanted.tuples.is_empty() && wanted.hairpin.is_empty() {
            return;
        }
        for tuple in wanted.tuples.keys() {
            let claimants = self.claims.entry(*tuple).or_default();
            if let Err(at) = claimants.binary_search(key) {
                claimants.insert(at, key.clone());
            }
        }
        for ip in &wanted.hairpin {
            *self.hairpin.entry(*ip).or_default() += 1;
        }
        for timeout in timeouts(&wanted) {
            *self.timeouts.entry(timeout).or_default() += 1;
        }
        self.wanted.insert(key.clone(), wanted);
    }
}

/// The affinity timeouts a Service wants (one per Service in practice).
fn timeouts(wanted: &Wanted) -> BTreeSet<u32> {
    wanted.tuples.values().filter_map(|f| f.affinity).collect()
}

/// Drops one use of `key`, and the key with its last use.
fn release<K: Ord>(uses: &mut BTreeMap<K, usize>, key: &K) {
    if let Some(count) = uses.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            uses.remove(key);
        }
    }
}
