//! The one place that talks to the kernel's nftables. Everything above it
//! works on plain data, so tests and the benchmark's hollow agents swap in a
//! [`RecordingRunner`].

use std::future::Future;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::error::{NftError, Result};
use super::layout::{self, Live};
use super::netlink;
use super::state::CANARY_SET;
use super::transaction::Transaction;

/// Runs nft transactions and listings.
pub trait NftRunner: Send + Sync {
    /// Runs `script` as one atomic transaction (`nft -f -`).
    fn run_script(&self, script: &str) -> impl Future<Output = Result<()>> + Send;

    /// Runs `tx` as one atomic transaction; by default as its script.
    fn apply(&self, tx: &Transaction) -> impl Future<Output = Result<()>> + Send {
        let script = tx.script();
        async move { self.run_script(&script).await }
    }

    /// `nft -j list <object>` (e.g. `set ip switchyard canary`); `Ok(None)`
    /// when the object does not exist.
    fn list_json(&self, object: &str) -> impl Future<Output = Result<Option<String>>> + Send;

    /// What `table` (family ip) holds now, empty when it does not exist.
    fn list_table(&self, table: &str) -> impl Future<Output = Result<Live>> + Send {
        async move {
            match self.list_json(&format!("table ip {table}")).await? {
                Some(json) => layout::read_live(json.as_bytes(), table),
                None => Ok(Live::default()),
            }
        }
    }
}

/// Talks to nftables in the agent's network namespace, or in a named one
/// (`ip netns exec NS nft …`, used by the integration tests and the lab).
///
/// Transactions go out as netlink batches on a socket kept open for the
/// agent's life: an `nft` run first lists every chain of the table (tens of
/// ms at 10,000 Services), closing its socket waits for an RCU grace period,
/// and parsing a first load of 10,000 Services costs it seconds. `nft -f`
/// remains the fallback for what the encoder does not know (nothing the
/// compiler writes today) or when no socket can be opened.
#[derive(Debug, Clone)]
pub struct NftCommand {
    netns: Option<String>,
    link: Arc<Mutex<Link>>,
    /// Transactions that went through `nft -f` instead of netlink.
    fallbacks: prometheus_client::metrics::counter::Counter,
}

/// The netlink socket, opened on first use.
#[derive(Debug)]
enum Link {
    Unopened,
    Open(netlink::Socket),
    /// Opening failed once; every transaction goes through `nft -f`.
    Unavailable,
}

impl NftCommand {
    /// nft in the agent's own network namespace.
    pub fn new() -> Self {
        Self::with_netns(None)
    }

    /// nft inside the named network namespace.
    pub fn in_netns(netns: impl Into<String>) -> Self {
        Self::with_netns(Some(netns.into()))
    }

    fn with_netns(netns: Option<String>) -> Self {
        Self {
            netns,
            link: Arc::new(Mutex::new(Link::Unopened)),
            fallbacks: Default::default(),
        }
    }

    /// Counts the transactions that fall back to `nft -f` in `counter`
    /// (the agent's `nft_fallbacks` metric).
    pub fn counting_fallbacks(
        mut self,
        counter: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        self.fallbacks = counter;
        self
    }

    /// A transaction is about to go through `nft -f`: count it and say why
    /// (quietly when the reason was already logged once: no socket).
    fn falling_back(&self, why: &str, already_said: bool) {
        self.fallbacks.inc();
        if already_said {
            tracing::debug!(
                why,
                "applying the transaction with nft -f instead of netlink"
            );
        } else {
            tracing::warn!(
                why,
                "applying the transaction with nft -f instead of netlink"
            );
        }
    }

    /// Sends `batch` on the socket, opening it first if needed; `None` when
    /// no socket can be had, so the caller falls back to `nft -f`.
    fn send_batch(
        link: &Mutex<Link>,
        netns: Option<&str>,
        batch: &mut netlink::Batch,
    ) -> Option<Result<()>> {
        // A poisoned lock only means a sender panicked; the socket is still usable.
        let mut link = link.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*link, Link::Unopened) {
            *link = match netlink::Socket::open(netns) {
                Ok(socket) => Link::Open(socket),
                Err(e) => {
                    tracing::warn!(error = %e, "no nftables netlink socket; using nft -f for every change");
                    Link::Unavailable
                }
            };
        }
        match &mut *link {
            Link::Open(socket) => Some(socket.send(batch)),
            Link::Unopened | Link::Unavailable => None,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::from(self.blocking_command(args));
        cmd.kill_on_drop(true);
        cmd
    }

    /// [`command`](Self::command) for a blocking thread.
    fn blocking_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => std::process::Command::new("nft"),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `nft -j list table ip <table>`, parsed while nft writes it: the
    /// listing is ~19 MB at 10,000 Services, which need never be held whole.
    fn stream_table(&self, table: &str) -> Result<Live> {
        let mut child = self
            .blocking_command(&["-j", "list", "table", "ip", table])
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let parsed = match child.stdout.take() {
            Some(stdout) => layout::read_live(std::io::BufReader::new(stdout), table),
            None => Err(NftError::Malformed("nft's stdout was not piped".into())),
        };
        if parsed.is_err() {
            // nft may still be writing to a pipe nobody reads any more.
            let _ = child.kill();
        }
        let out = child.wait_with_output().map_err(|e| self.spawn_error(e))?;
        if !out.status.success() && !out.stderr.is_empty() {
            return match absent(&out) {
                true => Ok(Live::default()),
                false => Err(rejected(&out)),
            };
        }
        parsed
    }

    fn program(&self) -> String {
        match &self.netns {
            Some(ns) => format!("ip netns exec {ns} nft"),
            None => "nft".to_owned(),
        }
    }

    fn spawn_error(&self, source: std::io::Error) -> NftError {
        NftError::Spawn {
            program: self.program(),
            source,
        }
    }
}

impl Default for NftCommand {
    fn default() -> Self {
        Self::new()
    }
}

impl NftRunner for NftCommand {
    async fn apply(&self, tx: &Transaction) -> Result<()> {
        let Some(mut batch) = crate::cpu::heavy(|| netlink::encode(tx.table(), tx.commands()))
        else {
            self.falling_back("the netlink encoder does not know a command of it", false);
            return self.run_script(&tx.script()).await;
        };
        let (link, netns) = (self.link.clone(), self.netns.clone());
        let sent = tokio::task::spawn_blocking(move || {
            let sent = Self::send_batch(&link, netns.as_deref(), &mut batch);
            (sent, batch)
        })
        .await;
        match sent {
            Ok((Some(result), batch)) => {
                tracing::debug!(ok = result.is_ok(), "sent the transaction over netlink");
                return result.map_err(|e| batch.explain(tx.commands(), e));
            }
            Ok((None, _)) => self.falling_back("no nftables netlink socket", true),
            Err(e) => {
                tracing::error!(error = %e, "the netlink sender panicked");
                self.falling_back("the netlink sender panicked", false);
            }
        }
        self.run_script(&tx.script()).await
    }

    async fn run_script(&self, script: &str) -> Result<()> {
        let mut cmd = self.command(&["-f", "-"]);
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|e| self.spawn_error(e))?;
            // Dropping stdin closes it so nft sees end of input.
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.spawn_error(e))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(rejected(&out)),
        }
    }

    async fn list_table(&self, table: &str) -> Result<Live> {
        let (runner, table) = (self.clone(), table.to_owned());
        tokio::task::spawn_blocking(move || runner.stream_table(&table))
            .await
            .map_err(|e| NftError::Malformed(format!("the listing thread failed: {e}")))?
    }

    async fn list_json(&self, object: &str) -> Result<Option<String>> {
        let mut args = vec!["-j", "list"];
        args.extend(object.split_whitespace());
        let out = self
            .command(&args)
            .output()
            .await
            .map_err(|e| self.spawn_error(e))?;
        if out.status.success() {
            return String::from_utf8(out.stdout)
                .map(Some)
                .map_err(|e| NftError::Malformed(format!("nft printed invalid UTF-8: {e}")));
        }
        match absent(&out) {
            true => Ok(None),
            false => Err(rejected(&out)),
        }
    }
}

/// nft failed because the listed object does not exist.
fn absent(out: &std::process::Output) -> bool {
    String::from_utf8_lossy(&out.stderr).contains("No such file or directory")
}

fn rejected(out: &std::process::Output) -> NftError {
    NftError::Rejected {
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
    }
}

/// A runner that only records scripts: for unit tests and hollow agents.
///
/// It reports no live table, and answers canary listings with the last
/// generation a recorded script wrote, so drift checks stay quiet.
#[derive(Debug, Clone, Default)]
pub struct RecordingRunner {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Debug, Default)]
struct Recorded {
    scripts: Vec<String>,
    canary: Option<String>,
    fail_next: Option<String>,
}

impl RecordingRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every script run so far.
    pub fn scripts(&self) -> Vec<String> {
        self.lock().scripts.clone()
    }

    /// Makes the next `run_script` fail with `stderr`, recording nothing.
    pub fn fail_next(&self, stderr: impl Into<String>) {
        self.lock().fail_next = Some(stderr.into());
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A poisoned lock only means a test panicked mid-record; the data is fine.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl NftRunner for RecordingRunner {
    async fn run_script(&self, script: &str) -> Result<()> {
        let mut rec = self.lock();
        if let Some(stderr) = rec.fail_next.take() {
            return Err(NftError::Rejected {
                status: "exit status: 1".into(),
                stderr,
            });
        }
        if let Some(generation) = canary_written(script) {
            rec.canary = Some(generation.to_owned());
        }
        rec.scripts.push(script.to_owned());
        Ok(())
    }

    async fn list_json(&self, object: &str) -> Result<Option<String>> {
        let rec = self.lock();
        Ok(rec
            .canary
            .as_deref()
            .and_then(|generation| canary_listing(object, generation)))
    }
}

/// The generation the last canary write of `script` holds: what a runner
/// standing in for the kernel keeps of a transaction it records.
pub fn canary_written(script: &str) -> Option<&str> {
    let marker = format!(" {CANARY_SET} {{ ");
    let line = script
        .lines()
        .rev()
        .find(|l| l.starts_with("add element") && l.contains(&marker))?;
    Some(line.rsplit("{ ").next()?.trim_end_matches(" }"))
}

/// What `nft -j list <object>` prints when `object` is a table's canary
/// set (`set ip <table> canary`) holding `generation`; `None` for any
/// other object.
pub fn canary_listing(object: &str, generation: &str) -> Option<String> {
    if !object.ends_with(&format!(" {CANARY_SET}")) {
        return None;
    }
    let table = object.split_whitespace().nth(2).unwrap_or_default();
    Some(format!(
        r#"{{"nftables": [{{"set": {{"name": "{CANARY_SET}", "table": "{table}", "elem": [{generation}]}}}}]}}"#
    ))
}

#[cfg(test)]
mod fallback_tests {
    use super::*;
    use crate::nft::layout;

    /// No such namespace: no netlink socket, so the transaction goes to
    /// `nft -f` (which fails too), and the fallback is counted.
    #[tokio::test]
    async fn a_transaction_that_cannot_use_netlink_is_counted() {
        let counter = prometheus_client::metrics::counter::Counter::default();
        let runner =
            NftCommand::in_netns("sytest-no-such-namespace").counting_fallbacks(counter.clone());
        let mut tx = layout::delta("t", &layout::Table::default(), &layout::Table::default());
        tx.set_generation(1);
        assert!(runner.apply(&tx).await.is_err());
        assert_eq!(counter.get(), 1);
    }
}
