//! One accepted local connection: a `Forward` stream to the control plane,
//! which picks the pod and has its node's agent connect to it.

use std::sync::Arc;

use switchyard_api::v1::port_forward_client::PortForwardClient;
use switchyard_api::v1::tunnel_frame::Frame;
use switchyard_api::v1::{ForwardRoute, TunnelFrame};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

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
    #[error(transparent)]
    Pump(#[from] PumpError),
}

/// What every connection of one port pair forwards to.
pub struct Forward {
    pub client: PortForwardClient<Channel>,
    pub namespace: String,
    pub target: Target,
    /// The REMOTE of the pair: a Service port for svc/, else the pod port.
    pub remote: u16,
}

/// Carries `socket` to the target until both directions are closed. On
/// failure the socket is reset, so the local client sees the error.
pub async fn forward(
    fwd: Arc<Forward>,
    socket: TcpStream,
) -> Result<(ForwardRoute, Totals), ConnectionError> {
    let _ = socket.set_nodelay(true);
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
    match opened.await {
        Ok((route, inbound)) => Ok((route, pump(socket, inbound, tx).await?)),
        Err(e) => {
            let _ = socket.set_zero_linger();
            Err(e)
        }
    }
}
