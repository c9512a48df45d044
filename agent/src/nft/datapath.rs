//! [`DataPath`]: owns the agent's table, remembers what is applied, and turns
//! each snapshot into one incremental transaction of the constant layout
//! (see [`layout`]): a change is element deletes and adds sent as one
//! netlink batch.
//!
//! A full load (the first apply, a repair) takes the cheapest safe way: a
//! table that does not exist is made (fixed chains with `nft -f`, then the
//! elements over netlink); one whose listing shows the fixed chains intact
//! gets just the differing elements (a restarted agent whose table already
//! holds the snapshot writes nothing); any other is rewritten in place by
//! one `nft -f` transaction.
//!
//! Drift detection is cheap by design: every transaction also rewrites a
//! one-element `canary` set with a new generation number, and
//! [`DataPath::check_drift`] lists only that set. A deleted table, `flush
//! ruleset`, or a restored older copy all change or remove the canary; then
//! [`DataPath::resync`] loads the table in full. Edits that keep the canary
//! (`flush table`, a single rule or element changed by hand) are only seen
//! by a full resync, which the caller may run on a slow timer:
//! [`DataPath::read_live_later`] lists the table off the caller's loop
//! (seconds at 10,000 Services) and [`DataPath::resync_from`] repairs from
//! that listing if it is still current.
//!
//! After a change takes a backend from a Service with ClientIP affinity,
//! the clients remembered on it are forgotten (see `layout::affinity`).

use std::collections::BTreeSet;
use std::future::Future;

use tracing::{debug, info, instrument, warn};

use super::error::{NftError, Result};
use super::layout::{self, Index, Live};
use super::runner::NftRunner;
use super::state::CANARY_SET;
use super::transaction::{ApplyStats, Transaction};
use crate::cpu::heavy;
use crate::model::{NodeContext, ServiceKey, Snapshot};

/// The agent's nftables data path.
#[derive(Debug)]
pub struct DataPath<R> {
    table: String,
    runner: R,
    /// Last generation written to (or read from) the canary.
    generation: u32,
    /// What the table holds, by Service, and the node it was compiled
    /// for; `None` (at start, after a failed transaction) makes the next
    /// apply a full load.
    applied: Option<(NodeContext, Index)>,
    /// The table holds an older agent's layout: the first full load
    /// deletes it rather than leave its chains and maps behind.
    replace: bool,
    /// The canary showed a table of ours at open: the first full apply
    /// reads it back and leaves it alone if it already holds the snapshot
    /// (an agent restart at 10,000 Services then writes nothing).
    adopt: bool,
}

impl<R: NftRunner> DataPath<R> {
    /// Notes the live table's generation and layout; the first
    /// [`apply`](Self::apply) reads a table of ours back and sends only what
    /// differs, so traffic never blips.
    pub async fn open(table: &str, runner: R) -> Result<Self> {
        validate_table_name(table)?;
        let mut dp = Self {
            table: table.to_owned(),
            runner,
            generation: 0,
            applied: None,
            replace: false,
            adopt: false,
        };
        // A table nft cannot read (nft missing) is written all the same;
        // the first apply's NACK says what is wrong.
        match dp.live_generation().await {
            Ok(generation) => {
                dp.adopt = generation.is_some();
                dp.generation = generation.unwrap_or(0);
            }
            Err(e) => warn!(table, error = %e, "cannot read the nftables table yet"),
        }
        dp.replace = dp.holds_old_layout().await;
        info!(
            table,
            generation = dp.generation,
            replace = dp.replace,
            "opened nftables table"
        );
        Ok(dp)
    }

    /// Programs `snap` in full (see the module docs for how). On error the
    /// previous ruleset stays in force.
    #[instrument(skip_all, fields(table = %self.table, version = snap.version))]
    pub async fn apply(&mut self, ctx: &NodeContext, snap: &Snapshot) -> Result<ApplyStats> {
        self.applied = None;
        let index = heavy(|| Index::build(ctx, snap));
        let live = match std::mem::take(&mut self.adopt) {
            true => self.read_live().await,
            false => None,
        };
        self.load(ctx, index, live).await
    }

    /// Makes the table hold `index`: nothing when `live` (a listing at our
    /// generation) shows it does already; the differing elements when
    /// `live` shows the fixed chains intact; else a whole new table when
    /// there is none, or a rewrite in place.
    async fn load(
        &mut self,
        ctx: &NodeContext,
        index: Index,
        live: Option<Live>,
    ) -> Result<ApplyStats> {
        let desired = heavy(|| index.table());
        for conflict in &desired.conflicts {
            warn!(%conflict, "service address conflict");
        }
        let live = live.filter(|l| l.generation == Some(self.generation));
        let generation = self.generation.wrapping_add(1);
        let stats = match live {
            Some(live) if heavy(|| live.holds(&desired, ctx.pod_cidr)) => {
                info!(table = %self.table, "the table already holds the snapshot");
                self.applied = Some((ctx.clone(), index));
                return Ok(ApplyStats::default());
            }
            Some(live) if live.has_chains_for(&desired, ctx.pod_cidr) => {
                let mut tx = heavy(|| layout::delta(&self.table, &live.table, &desired));
                tx.set_generation(generation);
                self.runner.apply(&tx).await?;
                tx.stats
            }
            _ if self.table_exists().await? => {
                let script = heavy(|| self.script(&desired, ctx, generation));
                self.runner.run_script(&script).await?;
                full_stats(&desired)
            }
            _ => {
                self.create(&desired, ctx, generation).await?;
                full_stats(&desired)
            }
        };
        self.generation = generation;
        self.replace = false;
        // The affinity map outlives full loads: its clients of backends
        // gone meanwhile are forgotten.
        if !desired.affinity_timeouts.is_empty() {
            self.forget_stranded_clients(&index).await;
        }
        self.applied = Some((ctx.clone(), index));
        Ok(stats)
    }

    /// Like [`apply`](Self::apply) when only the Services in `changed` may
    /// differ from the last applied snapshot: recompiles just those and
    /// sends the elements that differ. Falls back to a full apply after a
    /// failure, on a new node context, or before the first apply.
    #[instrument(skip_all, fields(table = %self.table, version = snap.version, changed = changed.len()))]
    pub async fn apply_changes(
        &mut self,
        ctx: &NodeContext,
        snap: &Snapshot,
        changed: &BTreeSet<ServiceKey>,
    ) -> Result<ApplyStats> {
        let mut index = match self.applied.take() {
            Some((indexed, index)) if indexed == *ctx => index,
            _ => return self.apply(ctx, snap).await,
        };
        let change = index.update(ctx, snap, changed);
        for conflict in &index.conflicts_among(changed) {
            warn!(%conflict, "service address conflict");
        }
        let mut tx = layout::delta(&self.table, &change.before, &change.after);
        if !tx.has_changes() {
            self.applied = Some((ctx.clone(), index));
            return Ok(ApplyStats::default());
        }
        let generation = self.generation.wrapping_add(1);
        tx.set_generation(generation);
        // On failure `applied` stays `None`: the next apply loads in full.
        self.runner.apply(&tx).await?;
        self.generation = generation;
        if layout::may_strand(&change) {
            self.forget_stranded_clients(&index).await;
        }
        self.applied = Some((ctx.clone(), index));
        Ok(tx.stats)
    }

    /// Cheap check: does the canary still hold our generation?
    pub async fn check_drift(&self) -> Result<bool> {
        Ok(self.live_generation().await? != Some(self.generation))
    }

    /// Runs [`check_drift`](Self::check_drift) and, on drift, [`resync`](Self::resync).
    /// Returns whether a repair happened.
    pub async fn repair_if_drifted(&mut self, ctx: &NodeContext, snap: &Snapshot) -> Result<bool> {
        if !self.check_drift().await? {
            return Ok(false);
        }
        warn!(table = %self.table, "nftables table drifted, repairing");
        let stats = self.resync(ctx, snap).await?;
        info!(?stats, "nftables table repaired");
        Ok(true)
    }

    /// Loads `snap` in full, as [`apply`](Self::apply) does: the drift repair.
    pub async fn resync(&mut self, ctx: &NodeContext, snap: &Snapshot) -> Result<ApplyStats> {
        self.apply(ctx, snap).await
    }

    /// Lists the table as a task of its own, so the caller keeps applying
    /// pushes meanwhile; hand the result to [`resync_from`](Self::resync_from).
    pub fn read_live_later(&self) -> impl Future<Output = Result<Live>> + Send + 'static
    where
        R: Clone + 'static,
    {
        let (runner, table) = (self.runner.clone(), self.table.clone());
        async move { runner.list_table(&table).await }
    }

    /// Repairs the table if `live` (from [`read_live_later`](Self::read_live_later))
    /// differs from what was applied, or if the last transaction failed.
    /// `Ok(None)` when the listing is out of date: a transaction ran after
    /// it was taken, or the canary is gone (the drift check repairs that).
    pub async fn resync_from(
        &mut self,
        ctx: &NodeContext,
        snap: &Snapshot,
        live: Live,
    ) -> Result<Option<ApplyStats>> {
        if live.generation != Some(self.generation) {
            return Ok(None);
        }
        let index = match self.applied.take() {
            Some((indexed, index)) if indexed == *ctx => index,
            _ => heavy(|| Index::build(ctx, snap)),
        };
        let stats = self.load(ctx, index, Some(live)).await?;
        Ok(Some(stats))
    }

    /// The script a full [`apply`](Self::apply) would run, without running it.
    pub fn full_load(&self, ctx: &NodeContext, snap: &Snapshot) -> String {
        let desired = layout::compile(ctx, snap);
        self.script(&desired, ctx, self.generation.wrapping_add(1))
    }

    /// The full load of `desired` writing canary `generation`.
    fn script(&self, desired: &layout::Table, ctx: &NodeContext, generation: u32) -> String {
        layout::full_load(&self.table, desired, ctx.pod_cidr, generation, self.replace)
    }

    /// Last generation written to the canary.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// Makes a table that does not exist yet in two steps: its fixed
    /// chains and empty sets with `nft -f` (a few hundred rules, whatever
    /// the Services), then every element and the canary in one netlink
    /// batch, since nft takes seconds to parse 100,000 elements. Nothing
    /// was served before, so nothing is lost between the steps; should the
    /// second fail, the table has no canary and the next apply loads it in
    /// full, in one transaction.
    async fn create(
        &self,
        desired: &layout::Table,
        ctx: &NodeContext,
        generation: u32,
    ) -> Result<()> {
        let skeleton = layout::Table {
            affinity_timeouts: desired.affinity_timeouts.clone(),
            ..layout::Table::default()
        };
        let script = layout::render(&self.table, &skeleton, ctx.pod_cidr);
        self.runner.run_script(&script).await?;
        let mut elements = heavy(|| layout::delta(&self.table, &skeleton, desired));
        elements.set_generation(generation);
        self.runner.apply(&elements).await
    }

    /// Whether table `ip <name>` exists (`nft list tables`: names only).
    async fn table_exists(&self) -> Result<bool> {
        let Some(json) = self.runner.list_json("tables").await? else {
            return Ok(false);
        };
        let listing: serde_json::Value = serde_json::from_str(&json).map_err(NftError::Json)?;
        let tables = listing["nftables"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(tables
            .iter()
            .any(|o| o["table"]["family"] == "ip" && o["table"]["name"] == self.table.as_str()))
    }

    /// A listing of the table to adopt or repair from; `None` (logged)
    /// when it cannot be read.
    async fn read_live(&self) -> Option<Live> {
        match self.runner.list_table(&self.table).await {
            Ok(live) => Some(live),
            Err(e) => {
                warn!(error = %e, "cannot read the table back; loading it in full");
                None
            }
        }
    }

    async fn live_generation(&self) -> Result<Option<u32>> {
        let object = format!("set ip {} {CANARY_SET}", self.table);
        match self.runner.list_json(&object).await? {
            Some(json) => Ok(layout::read_live(json.as_bytes(), &self.table)?.generation),
            None => Ok(None),
        }
    }

    /// Whether the table is an older agent's (its verdict map
    /// `service-ips`): such a table is ours to replace, a foreign one is not.
    async fn holds_old_layout(&self) -> bool {
        let object = format!("map ip {} service-ips", self.table);
        match self.runner.list_json(&object).await {
            Ok(Some(json)) => {
                json.contains(r#""map": "verdict""#) || json.contains(r#""map":"verdict""#)
            }
            _ => false,
        }
    }

    /// Deletes the remembered clients whose backend is gone, one element
    /// per transaction: an entry may expire between the listing and its
    /// deletion, and a missing element fails its whole batch.
    async fn forget_stranded_clients(&self, index: &Index) {
        let object = format!("map ip {} affinity", self.table);
        let listed = match self.runner.list_json(&object).await {
            Ok(Some(json)) => layout::read_remembered(json.as_bytes(), &self.table),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let remembered = match listed {
            Ok(remembered) => remembered,
            Err(e) => return warn!(error = %e, "cannot list the affinity map"),
        };
        for element in layout::stranded(&remembered, index) {
            let tx = Transaction::elements(
                &self.table,
                vec![super::command::Command::DeleteElements {
                    set: layout::AFFINITY.to_owned(),
                    elements: vec![element],
                }],
                Vec::new(),
            );
            if let Err(e) = self.runner.apply(&tx).await {
                debug!(error = %e, "a remembered client was gone already");
            }
        }
    }
}

/// What a full load wrote.
fn full_stats(table: &layout::Table) -> ApplyStats {
    let elements = table
        .tuples
        .values()
        .map(|f| f.facts.len() + f.slots.len() + f.allow.len() + usize::from(f.affinity.is_some()))
        .sum::<usize>()
        + table.hairpin.len();
    ApplyStats {
        chains_rewritten: 1,
        elements_added: elements,
        ..ApplyStats::default()
    }
}

/// Table names are interpolated into scripts, so only plain identifiers pass.
fn validate_table_name(table: &str) -> Result<()> {
    let mut chars = table.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && table.len() <= 64;
    match valid {
        true => Ok(()),
        false => Err(NftError::InvalidTable(table.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{Protocol, ServiceEntry, ServiceKey, ServicePortEntry};
    use crate::nft::RecordingRunner;

    fn ctx() -> NodeContext {
        NodeContext {
            zone: None,
            node_name: "a".into(),
            node_ips: vec![],
            pod_cidr: None,
        }
    }

    fn snap(version: u64, vip: Option<[u8; 4]>) -> Snapshot {
        let mut s = Snapshot {
            version,
            ..Default::default()
        };
        if let Some(vip) = vip {
            let svc = ServiceEntry {
                cluster_ip: Some(Ipv4Addr::from(vip)),
                ports: vec![ServicePortEntry {
                    name: String::new(),
                    protocol: Protocol::Udp,
                    port: 53,
                    node_port: None,
                }],
                ..Default::default()
            };
            s.services.insert(dns(), svc);
        }
        s
    }

    fn dns() -> ServiceKey {
        ServiceKey::new("kube-system", "dns")
    }

    #[tokio::test]
    async fn loads_in_full_then_sends_only_what_changed() {
        let rec = RecordingRunner::new();
        let mut dp = DataPath::open("switchyard", rec.clone()).await.unwrap();
        dp.apply(&ctx(), &snap(1, None)).await.unwrap();
        assert_eq!(dp.generation(), 1);
        // No table yet: the fixed chains, then the elements and canary.
        let first = &rec.scripts()[0];
        assert!(first.starts_with("table ip switchyard {\n"), "{first}");
        assert_eq!(
            rec.scripts()[1],
            "flush set ip switchyard canary\nadd element ip switchyard canary { 1 }\n"
        );
        let changed = [dns()].into();
        assert!(dp
            .apply_changes(&ctx(), &snap(2, None), &changed)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(rec.scripts().len(), 2, "no change, no transaction");
        let stats = dp
            .apply_changes(&ctx(), &snap(3, Some([10, 96, 0, 10])), &changed)
            .await
            .unwrap();
        assert_eq!(stats.elements_added, 1);
        assert_eq!(
            rec.scripts()[2],
            "add element ip switchyard reject-ips { 10.96.0.10 . udp . 53 }\n\
             flush set ip switchyard canary\nadd element ip switchyard canary { 2 }\n"
        );
        assert!(!dp.check_drift().await.unwrap());
    }

    #[tokio::test]
    async fn a_failed_change_makes_the_next_apply_a_full_load() {
        let rec = RecordingRunner::new();
        let mut dp = DataPath::open("switchyard", rec.clone()).await.unwrap();
        dp.apply(&ctx(), &snap(1, None)).await.unwrap();
        rec.fail_next("Error: Could not process rule: No such file or directory");
        let changed = [dns()].into();
        let err = dp
            .apply_changes(&ctx(), &snap(2, Some([10, 96, 0, 10])), &changed)
            .await
            .unwrap_err();
        assert!(err.nft_stderr().unwrap().contains("Could not process rule"));
        assert_eq!(dp.generation(), 1, "nothing was written");
        dp.apply_changes(&ctx(), &snap(2, Some([10, 96, 0, 10])), &changed)
            .await
            .unwrap();
        // The recorder shows no table: made anew, its elements sent apart.
        let retry = &rec.scripts()[3];
        assert!(
            retry.starts_with("add element ip switchyard reject-ips { 10.96.0.10 . udp . 53 }"),
            "{retry}"
        );
    }

    #[tokio::test]
    async fn rejects_table_names_that_are_not_identifiers() {
        let err = DataPath::open("x; flush ruleset", RecordingRunner::new())
            .await
            .unwrap_err();
        assert!(matches!(err, NftError::InvalidTable(_)));
    }
}
