//! [`DataPath`]: owns the agent's table, remembers what is applied, and turns
//! each snapshot into one incremental transaction.
//!
//! Drift detection is cheap by design: every transaction also rewrites a
//! one-element `canary` set with a new generation number, and
//! [`DataPath::check_drift`] lists only that set (a few milliseconds even
//! when the table holds tens of thousands of rules, whereas listing one chain
//! makes nft 1.0 load every rule of the table). A deleted table, `flush
//! ruleset`, or a restored older copy all change or remove the canary; then
//! [`DataPath::resync`] reads the whole table back and repairs the
//! difference. Edits that keep the canary (`flush table`, a single rule or
//! element changed by hand) are only seen by a full resync, which the caller
//! may run on a slow timer: [`DataPath::read_live_later`] lists the table off
//! the caller's loop (seconds at 10,000 Services) and
//! [`DataPath::resync_from`] repairs from that listing if it is still current.

use std::collections::BTreeSet;
use std::future::Future;

use tracing::{debug, info, instrument, warn};

use super::diff::{plan, plan_touched, ApplyStats, Transaction};
use super::error::{NftError, Result};
use super::index::Index;
use super::live;
use super::ruleset::compile;
use super::runner::NftRunner;
use super::state::{AppliedState, CANARY_SET};
use crate::cpu::heavy;
use crate::model::{NodeContext, ServiceKey, Snapshot};

/// The agent's nftables data path.
#[derive(Debug)]
pub struct DataPath<R> {
    table: String,
    runner: R,
    applied: AppliedState,
    /// Last generation written to (or read from) the canary.
    generation: u32,
    /// Set after a failed transaction: what we believe is applied may be
    /// wrong, so the next apply reads the table back first.
    stale: bool,
    /// The desired ruleset of the last successful apply, by Service, and
    /// the node it was compiled for; `None` forces a full apply.
    index: Option<(NodeContext, Index)>,
}

impl<R: NftRunner> DataPath<R> {
    /// Reads the live table (if any) so the first [`apply`](Self::apply)
    /// reconciles against it instead of starting over: traffic never blips.
    pub async fn open(table: &str, runner: R) -> Result<Self> {
        validate_table_name(table)?;
        let mut dp = Self {
            table: table.to_owned(),
            runner,
            applied: AppliedState::default(),
            generation: 0,
            stale: false,
            index: None,
        };
        // A table nft cannot read yet (nft missing, a foreign table in
        // the way) is read again at the first apply, whose NACK says why.
        if let Err(e) = dp.read_live().await {
            warn!(table, error = %e, "cannot read the nftables table yet; the first apply tries again");
            dp.stale = true;
        }
        info!(
            table,
            exists = dp.applied.table_exists,
            generation = dp.generation,
            "opened nftables table"
        );
        Ok(dp)
    }

    /// Programs `snap` as one atomic transaction holding only the difference
    /// from what is applied. On error the previous ruleset stays in force.
    #[instrument(skip_all, fields(table = %self.table, version = snap.version))]
    pub async fn apply(&mut self, ctx: &NodeContext, snap: &Snapshot) -> Result<ApplyStats> {
        self.index = None;
        if self.stale {
            self.read_live().await?;
        }
        let index = heavy(|| Index::build(ctx, snap));
        for conflict in &index.desired().conflicts {
            warn!(%conflict, "service address conflict");
        }
        self.apply_index(ctx, index).await
    }

    /// Diffs all of `index` against what is applied and commits the result.
    async fn apply_index(&mut self, ctx: &NodeContext, index: Index) -> Result<ApplyStats> {
        let desired = index.desired();
        let mut tx = heavy(|| plan(&self.table, &self.applied, desired));
        let generation = self.next_generation(&tx);
        if self.applied.generation != Some(generation) {
            tx.set_generation(generation);
        }
        self.run(&tx).await?;
        self.applied = heavy(|| AppliedState::from_ruleset(desired, generation));
        self.generation = generation;
        self.index = Some((ctx.clone(), index));
        Ok(tx.stats)
    }

    /// Like [`apply`](Self::apply) when only the Services in `changed` may
    /// differ from the last applied snapshot: recompiles and diffs just
    /// those. Falls back to a full apply after a failure, on a new node
    /// context, or before the first apply.
    #[instrument(skip_all, fields(table = %self.table, version = snap.version, changed = changed.len()))]
    pub async fn apply_changes(
        &mut self,
        ctx: &NodeContext,
        snap: &Snapshot,
        changed: &BTreeSet<ServiceKey>,
    ) -> Result<ApplyStats> {
        let index = match self.index.take() {
            Some((indexed, index)) if !self.stale && indexed == *ctx => index,
            _ => return self.apply(ctx, snap).await,
        };
        let mut index = index;
        let touched = index.update(ctx, snap, changed);
        let desired = index.desired();
        let mut tx = plan_touched(&self.table, &self.applied, desired, &touched);
        let generation = self.next_generation(&tx);
        if self.applied.generation != Some(generation) {
            tx.set_generation(generation);
        }
        self.run(&tx).await?;
        self.applied.patch(desired, &touched, generation);
        self.generation = generation;
        self.index = Some((ctx.clone(), index));
        Ok(tx.stats)
    }

    /// Cheap check: does the canary still hold our generation?
    pub async fn check_drift(&self) -> Result<bool> {
        let object = format!("set ip {} {CANARY_SET}", self.table);
        let live = match self.runner.list_json(&object).await? {
            Some(json) => live::parse_canary(&json)?,
            None => None,
        };
        Ok(live != self.applied.generation)
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

    /// Reads the whole table back and applies the difference to `snap`.
    pub async fn resync(&mut self, ctx: &NodeContext, snap: &Snapshot) -> Result<ApplyStats> {
        self.read_live().await?;
        self.apply(ctx, snap).await
    }

    /// Lists the table as [`resync`](Self::resync) does, as a task of its
    /// own, so the caller keeps applying pushes meanwhile; hand the result
    /// to [`resync_from`](Self::resync_from).
    pub fn read_live_later(&self) -> impl Future<Output = Result<AppliedState>> + Send + 'static
    where
        R: Clone + 'static,
    {
        let (runner, table) = (self.runner.clone(), self.table.clone());
        async move { runner.list_table(&table).await }
    }

    /// Repairs what `live` (from [`read_live_later`](Self::read_live_later))
    /// shows drifted, against the ruleset last applied. After a failed
    /// transaction (which changed nothing) it applies `snap` in full from
    /// `live`, so a transient failure heals without waiting for a push.
    /// `Ok(None)` when the listing is out of date: a transaction ran after
    /// it was taken, or the canary is gone (the drift check repairs that).
    pub async fn resync_from(
        &mut self,
        ctx: &NodeContext,
        snap: &Snapshot,
        live: AppliedState,
    ) -> Result<Option<ApplyStats>> {
        if live.generation.is_none() {
            return Ok(None);
        }
        if self.stale {
            self.stale = false;
            self.applied = live;
            return self.apply(ctx, snap).await.map(Some);
        }
        if live.generation != self.applied.generation {
            return Ok(None);
        }
        let index = match self.index.take() {
            Some((indexed, index)) if indexed == *ctx => index,
            _ => {
                self.applied = live;
                return self.apply(ctx, snap).await.map(Some);
            }
        };
        // Nearly always nothing drifted: then what is applied stays as it
        // is, and no second copy of it is built.
        if heavy(|| plan(&self.table, &live, index.desired())).is_empty() {
            self.index = Some((ctx.clone(), index));
            return Ok(Some(ApplyStats::default()));
        }
        self.applied = live;
        self.apply_index(ctx, index).await.map(Some)
    }

    /// The transaction [`apply`](Self::apply) would run, without running it.
    pub fn plan(&self, ctx: &NodeContext, snap: &Snapshot) -> Transaction {
        plan(&self.table, &self.applied, &compile(ctx, snap))
    }

    /// Last generation written to the canary.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// A new generation when something changes; the current one otherwise
    /// (a resync that finds only an emptied canary rewrites just the canary).
    fn next_generation(&self, tx: &Transaction) -> u32 {
        match tx.has_changes() {
            true => self.generation.wrapping_add(1),
            false => self.generation,
        }
    }

    async fn run(&mut self, tx: &Transaction) -> Result<()> {
        if tx.is_empty() {
            debug!("nftables already up to date");
            return Ok(());
        }
        match self.runner.apply(tx).await {
            Ok(()) => {
                debug!(stats = ?tx.stats, "applied nftables transaction");
                Ok(())
            }
            Err(err) => {
                self.stale = true;
                Err(err)
            }
        }
    }

    async fn read_live(&mut self) -> Result<()> {
        self.applied = self.runner.list_table(&self.table).await?;
        if let Some(generation) = self.applied.generation {
            self.generation = generation;
        }
        self.stale = false;
        Ok(())
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
            s.services
                .insert(ServiceKey::new("kube-system", "dns"), svc);
        }
        s
    }

    #[tokio::test]
    async fn applies_incrementally_and_skips_empty_diffs() {
        let rec = RecordingRunner::new();
        let mut dp = DataPath::open("switchyard", rec.clone()).await.unwrap();
        let first = dp.apply(&ctx(), &snap(1, None)).await.unwrap();
        assert!(first.chains_created > 0);
        assert_eq!(dp.generation(), 1);
        assert!(dp.apply(&ctx(), &snap(2, None)).await.unwrap().is_empty());
        assert_eq!(rec.scripts().len(), 1, "empty diff runs nothing");
        dp.apply(&ctx(), &snap(3, Some([10, 96, 0, 10])))
            .await
            .unwrap();
        let scripts = rec.scripts();
        assert_eq!(
            scripts[1],
            "add element ip switchyard no-endpoint-services { 10.96.0.10 . udp . 53 : goto reject-chain }\n\
             flush set ip switchyard canary\nadd element ip switchyard canary { 2 }\n"
        );
        assert!(!dp.check_drift().await.unwrap());
    }

    #[tokio::test]
    async fn failure_keeps_error_text_and_rereads_before_next_apply() {
        let rec = RecordingRunner::new();
        let mut dp = DataPath::open("switchyard", rec.clone()).await.unwrap();
        dp.apply(&ctx(), &snap(1, None)).await.unwrap();
        rec.fail_next("Error: Could not process rule: No such file or directory");
        let err = dp
            .apply(&ctx(), &snap(2, Some([10, 96, 0, 10])))
            .await
            .unwrap_err();
        assert!(err.nft_stderr().unwrap().contains("Could not process rule"));
        // The recorder shows no live table, so the retry rebuilds from scratch.
        dp.apply(&ctx(), &snap(2, Some([10, 96, 0, 10])))
            .await
            .unwrap();
        assert!(rec.scripts()[1].starts_with("add table ip switchyard\n"));
    }

    #[tokio::test]
    async fn rejects_table_names_that_are_not_identifiers() {
        let err = DataPath::open("x; flush ruleset", RecordingRunner::new())
            .await
            .unwrap_err();
        assert!(matches!(err, NftError::InvalidTable(_)));
    }
}
