//! One agent's `Serve` stream: registered while it lives, heartbeats both
//! ways so a vanished agent is noticed even when its TCP connection is not.

use std::sync::Arc;
use std::time::Duration;

use switchyard_api::v1::tunnel_broker_message::Message as BrokerMsg;
use switchyard_api::v1::{TunnelAgentMessage, TunnelBrokerMessage, TunnelHeartbeat};
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};
use tonic::Streaming;

use super::broker::{Broker, SessionTx};

/// How often each side proves it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Silence after which an agent's tunnel counts as gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(35);

/// Serves the session until the agent's stream ends or goes silent, or
/// the server stops (the agent re-opens it against the next one), then
/// unregisters it (unless a newer stream from that node replaced it). A
/// session that ended unreplaced, the server not stopping, is the agent
/// gone: its open connections are cut short. A stopping server leaves them
/// to break with it, so swctl keeps serving and reconnects.
pub async fn run(
    broker: Arc<Broker>,
    node: String,
    id: u64,
    mut inbound: Streaming<TunnelAgentMessage>,
    tx: SessionTx,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    tracing::info!("agent tunnel connected");
    let mut beat = interval(HEARTBEAT);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut deadline = Instant::now() + IDLE_TIMEOUT;
    let stopped = loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(_)) => deadline = Instant::now() + IDLE_TIMEOUT,
                Ok(None) => {
                    tracing::info!("agent closed its tunnel");
                    break false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "agent tunnel failed");
                    break false;
                }
            },
            _ = beat.tick() => {
                // A full queue means the agent is not reading: skip the beat.
                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(heartbeat())) {
                    break false;
                }
            }
            _ = sleep_until(deadline) => {
                tracing::warn!(timeout = ?IDLE_TIMEOUT, "agent tunnel silent; dropping it");
                break false;
            }
            _ = stopping.changed() => {
                let _ = tx.try_send(Err(tonic::Status::unavailable("the control plane is shutting down")));
                break true;
            }
        }
    };
    if broker.unregister(&node, id) && !stopped {
        let n = broker.cut_node(&node);
        if n > 0 {
            tracing::info!(connections = n, "agent gone: its connections cut");
        }
    }
}

fn heartbeat() -> TunnelBrokerMessage {
    TunnelBrokerMessage {
        message: Some(BrokerMsg::Heartbeat(TunnelHeartbeat {})),
    }
}
