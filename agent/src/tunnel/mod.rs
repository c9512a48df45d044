//! The agent's end of `swctl port-forward`.
//!
//! The control plane never dials agents, so the agent keeps one `Serve`
//! stream open to it, re-opened with capped, jittered exponential backoff
//! whenever it breaks. The broker sends dial requests on it; each is served
//! by `dial`: connect to the pod, then open a dedicated `Dial` stream for that
//! connection, so a slow or broken connection never holds up the session or
//! the others. `pump` moves the bytes with the tunnel's credit flow control.

pub mod dial;

use std::time::Duration;

use switchyard_api::v1::tunnel_agent_message::Message as AgentMsg;
use switchyard_api::v1::tunnel_broker_message::Message as BrokerMsg;
use switchyard_api::v1::tunnel_client::TunnelClient;
use switchyard_api::v1::{TunnelAgentMessage, TunnelBrokerMessage, TunnelHeartbeat, TunnelHello};
use tokio::sync::mpsc;
use tokio::time::{interval, sleep, sleep_until, Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use crate::connection::Channels;
use crate::sync::Backoff;

/// How often each side proves it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Silence after which the session counts as dead and is re-opened.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(35);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A session that lasted this long was healthy: back off from the start.
const STABLE_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("opening the tunnel stream: {0}")]
    Open(tonic::Status),
    #[error("the tunnel stream failed: {0}")]
    Stream(tonic::Status),
    #[error("the control plane was silent for {0:?}")]
    Silent(Duration),
    #[error("the tunnel stream's sender closed")]
    Closed,
}

/// Keeps this node's tunnel session open forever; dials pods on request.
/// Connections in progress have their own streams, but to the broker a
/// session that ends is this agent gone: it cuts them short (they are reset
/// here and in swctl), as a pod's node going away does in Kubernetes.
pub async fn run(channels: Channels, node_name: String) {
    let span = tracing::info_span!("tunnel", node = %node_name);
    async move {
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
        loop {
            let started = Instant::now();
            match serve(&channels, &node_name).await {
                Ok(()) => tracing::info!("the control plane closed the tunnel stream"),
                Err(e) => tracing::warn!(error = %e, "tunnel session ended"),
            }
            if started.elapsed() >= STABLE_AFTER {
                backoff.reset();
            }
            let delay = backoff.next_delay(&mut rand::rng());
            tracing::debug!(?delay, "re-opening the tunnel stream");
            sleep(delay).await;
        }
    }
    .instrument(span)
    .await
}

/// One session: hello, then dial requests and heartbeats until it breaks.
/// Each dial opens its stream on the channel current at that moment, so a
/// renewed certificate serves new connections while the session stays.
async fn serve(channels: &Channels, node: &str) -> Result<(), TunnelError> {
    let mut client = TunnelClient::new(channels.borrow().clone());
    let (tx, rx) = mpsc::channel(4);
    tx.send(hello(node))
        .await
        .map_err(|_| TunnelError::Closed)?;
    let mut inbound = client
        .serve(ReceiverStream::new(rx))
        .await
        .map_err(TunnelError::Open)?
        .into_inner();
    tracing::info!("tunnel session open");
    let mut beat = interval(HEARTBEAT);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut deadline = Instant::now() + IDLE_TIMEOUT;
    loop {
        tokio::select! {
            msg = inbound.message() => match msg.map_err(TunnelError::Stream)? {
                None => return Ok(()),
                Some(msg) => {
                    deadline = Instant::now() + IDLE_TIMEOUT;
                    handle(msg, channels, node);
                }
            },
            _ = beat.tick() => {
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(heartbeat()) {
                    return Err(TunnelError::Closed);
                }
            }
            _ = sleep_until(deadline) => return Err(TunnelError::Silent(IDLE_TIMEOUT)),
        }
    }
}

fn handle(msg: TunnelBrokerMessage, channels: &Channels, node: &str) {
    if let Some(BrokerMsg::Dial(req)) = msg.message {
        let client = TunnelClient::new(channels.borrow().clone());
        tokio::spawn(dial::run(client, node.to_string(), req));
    }
}

fn hello(node: &str) -> TunnelAgentMessage {
    TunnelAgentMessage {
        message: Some(AgentMsg::Hello(TunnelHello {
            node_name: node.to_string(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        })),
    }
}

fn heartbeat() -> TunnelAgentMessage {
    TunnelAgentMessage {
        message: Some(AgentMsg::Heartbeat(TunnelHeartbeat {})),
    }
}
