//! Pushes on the wire, encoded once for every agent.
//!
//! A protobuf message may arrive in pieces: two encodings written one after
//! the other decode as their merge. So a push is the bytes every agent at
//! the same version gets — the version's delta, encoded once by
//! [`super::encoded`] — followed by a few bytes of its own (the nonce, and
//! the node's probe list when it changed). The agent decodes an ordinary
//! `Push`; the control plane copies shared bytes instead of cloning and
//! encoding the same Services once per agent.

use bytes::{BufMut, Bytes};
use switchyard_api::v1::{AgentMessage, Push};
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::ProstDecoder;

/// One push message: shared bytes, then this agent's own.
#[derive(Debug, Clone, Default)]
pub struct EncodedPush {
    pub shared: Bytes,
    pub own: Vec<u8>,
}

impl EncodedPush {
    /// `own` is the part of `Push` only this agent gets.
    pub fn new(shared: Bytes, own: &Push) -> EncodedPush {
        EncodedPush {
            shared,
            own: prost::Message::encode_to_vec(own),
        }
    }

    pub fn len(&self) -> usize {
        self.shared.len() + self.own.len()
    }
}

/// The agent stream's codec: pre-encoded pushes out, `AgentMessage`s in.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushCodec;

impl Codec for PushCodec {
    type Encode = EncodedPush;
    type Decode = AgentMessage;
    type Encoder = PushEncoder;
    type Decoder = ProstDecoder<AgentMessage>;

    fn encoder(&mut self) -> PushEncoder {
        PushEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<AgentMessage> {
        ProstDecoder::default()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PushEncoder;

impl Encoder for PushEncoder {
    type Item = EncodedPush;
    type Error = Status;

    fn encode(&mut self, item: EncodedPush, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.shared);
        dst.put_slice(&item.own);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Encodes the part of a push every agent at one version shares.
pub fn shared(push: &Push) -> Bytes {
    Bytes::from(prost::Message::encode_to_vec(push))
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use switchyard_api::v1::{ClusterConfig, PodProbe, ProbeSet, ServiceRef, ServiceState};

    use super::*;

    #[test]
    fn shared_and_own_bytes_decode_as_one_push() {
        let whole = Push {
            version: 7,
            nonce: "3-9".to_string(),
            full: true,
            services: vec![ServiceState {
                namespace: "default".into(),
                name: "web".into(),
                cluster_ip: "10.96.0.10".into(),
                ..Default::default()
            }],
            removed: vec![ServiceRef {
                namespace: "default".into(),
                name: "old".into(),
            }],
            probes: Some(ProbeSet {
                pods: vec![PodProbe {
                    namespace: "default".into(),
                    name: "web-1".into(),
                    ..Default::default()
                }],
            }),
            cluster: Some(ClusterConfig {
                cluster_domain: "cluster.local".into(),
                ..Default::default()
            }),
            more: true,
            committed_unix_micros: 42,
        };
        let shared_part = Push {
            nonce: String::new(),
            probes: None,
            ..whole.clone()
        };
        let own = Push {
            nonce: whole.nonce.clone(),
            probes: whole.probes.clone(),
            ..Default::default()
        };
        let wire = EncodedPush::new(shared(&shared_part), &own);
        let mut bytes = wire.shared.to_vec();
        bytes.extend_from_slice(&wire.own);
        assert_eq!(wire.len(), bytes.len());
        assert_eq!(Push::decode(bytes.as_slice()).unwrap(), whole);
    }
}
