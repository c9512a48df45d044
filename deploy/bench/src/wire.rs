//! A probe that speaks the agent's side of the snapshot stream by hand, to
//! see exactly what the control plane sends: every push's encoded size.

use std::time::Duration;

use anyhow::{anyhow, Context};
use prost::Message;
use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::agent_sync_client::AgentSyncClient;
use switchyard_api::v1::{Ack, AgentMessage, Push, Register};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

/// gRPC's length-prefixed framing adds this much to every message.
pub const GRPC_FRAME: usize = 5;

pub struct Probe {
    pushes: Streaming<Push>,
    acks: mpsc::Sender<AgentMessage>,
}

impl Probe {
    /// Registers as node `name` and returns the probe with the first push,
    /// all its parts.
    pub async fn connect(channel: Channel, name: &str) -> anyhow::Result<(Probe, Vec<Push>)> {
        let (acks, rx) = mpsc::channel(16);
        acks.send(AgentMessage {
            message: Some(AgentMsg::Register(Register {
                node_name: name.to_owned(),
                node_ips: vec!["100.127.0.1".into()],
                agent_version: "wire-probe".into(),
                ..Default::default()
            })),
        })
        .await?;
        let mut client = AgentSyncClient::new(channel).max_decoding_message_size(512 * 1024 * 1024);
        let pushes = client.stream(ReceiverStream::new(rx)).await?.into_inner();
        let mut probe = Probe { pushes, acks };
        let mut first = vec![probe.next(Duration::from_secs(120)).await?];
        while first.last().is_some_and(|p| p.more) {
            first.push(probe.next(Duration::from_secs(30)).await?);
        }
        Ok((probe, first))
    }

    /// The next message, ACKed at once when it is a push's last part.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Push> {
        let push = tokio::time::timeout(timeout, self.pushes.message())
            .await
            .context("waiting for a push")??
            .ok_or_else(|| anyhow!("the control plane closed the stream"))?;
        if push.more {
            return Ok(push);
        }
        self.acks
            .send(AgentMessage {
                message: Some(AgentMsg::Ack(Ack {
                    version: push.version,
                    nonce: push.nonce.clone(),
                    error: String::new(),
                })),
            })
            .await?;
        Ok(push)
    }

    /// Pushes until one reaches `version`, with all its parts; returns
    /// their total size on the wire.
    pub async fn bytes_until(&mut self, version: u64) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let push = self.next(Duration::from_secs(30)).await?;
            total += wire_size(std::slice::from_ref(&push));
            if push.version >= version && !push.more {
                return Ok(total);
            }
        }
    }
}

/// Bytes of a push's parts as gRPC frames them (HTTP/2 adds 9 bytes per frame).
pub fn wire_size(parts: &[Push]) -> usize {
    parts.iter().map(|p| p.encoded_len() + GRPC_FRAME).sum()
}
