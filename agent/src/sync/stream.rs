//! One snapshot stream session: Register out, Pushes in, Acks out.

use std::time::Duration;
use switchyard_api::v1::agent_message::Message;
use switchyard_api::v1::agent_sync_client::AgentSyncClient;

use switchyard_api::v1::{Ack, AgentMessage, Heartbeat, Push, Register};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

/// Full pushes carry every Service of the cluster.
const MAX_PUSH_BYTES: usize = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("opening the snapshot stream: {0}")]
    Open(#[source] tonic::Status),
    #[error("snapshot stream broke: {0}")]
    Broken(#[source] tonic::Status),
    #[error("the control plane closed the snapshot stream")]
    Closed,
}

/// How often to send a heartbeat until the control plane says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);

/// An open stream: receive pushes, acknowledge each one. Heartbeats go out
/// beside them from a task of their own, so a long apply never makes the
/// node look dead; they stop when the session is dropped.
pub struct Session {
    pushes: Streaming<Push>,
    acks: mpsc::Sender<AgentMessage>,
    heartbeat: watch::Sender<Duration>,
}

/// Registers this node and opens the stream.
pub async fn open(channel: Channel, register: Register) -> Result<Session, StreamError> {
    let (acks, rx) = mpsc::channel(16);
    let hello = AgentMessage {
        message: Some(Message::Register(register)),
    };
    // The receiver is alive right here, so the first send cannot fail.
    let _ = acks.send(hello).await;
    let mut client = AgentSyncClient::new(channel).max_decoding_message_size(MAX_PUSH_BYTES);
    let pushes = client
        .stream(ReceiverStream::new(rx))
        .await
        .map_err(StreamError::Open)?
        .into_inner();
    let (heartbeat, every) = watch::channel(DEFAULT_HEARTBEAT);
    tokio::spawn(beat(acks.clone(), every));
    Ok(Session {
        pushes,
        acks,
        heartbeat,
    })
}

/// Sends a heartbeat every period until the session is gone.
async fn beat(acks: mpsc::Sender<AgentMessage>, mut every: watch::Receiver<Duration>) {
    loop {
        let period = *every.borrow_and_update();
        tokio::select! {
            _ = tokio::time::sleep(period) => {
                let msg = AgentMessage {
                    message: Some(Message::Heartbeat(Heartbeat {})),
                };
                // A full queue holds ACKs, which are signs of life too.
                if let Err(mpsc::error::TrySendError::Closed(_)) = acks.try_send(msg) {
                    return;
                }
            }
            changed = every.changed() => if changed.is_err() { return },
        }
    }
}

impl Session {
    pub async fn next(&mut self) -> Result<Push, StreamError> {
        match self.pushes.message().await {
            Ok(Some(push)) => {
                let asked = push.cluster.as_ref().map_or(0, |c| c.heartbeat_interval_ms);
                if asked > 0 {
                    let period = Duration::from_millis(u64::from(asked));
                    self.heartbeat.send_if_modified(|p| {
                        let changed = *p != period;
                        *p = period;
                        changed
                    });
                }
                Ok(push)
            }
            Ok(None) => Err(StreamError::Closed),
            Err(status) => Err(StreamError::Broken(status)),
        }
    }

    /// ACKs (`error == None`) or NACKs a push.
    pub async fn ack(&self, push: &Push, error: Option<String>) -> Result<(), StreamError> {
        let msg = AgentMessage {
            message: Some(Message::Ack(Ack {
                version: push.version,
                nonce: push.nonce.clone(),
                error: error.unwrap_or_default(),
            })),
        };
        self.acks.send(msg).await.map_err(|_| StreamError::Closed)
    }
}
