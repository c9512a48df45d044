//! Hollow agents, as Kubernetes' kubemark has hollow nodes: the real agent
//! runtime ([`Runtime`]: snapshot stream, view folding, ruleset compile and
//! diff, ACK/NACK) over a real gRPC stream on its own TCP connection, with
//! only the kernel step replaced by a recorder (a transaction is encoded
//! as the netlink batch the real agent sends, then dropped) and conntrack
//! disabled.
//!
//! An agent's ACK time is observed through its `applied_version` gauge,
//! which the runtime sets right after sending the ACK.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use ipnet::Ipv4Net;
use switchyard_agent::conntrack::Conntrack;
use switchyard_agent::metrics::Metrics;
use switchyard_agent::model::NodeContext;
use switchyard_agent::nft::command::{Command, Element};
use switchyard_agent::nft::runner::{canary_listing, canary_written};
use switchyard_agent::nft::state::CANARY_SET;
use switchyard_agent::nft::{netlink, DataPath, NftRunner, Result as NftResult, Transaction};
use switchyard_agent::runtime::{AgentConfig, Refused, Runtime, FULL_RESYNC};
use tokio::task::JoinHandle;

use crate::identity::Identities;

/// Does what the agent's own runner does short of the kernel, and keeps
/// only the canary generation: a thousand agents holding every
/// transaction of a 10,000-Service table would exhaust memory, which
/// `RecordingRunner` (built for unit tests) would do.
#[derive(Debug, Clone, Default)]
pub struct HollowRunner {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Debug, Default)]
struct Recorded {
    canary: Option<String>,
}

impl NftRunner for HollowRunner {
    /// Encodes the batch the real agent would send (its cost is the
    /// agent's), then records the canary instead of sending.
    async fn apply(&self, tx: &Transaction) -> NftResult<()> {
        std::hint::black_box(netlink::encode(tx.table(), tx.commands()));
        let generation = tx
            .commands()
            .filter_map(|c| match c {
                Command::AddElements { set, elements } if set == CANARY_SET => {
                    elements.iter().find_map(|e| match e {
                        Element::Mark(g) => Some(*g),
                        _ => None,
                    })
                }
                _ => None,
            })
            .last();
        if let Some(generation) = generation {
            let mut rec = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            rec.canary = Some(generation.to_string());
        }
        Ok(())
    }

    /// A full load: records the canary it ends with instead of running nft.
    async fn run_script(&self, script: &str) -> NftResult<()> {
        if let Some(generation) = canary_written(script) {
            let mut rec = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            rec.canary = Some(generation.to_owned());
        }
        Ok(())
    }

    async fn list_json(&self, object: &str) -> NftResult<Option<String>> {
        let rec = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(rec
            .canary
            .as_deref()
            .and_then(|generation| canary_listing(object, generation)))
    }
}

struct Hollow {
    metrics: Arc<Metrics>,
    task: JoinHandle<Refused>,
}

/// A set of hollow agents against one control plane.
#[derive(Default)]
pub struct Fleet {
    agents: Vec<Hollow>,
}

impl Fleet {
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Starts agents until there are `total`, each with its own connection
    /// and its own node certificate.
    pub async fn grow_to(&mut self, total: usize, ids: &Identities) -> anyhow::Result<()> {
        while self.agents.len() < total {
            let i = self.agents.len();
            self.agents.push(start(i, ids).await?);
        }
        Ok(())
    }

    /// NACKs sent by all agents so far.
    pub fn nacks(&self) -> u64 {
        self.agents
            .iter()
            .map(|a| a.metrics.sync_errors.get())
            .sum()
    }

    /// Waits until every agent has ACKed `version` or later; returns when
    /// the last one did.
    pub async fn wait_acked(&self, version: u64, timeout: Duration) -> anyhow::Result<Instant> {
        let gauges: Vec<Arc<Metrics>> = self.agents.iter().map(|a| a.metrics.clone()).collect();
        // A dedicated thread polls every 100 µs: tokio timers tick in whole
        // milliseconds, too coarse for the latencies measured here.
        let waiter = std::thread::spawn(move || wait_gauges(&gauges, version, timeout));
        match tokio::task::spawn_blocking(move || waiter.join()).await? {
            Ok(r) => r,
            Err(_) => bail!("the ACK watcher panicked"),
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for a in &self.agents {
            a.task.abort();
        }
    }
}

fn wait_gauges(
    gauges: &[Arc<Metrics>],
    version: u64,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    let target = i64::try_from(version).unwrap_or(i64::MAX);
    let mut pending: Vec<usize> = (0..gauges.len()).collect();
    loop {
        pending.retain(|i| gauges[*i].applied_version.get() < target);
        if pending.is_empty() {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} hollow agents had not ACKed version {version} after {timeout:?}",
                pending.len(),
                gauges.len()
            );
        }
        // 1 ms resolution: polling faster would take a good part of one of
        // the two cores away from the agents and the control plane.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Like every node of a real cluster, a hollow agent has a pod CIDR: its own
/// /24 of 10.64.0.0/11, clear of the fixture's pods (10.128.0.0/9) and
/// Services (10.96.0.0/12). Its name hosts none of the fixture's pods, so
/// none of them is local to it, as for most nodes and most Services of a
/// big cluster. Without one, an agent treats every endpoint as possibly
/// local (kube-proxy's `masqueradeAll`) and tracks each for hairpin.
fn pod_cidr(i: usize) -> Ipv4Net {
    let base = u32::from(Ipv4Addr::new(10, 64, 0, 0)) + ((i as u32) << 8);
    Ipv4Net::new_assert(Ipv4Addr::from(base), 24)
}

async fn start(i: usize, ids: &Identities) -> anyhow::Result<Hollow> {
    let node_name = format!("hollow-{i:04}");
    let channel = ids.node(&node_name).await?;
    let node = NodeContext {
        zone: None,
        node_name,
        node_ips: vec![Ipv4Addr::from(
            u32::from(Ipv4Addr::new(100, 64, 0, 1)) + i as u32,
        )],
        pod_cidr: Some(pod_cidr(i)),
    };
    let cfg = AgentConfig {
        node,
        agent_version: "hollow".into(),
        local_services: Vec::new(),
        dns_listen: None,
        full_resync: FULL_RESYNC,
        health_timeout: switchyard_agent::health::DEFAULT_TIMEOUT,
        node_labels: Default::default(),
        registered: Default::default(),
    };
    let datapath = DataPath::open("switchyard", HollowRunner::default()).await?;
    let metrics = Metrics::new();
    let (runtime, _views) = Runtime::new(
        cfg,
        switchyard_agent::connection::fixed(channel),
        datapath,
        Conntrack::disabled(),
        metrics.clone(),
    );
    Ok(Hollow {
        metrics,
        task: tokio::spawn(runtime.run()),
    })
}
