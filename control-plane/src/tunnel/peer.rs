//! A forward for a pod whose agent's tunnel ends at another control plane
//! of the same store: this control plane authorized and audited the caller,
//! then opens the same `Forward` at that control plane under its own
//! identity (`control-plane:<name>`, which may do nothing but forward) and
//! passes every frame and the final status through unchanged, so swctl
//! sees the same protocol, flow control and endings either way.

use std::sync::Arc;

use futures::StreamExt;
use switchyard_api::v1::port_forward_client::PortForwardClient;
use switchyard_api::v1::tunnel_frame::Frame;
use switchyard_api::v1::{ForwardTarget, TunnelFrame};
use switchyard_tls::client::Target;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::service::{FrameStream, RELAY_BUFFER};

pub async fn forward(
    address: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    target: ForwardTarget,
    inbound: Streaming<TunnelFrame>,
) -> Result<FrameStream, Status> {
    let unreachable = |e: &dyn std::fmt::Display| {
        Status::unavailable(format!(
            "the control plane holding the node's tunnel ({address}) cannot be reached: {e}"
        ))
    };
    let peer = Target::parse(address).map_err(|e| unreachable(&e))?;
    let endpoint = peer.endpoint().map_err(|e| unreachable(&e))?;
    let channel = peer
        .lazy_channel(endpoint, tls)
        .map_err(|e| unreachable(&e))?;
    let open = TunnelFrame {
        frame: Some(Frame::Open(target)),
    };
    // The caller's frames after `open`, until it ends its stream (an error
    // from it ends ours too, which the other control plane sees as a reset).
    let rest = inbound
        .take_while(|f| std::future::ready(f.is_ok()))
        .filter_map(|f| std::future::ready(f.ok()));
    let outbound = futures::stream::once(async move { open }).chain(rest);
    let mut answers = PortForwardClient::new(channel)
        .forward(outbound)
        .await?
        .into_inner();
    let (tx, rx) = mpsc::channel(RELAY_BUFFER);
    tokio::spawn(async move {
        while let Some(answer) = answers.next().await {
            let last = answer.is_err();
            if tx.send(answer).await.is_err() || last {
                break;
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}
