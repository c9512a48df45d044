//! Relays one forwarded connection between swctl's `Forward` stream and the
//! agent's `Dial` stream.
//!
//! Frames pass through unchanged: flow control is end to end between swctl
//! and the agent (credits), so the broker never needs to hold more than the
//! few frames in its bounded channels, and it keeps reading both streams so a
//! stalled connection never holds HTTP/2 window other connections need.

use std::time::Duration;

use switchyard_api::v1::tunnel_frame::Frame;
use switchyard_api::v1::{ForwardRoute, TunnelFrame};
use tonic::{Status, Streaming};

use super::broker::{Dialed, Outbound, Tracked};

/// How long an agent's stream failing waits for its session to end too:
/// both go at once when the agent itself is gone, and that must read as the
/// pod lost (ABORTED), not as one connection failing.
const AGENT_GONE_GRACE: Duration = Duration::from_secs(1);
/// How long telling a peer its stream failed may take. The status queues
/// behind the data already sent, which a peer delivers only as fast as its
/// own local reader takes it (a rate-limited download: seconds of data in
/// socket buffers), so a slow but live peer gets this long to reach it; a
/// peer that is gone fails the send at once.
const TELL_GRACE: Duration = Duration::from_secs(10);

/// Bytes relayed in each direction, for the connection's closing log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    pub frames: u64,
    pub bytes: u64,
}

/// Which stream a pipe reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Agent,
}

/// How a pipe's copying ended.
enum Ended {
    /// The stream ended; dropping the peer's sender ends its stream too.
    Done,
    /// The stream failed with this status; what the peer is told depends
    /// on which side failed.
    Broke(Status),
    /// The stream broke the protocol, or the broker cut the connection:
    /// the peer is failed with this status as is.
    Abort(Status),
}

/// Runs until both directions are done. swctl's stream ending ends the
/// agent's, and the other way round; an error on one side reaches the other
/// as an error status, so both ends abort rather than see a clean close.
/// When the broker cuts the connection (its pod deleted, its agent gone),
/// both are failed with the cut's status.
pub async fn run(
    client_in: Streaming<TunnelFrame>,
    client_out: Outbound,
    dialed: Dialed,
    route: ForwardRoute,
    tracked: Tracked,
) {
    let Dialed {
        inbound: agent_in,
        outbound: agent_out,
        ..
    } = dialed;
    let up = pipe(client_in, agent_out, Side::Client, &route, &tracked);
    let down = pipe(agent_in, client_out, Side::Agent, &route, &tracked);
    let (up, down) = tokio::join!(up, down);
    tracing::info!(
        bytes_to_pod = up.bytes,
        bytes_from_pod = down.bytes,
        "connection closed"
    );
}

/// Copies frames from one stream to the other peer until the stream ends,
/// fails, or the connection is cut; then tells the peer.
async fn pipe(
    mut from: Streaming<TunnelFrame>,
    to: Outbound,
    side: Side,
    route: &ForwardRoute,
    tracked: &Tracked,
) -> Relayed {
    let mut relayed = Relayed::default();
    let ended = tokio::select! {
        ended = copy(&mut from, &to, &mut relayed) => ended,
        status = tracked.cut() => Ended::Abort(status),
    };
    let status = match ended {
        Ended::Done => None,
        Ended::Abort(status) => Some(status),
        Ended::Broke(status) => {
            tracing::debug!(error = %status, ?side, "stream failed");
            Some(failure(side, &status, route, tracked).await)
        }
    };
    if let Some(status) = status {
        let _ = tokio::time::timeout(TELL_GRACE, to.send(Err(status))).await;
    }
    relayed
}

async fn copy(from: &mut Streaming<TunnelFrame>, to: &Outbound, relayed: &mut Relayed) -> Ended {
    loop {
        let frame = match from.message().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ended::Done,
            Err(status) => return Ended::Broke(status),
        };
        if let Err(status) = check(&frame) {
            return Ended::Abort(status);
        }
        relayed.frames += 1;
        if let Some(Frame::Data(d)) = &frame.frame {
            relayed.bytes += d.len() as u64;
        }
        if to.send(Ok(frame)).await.is_err() {
            return Ended::Done;
        }
    }
}

/// What the peer of a failed stream is told. An agent's stream fails alone
/// when the agent gave up that one connection, and together with its
/// session when the agent is gone; the session ending cuts the connection,
/// so a failure followed by a cut is the cut.
async fn failure(side: Side, status: &Status, route: &ForwardRoute, tracked: &Tracked) -> Status {
    match side {
        Side::Client => Status::cancelled(format!(
            "the port-forward client went away: {}",
            status.message()
        )),
        Side::Agent => tokio::time::timeout(AGENT_GONE_GRACE, tracked.cut())
            .await
            .unwrap_or_else(|_| {
                Status::unavailable(format!(
                    "the connection to pod \"{}\" failed at the agent of node \"{}\": {}",
                    route.pod,
                    route.node,
                    status.message()
                ))
            }),
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
