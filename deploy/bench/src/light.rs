//! Light agents: what a fleet costs the control plane, with each agent's
//! own work left out. A light agent holds its own TLS connection with its
//! own node certificate, registers, decodes every push in full, ACKs each
//! version after its last part and sends heartbeats, as the real agent
//! does; it keeps no view and compiles no ruleset (that cost, on the
//! agent's own host in a fleet, is measured apart by the incremental and
//! data-path benchmarks). So 5,000 of them fit on two cores beside the
//! control plane, where hollow agents stop near 1,000.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::agent_sync_client::AgentSyncClient;
use switchyard_api::v1::{Ack, AgentMessage, Heartbeat, Register};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::identity::Identities;

/// How often an agent that has not heard the cluster's setting yet sends
/// a heartbeat (the control plane's default is 2 s).
const HEARTBEAT: Duration = Duration::from_secs(1);

struct Light {
    acked: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// A set of light agents against one control plane.
#[derive(Default)]
pub struct LightFleet {
    agents: Vec<Light>,
}

impl LightFleet {
    /// Starts agents until there are `total`, each joining as its own node.
    pub async fn grow_to(&mut self, total: usize, ids: &Identities) -> anyhow::Result<()> {
        while self.agents.len() < total {
            let i = self.agents.len();
            let name = format!("light-{i:05}");
            let channel = ids.node(&name).await?;
            let acked = Arc::new(AtomicU64::new(0));
            let task = tokio::spawn(run(channel, name, i, acked.clone()));
            self.agents.push(Light { acked, task });
        }
        Ok(())
    }

    /// Waits until every agent has ACKed `version` or later; returns when
    /// the last one did.
    pub async fn wait_acked(&self, version: u64, timeout: Duration) -> anyhow::Result<Instant> {
        let acked: Vec<Arc<AtomicU64>> = self.agents.iter().map(|a| a.acked.clone()).collect();
        // A thread of its own polls every millisecond, as the hollow
        // fleet's watcher does: tokio's timers are as coarse and would
        // compete with the agents for the runtime.
        let waiter = std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            let mut pending: Vec<usize> = (0..acked.len()).collect();
            loop {
                pending.retain(|i| acked[*i].load(Ordering::Acquire) < version);
                if pending.is_empty() {
                    return Ok(Instant::now());
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} of {} light agents had not ACKed version {version} after {timeout:?}",
                        pending.len(),
                        acked.len()
                    );
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        match tokio::task::spawn_blocking(move || waiter.join()).await? {
            Ok(r) => r,
            Err(_) => bail!("the ACK watcher panicked"),
        }
    }
}

impl Drop for LightFleet {
    fn drop(&mut self) {
        for a in &self.agents {
            a.task.abort();
        }
    }
}

/// Keeps one agent's stream up, reconnecting after a second when it ends.
async fn run(channel: Channel, name: String, i: usize, acked: Arc<AtomicU64>) {
    loop {
        if let Err(e) = stream(channel.clone(), &name, i, &acked).await {
            eprintln!("  light agent {name}: {e:#}; reconnecting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn stream(channel: Channel, name: &str, i: usize, acked: &AtomicU64) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel(16);
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 80, 0, 1)) + i as u32);
    let register = Register {
        node_name: name.to_owned(),
        node_ips: vec![ip.to_string()],
        agent_version: "light".to_owned(),
        applied_version: acked.load(Ordering::Acquire),
        ..Default::default()
    };
    tx.send(message(AgentMsg::Register(register))).await?;
    let mut inbound = AgentSyncClient::new(channel)
        .stream(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            push = inbound.message() => {
                let Some(push) = push? else { bail!("the control plane ended the stream") };
                if let Some(every) = push.cluster.as_ref().map(|c| c.heartbeat_interval_ms).filter(|ms| *ms > 0) {
                    if beat.period() != Duration::from_millis(every.into()) {
                        beat = tokio::time::interval(Duration::from_millis(every.into()));
                    }
                }
                if !push.more {
                    let ack = Ack { version: push.version, nonce: push.nonce, error: String::new() };
                    tx.send(message(AgentMsg::Ack(ack))).await?;
                    acked.store(push.version, Ordering::Release);
                }
            }
            _ = beat.tick() => tx.send(message(AgentMsg::Heartbeat(Heartbeat {}))).await?,
        }
    }
}

fn message(m: AgentMsg) -> AgentMessage {
    AgentMessage { message: Some(m) }
}
