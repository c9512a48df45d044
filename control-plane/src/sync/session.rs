//! One agent's stream: register the node, push what it lacks, follow every
//! new version, record its ACKs and NACKs. Pushes always go out as deltas
//! from the last version *sent*: the agent folds every push into its model
//! whether or not its data path applied it, so a NACKed change is retried
//! with the next push rather than lost.

use std::sync::Arc;
use std::time::Instant;

use switchyard_api::resources::{Node, NodeAddress, NodeSpec, NodeStatus, Object, ObjectMeta};
use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::{AgentMessage, ProbeSet, Push, Register};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::cache::SnapshotCache;
use super::encoded::{EncodedDelta, Encodings};
use super::nodes::NodeTable;
use super::wire::EncodedPush;
use crate::metrics::{Metrics, NodeLabel};
use crate::registry::Registry;

pub struct SyncContext {
    /// Turns true when the server shuts down: long-lived streams end then,
    /// so a graceful shutdown does not wait on them forever.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub registry: Arc<Registry>,
    pub cache: Arc<SnapshotCache>,
    /// Each version's delta, encoded once for every stream.
    pub encodings: Encodings,
    pub nodes: Arc<NodeTable>,
    pub metrics: Arc<Metrics>,
    /// A stream silent this long is closed (its agent is dead or cut off;
    /// its node turns NotReady after the same time).
    pub node_grace: std::time::Duration,
}

/// The Node object an agent's registration describes.
pub fn node_object(reg: &Register) -> Object {
    Object::Node(Box::new(Node {
        metadata: ObjectMeta {
            name: reg.node_name.clone(),
            labels: reg.node_labels.clone().into_iter().collect(),
            ..Default::default()
        },
        spec: NodeSpec {
            pod_cidr: Some(reg.pod_cidr.clone()).filter(|c| !c.is_empty()),
            pod_cidrs: match reg.pod_cidrs.is_empty() {
                true => Some(reg.pod_cidr.clone())
                    .filter(|c| !c.is_empty())
                    .into_iter()
                    .collect(),
                false => reg.pod_cidrs.clone(),
            },
        },
        status: NodeStatus {
            addresses: reg
                .node_ips
                .iter()
                .map(|ip| NodeAddress {
                    type_: "InternalIP".to_string(),
                    address: ip.clone(),
                })
                .collect(),
            agent_version: Some(reg.agent_version.clone()).filter(|v| !v.is_empty()),
            ..Default::default()
        },
        ..Default::default()
    }))
}

/// Sends a version's delta as one push, part by part: the parts' shared
/// bytes as [`Encodings`] made them, each with this stream's nonce, and the
/// first with this node's probe list when it changed. Fails when the
/// stream is gone or the server is stopping (a stalled agent must not hold
/// a shutdown up mid-push).
async fn send_push(
    ctx: &SyncContext,
    tx: &mpsc::Sender<Result<EncodedPush, Status>>,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
    delta: &EncodedDelta,
    node: &str,
    nonce: &mut Nonce,
) -> Result<(), Closed> {
    let mut probes = delta.probes.includes(node).then(|| ProbeSet {
        pods: (*ctx.cache.probes(node)).clone(),
    });
    for part in &delta.parts {
        let own = Push {
            nonce: nonce.next(),
            probes: probes.take(),
            ..Default::default()
        };
        let msg = EncodedPush::new(part.clone(), &own);
        ctx.metrics.push_bytes.observe(msg.len() as f64);
        ctx.metrics.pushes.inc();
        tracing::debug!(version = delta.version, bytes = msg.len(), "push");
        tokio::select! {
            sent = tx.send(Ok(msg)) => sent.map_err(|_| Closed)?,
            _ = stopping.changed() => return Err(Closed),
        }
    }
    Ok(())
}

/// The agent's stream is gone, or the server is stopping.
struct Closed;

/// Nonces unique across a node's sessions: `<session>-<message>`.
struct Nonce {
    session: u64,
    sent: u64,
}

impl Nonce {
    fn next(&mut self) -> String {
        self.sent += 1;
        format!("{}-{}", self.session, self.sent)
    }
}

#[tracing::instrument(skip_all, fields(node = %reg.node_name))]
pub async fn run(
    ctx: Arc<SyncContext>,
    reg: Register,
    inbound: Streaming<AgentMessage>,
    tx: mpsc::Sender<Result<EncodedPush, Status>>,
) {
    let node = reg.node_name.clone();
    let session = ctx.nodes.connected(&node, reg.applied_version);
    ctx.metrics
        .agents_connected
        .set(ctx.nodes.connected_count() as i64);
    tracing::info!(applied = reg.applied_version, "agent connected");
    let mut listening = tokio::spawn(listen(ctx.clone(), node.clone(), session, inbound));
    let mut versions = ctx.cache.subscribe();
    let mut stopping = ctx.stopping.clone();
    let mut sent = Some(reg.applied_version).filter(|v| *v > 0);
    let mut nonce = Nonce { session, sent: 0 };
    loop {
        if let Some(delta) = ctx.encodings.catchup(&ctx.cache, sent) {
            let version = delta.version;
            let pushed = tokio::select! {
                pushed = send_push(&ctx, &tx, &mut stopping, &delta, &node, &mut nonce) => pushed,
                _ = &mut listening => Err(Closed),
            };
            if pushed.is_err() {
                break;
            }
            sent = Some(version);
        }
        tokio::select! {
            _ = stopping.changed() => break,
            changed = versions.changed() => if changed.is_err() { break },
            _ = &mut listening => break,
        }
    }
    listening.abort();
    ctx.nodes.disconnected(&node, session);
    ctx.metrics
        .agents_connected
        .set(ctx.nodes.connected_count() as i64);
    tracing::info!("agent disconnected");
}

/// Reads the agent's side of the stream apart from the pushes, so a push
/// waiting on a slow agent never delays hearing it: every message counts
/// as a sign of life; ACKs and NACKs are recorded. Returns when the stream
/// ends or stays silent for the grace period (a dead host or a cut link
/// may leave the connection open).
async fn listen(
    ctx: Arc<SyncContext>,
    node: String,
    session: u64,
    mut inbound: Streaming<AgentMessage>,
) {
    loop {
        let msg = match tokio::time::timeout(ctx.node_grace, inbound.message()).await {
            Ok(Ok(Some(msg))) => msg,
            Ok(Ok(None) | Err(_)) => return,
            Err(_) => {
                tracing::warn!(%node, grace = ?ctx.node_grace, "agent not heard from within the grace period; closing its stream");
                return;
            }
        };
        ctx.nodes.heard(&node, session);
        if let Some(AgentMsg::Ack(ack)) = msg.message {
            record_ack(&ctx, &node, session, ack.version, ack.error);
        }
    }
}

fn record_ack(ctx: &SyncContext, node: &str, session: u64, version: u64, error: String) {
    if error.is_empty() {
        if let Some(started) = ctx.cache.started_at(version) {
            ctx.metrics
                .push_latency
                .get_or_create(&NodeLabel {
                    node: node.to_string(),
                })
                .observe(Instant::now().duration_since(started).as_secs_f64());
        }
        ctx.nodes.acked(node, session, version, None);
    } else {
        tracing::warn!(version, %error, "agent NACKed a push");
        ctx.metrics.nacks.inc();
        ctx.nodes.acked(node, session, version, Some(error));
    }
}
