//! One agent's stream: register the node, push what it lacks, follow every
//! new version, record its ACKs and NACKs. Pushes always go out as deltas
//! from the last version *sent*: the agent folds every push into its model
//! whether or not its data path applied it, so a NACKed change is retried
//! with the next push rather than lost.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use switchyard_api::resources::{Node, NodeAddress, NodeSpec, NodeStatus, Object, ObjectMeta};
use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::{AgentMessage, ProbeSet, Push, Register};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::cache::{Catchup, SnapshotCache};
use super::nodes::NodeTable;
use super::parts;
use crate::metrics::{Metrics, NodeLabel};
use crate::registry::Registry;

pub struct SyncContext {
    /// Turns true when the server shuts down: long-lived streams end then,
    /// so a graceful shutdown does not wait on them forever.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub registry: Arc<Registry>,
    pub cache: Arc<SnapshotCache>,
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

/// Sends what `c` holds as one push, in parts of at most
/// [`parts::PART_BYTES`] of Services. Each part is built only when the
/// stream has room for it, so a full snapshot is never copied whole.
/// Fails when the stream is gone or the server is stopping (a stalled
/// agent must not hold a shutdown up mid-push).
async fn send_push(
    ctx: &SyncContext,
    tx: &mpsc::Sender<Result<Push, Status>>,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
    c: Catchup,
    nonce: &mut Nonce,
) -> Result<(), Closed> {
    let ranges = parts::ranges(
        c.services.iter().map(|s| s.encoded_len()),
        parts::PART_BYTES,
    );
    let last = ranges.len() - 1;
    let committed = ctx
        .cache
        .started_at(c.version)
        .map_or(0, |at| unix_micros(SystemTime::now() - at.elapsed()));
    let mut head = Some((c.full, c.removed, c.probes));
    for (i, range) in ranges.into_iter().enumerate() {
        let (full, removed, probes) = head.take().unwrap_or_default();
        let msg = Push {
            version: c.version,
            nonce: nonce.next(),
            full,
            services: c.services[range].iter().map(|s| (**s).clone()).collect(),
            removed,
            probes: probes.map(|p| ProbeSet { pods: (*p).clone() }),
            cluster: Some(ctx.cache.cluster().clone()),
            more: i < last,
            committed_unix_micros: committed,
        };
        ctx.metrics.push_bytes.observe(msg.encoded_len() as f64);
        ctx.metrics.pushes.inc();
        tracing::debug!(
            version = msg.version,
            full = msg.full,
            services = msg.services.len(),
            more = msg.more,
            "push"
        );
        tokio::select! {
            sent = tx.send(Ok(msg)) => sent.map_err(|_| Closed)?,
            _ = stopping.changed() => return Err(Closed),
        }
    }
    Ok(())
}

fn unix_micros(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
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
    tx: mpsc::Sender<Result<Push, Status>>,
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
        if let Some(c) = ctx.cache.catchup(sent, &node) {
            let version = c.version;
            let pushed = tokio::select! {
                pushed = send_push(&ctx, &tx, &mut stopping, c, &mut nonce) => pushed,
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
