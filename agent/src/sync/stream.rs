//! One snapshot stream session: Register out, Pushes in, Acks out.

use switchyard_api::v1::agent_message::Message;
use switchyard_api::v1::agent_sync_client::AgentSyncClient;
use switchyard_api::v1::{Ack, AgentMessage, Push, Register};
use tokio::sync::mpsc;
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

/// An open stream: receive pushes, acknowledge each one.
pub struct Session {
    pushes: Streaming<Push>,
    acks: mpsc::Sender<AgentMessage>,
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
    Ok(Session { pushes, acks })
}

impl Session {
    pub async fn next(&mut self) -> Result<Push, StreamError> {
        match self.pushes.message().await {
            Ok(Some(push)) => Ok(push),
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
