//! One accepted local connection: a `Forward` stream to the control plane,
//! which picks the pod and has its node's agent connect to it.

use std::future::Future;
use std::sync::Arc;

use switchyard_api::v1::port_forward_client::PortForwardClient;
use switchyard_api::v1::tunnel_frame::Frame;
use switchyard_api::v1::{ForwardRoute, TunnelFrame};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;

use super::forward_target;
use super::spec::Target;
use switchyard_tunnel::pump::{pump, PumpError, Totals, OUTBOUND_BUFFER};

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The control plane refused or failed the connection; its words.
    #[error("{}", .0.message())]
    Refused(tonic::Status),
    #[error("protocol error: the control plane did not confirm the connection")]
    NotOpened,
    /// The control plane cut the connection short (ABORTED): its pod was
    /// deleted or the pod's node agent went away. The forward ends then.
    #[error("{}", .0.message())]
    Lost(tonic::Status),
    /// The forward is ending because another connection lost its pod.
    #[error("the forward is ending")]
    Ended,
    #[error(transparent)]
    Pump(PumpError),
}

impl From<PumpError> for ConnectionError {
    fn from(e: PumpError) -> Self {
        match e {
            PumpError::Remote(status) if status.code() == Code::Aborted => Self::Lost(status),
            e => Self::Pump(e),
        }
    }
}

/// What every connection of one port pair forwards to.
pub struct Forward {
    pub client: PortForwardClient<Channel>,
    pub namespace: String,
    pub target: Target,
    /// The REMOTE of the pair: a Service port for svc/, else the pod port.
    pub remote: u16,
}

/// Carries `socket` to the target until both directions are closed, or
/// until `ending` resolves (the forward is ending: [`ConnectionError::Ended`]).
/// On failure the socket is reset, so the local client sees the error
/// (a connection reset) rather than a clean end of a stream cut short.
pub async fn forward(
    fwd: Arc<Forward>,
    mut socket: TcpStream,
    ending: impl Future<Output = ()>,
) -> Result<(ForwardRoute, Totals), ConnectionError> {
    let _ = socket.set_nodelay(true);
    let result = tokio::select! {
        r = carry(&fwd, &mut socket) => r,
        () = ending => Err(ConnectionError::Ended),
    };
    if result.is_err() {
        let _ = socket.set_zero_linger();
    }
    result
}

async fn carry(
    fwd: &Forward,
    socket: &mut TcpStream,
) -> Result<(ForwardRoute, Totals), ConnectionError> {
    let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
    let open = TunnelFrame {
        frame: Some(Frame::Open(forward_target(
            &fwd.namespace,
            &fwd.target,
            fwd.remote,
        ))),
    };
    // Cannot fail: the receiver is right here.
    let _ = tx.send(open).await;
    let opened = async {
        let mut client = fwd.client.clone();
        let mut inbound = client
            .forward(ReceiverStream::new(rx))
            .await
            .map_err(ConnectionError::Refused)?
            .into_inner();
        match inbound.message().await.map_err(ConnectionError::Refused)? {
            Some(TunnelFrame {
                frame: Some(Frame::Opened(route)),
            }) => Ok((route, inbound)),
            _ => Err(ConnectionError::NotOpened),
        }
    };
    let (route, inbound) = opened.await?;
    Ok((route, pump(socket, inbound, tx).await?))
}
