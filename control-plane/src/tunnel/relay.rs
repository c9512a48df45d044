//! Relays one forwarded connection between swctl's `Forward` stream and the
//! agent's `Dial` stream.
//!
//! Frames pass through unchanged: flow control is end to end between swctl
//! and the agent (credits), so the broker never needs to hold more than the
//! few frames in its bounded channels, and it keeps reading both streams so a
//! stalled connection never holds HTTP/2 window other connections need.

use switchyard_api::v1::tunnel_frame::Frame;
use switchyard_api::v1::TunnelFrame;
use tonic::{Status, Streaming};

use super::broker::{Dialed, Outbound};

/// Bytes relayed in each direction, for the connection's closing log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    pub frames: u64,
    pub bytes: u64,
}

/// Runs until both directions are done. swctl's stream ending ends the
/// agent's, and the other way round; an error on one side reaches the other
/// as an error status, so both ends abort rather than see a clean close.
pub async fn run(
    client_in: Streaming<TunnelFrame>,
    client_out: Outbound,
    dialed: Dialed,
    node: String,
) {
    let Dialed {
        inbound: agent_in,
        outbound: agent_out,
        ..
    } = dialed;
    let up = pipe(client_in, agent_out, |s| {
        Status::cancelled(format!(
            "the port-forward client went away: {}",
            s.message()
        ))
    });
    let down = pipe(agent_in, client_out, |s| {
        Status::unavailable(format!(
            "lost the tunnel to the agent of node \"{node}\": {}",
            s.message()
        ))
    });
    let (up, down) = tokio::join!(up, down);
    tracing::info!(
        bytes_to_pod = up.bytes,
        bytes_from_pod = down.bytes,
        "connection closed"
    );
}

/// Copies frames from one stream to the other peer until the stream ends.
async fn pipe(
    mut from: Streaming<TunnelFrame>,
    to: Outbound,
    lost: impl Fn(&Status) -> Status,
) -> Relayed {
    let mut relayed = Relayed::default();
    loop {
        let frame = match from.message().await {
            Ok(Some(frame)) => frame,
            // Dropping `to` ends the peer's stream cleanly.
            Ok(None) => return relayed,
            Err(status) => {
                tracing::debug!(error = %status, "stream failed");
                let _ = to.send(Err(lost(&status))).await;
                return relayed;
            }
        };
        if let Err(status) = check(&frame) {
            let _ = to.send(Err(status)).await;
            return relayed;
        }
        relayed.frames += 1;
        if let Some(Frame::Data(d)) = &frame.frame {
            relayed.bytes += d.len() as u64;
        }
        if to.send(Ok(frame)).await.is_err() {
            return relayed;
        }
    }
}

/// Only data-plane frames may follow the opening frame.
fn check(frame: &TunnelFrame) -> Result<(), Status> {
    match frame.frame {
        Some(Frame::Data(_)) | Some(Frame::Credit(_)) | Some(Frame::CloseWrite(_)) => Ok(()),
        _ => Err(Status::invalid_argument(
            "protocol error: only data, credit and close_write frames may follow the first frame",
        )),
    }
}
