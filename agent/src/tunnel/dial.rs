//! One dial request: connect to the pod, open the connection's `Dial`
//! stream, and pump bytes until both directions are closed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use switchyard_api::v1::tunnel_client::TunnelClient;
use switchyard_api::v1::tunnel_frame::Frame;
use switchyard_api::v1::{TunnelDialRequest, TunnelDialed, TunnelFrame};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::Instrument;

use switchyard_tunnel::pump::{pump, PumpError, Totals, OUTBOUND_BUFFER};

/// Shorter than the broker's dial timeout, so a pod that never answers is
/// reported as such rather than as a silent agent.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("invalid dial target {ip}:{port}")]
    BadTarget { ip: String, port: u32 },
    #[error("{0}")]
    Connect(String),
    #[error("opening the connection's stream: {0}")]
    Stream(#[from] tonic::Status),
    #[error(transparent)]
    Pump(#[from] PumpError),
}

/// Serves one dial request to its end, logging the outcome in its span.
pub async fn run(client: TunnelClient<Channel>, node: String, req: TunnelDialRequest) {
    let span = tracing::info_span!("dial", conn = req.connection_id, ns = %req.namespace,
        pod = %req.pod, ip = %req.ip, port = req.port);
    async move {
        match forward(client, &node, &req).await {
            Ok(t) => tracing::info!(sent = t.sent, received = t.received, "connection closed"),
            Err(e) => tracing::info!(error = %e, "connection failed"),
        }
    }
    .instrument(span)
    .await
}

async fn forward(
    mut client: TunnelClient<Channel>,
    node: &str,
    req: &TunnelDialRequest,
) -> Result<Totals, DialError> {
    let connected = match target(req) {
        Ok(addr) => connect(addr).await,
        Err(e) => Err(e.to_string()),
    };
    let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
    let error = connected.as_ref().err().cloned().unwrap_or_default();
    // Cannot fail: the receiver is right here.
    let _ = tx.send(dialed(req.connection_id, node, error)).await;
    match connected {
        Ok(mut socket) => {
            let inbound = client.dial(ReceiverStream::new(rx)).await?.into_inner();
            Ok(pump(&mut socket, inbound, tx).await?)
        }
        Err(reason) => {
            drop(tx);
            client.dial(ReceiverStream::new(rx)).await?;
            Err(DialError::Connect(reason))
        }
    }
}

fn target(req: &TunnelDialRequest) -> Result<SocketAddr, DialError> {
    let bad = || DialError::BadTarget {
        ip: req.ip.clone(),
        port: req.port,
    };
    let ip: IpAddr = req.ip.parse().map_err(|_| bad())?;
    let port = u16::try_from(req.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    Ok(SocketAddr::new(ip, port))
}

/// Connects like `dial tcp`; the error text is what swctl will print.
async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let socket = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
        .map_err(|e| format!("dial tcp {addr}: connect: {}", io_reason(&e)))?;
    let _ = socket.set_nodelay(true);
    Ok(socket)
}

/// Go's wording ("connection refused"), which kubectl users know.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "connection timed out".to_string(),
        _ => e.to_string(),
    }
}

fn dialed(connection_id: u64, node: &str, error: String) -> TunnelFrame {
    TunnelFrame {
        frame: Some(Frame::Dialed(TunnelDialed {
            connection_id,
            node_name: node.to_string(),
            error,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ip: &str, port: u32) -> TunnelDialRequest {
        TunnelDialRequest {
            connection_id: 1,
            ip: ip.into(),
            port,
            namespace: "default".into(),
            pod: "p".into(),
        }
    }

    #[test]
    fn targets_must_be_an_ip_and_a_port() {
        assert_eq!(
            target(&req("10.0.0.1", 80)).unwrap(),
            "10.0.0.1:80".parse().unwrap()
        );
        assert!(target(&req("pod.local", 80)).is_err());
        assert!(target(&req("10.0.0.1", 0)).is_err());
        assert!(target(&req("10.0.0.1", 70000)).is_err());
    }

    #[tokio::test]
    async fn a_refused_connection_reads_like_go() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let err = connect(addr).await.unwrap_err();
        assert_eq!(err, format!("dial tcp {addr}: connect: connection refused"));
    }
}
