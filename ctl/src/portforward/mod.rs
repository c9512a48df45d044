//! `swctl port-forward`'s machinery: `spec` parses the command line (pure),
//! `connection` carries one accepted local connection over the control
//! plane's `Forward` stream, and `pump` moves its bytes with the tunnel's
//! credit flow control. The command itself is `commands::port_forward`.

pub mod connection;
pub mod spec;

use std::time::Duration;

use switchyard_api::v1::tunnel_client::TunnelClient;
use switchyard_api::v1::{ForwardRoute, ForwardTarget};
use tonic::transport::{Channel, Endpoint};

use crate::client::ClientError;
use spec::Target;

/// One HTTP/2 connection carries every forwarded connection; keepalives
/// notice a control plane that vanished without closing it.
pub async fn connect(server: &str) -> Result<TunnelClient<Channel>, ClientError> {
    let endpoint =
        Endpoint::from_shared(server.to_string()).map_err(|e| ClientError::BadAddress {
            server: server.to_string(),
            detail: e.to_string(),
        })?;
    let authority = endpoint
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| server.to_string());
    let channel = endpoint
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|_| ClientError::Unreachable { server: authority })?;
    Ok(TunnelClient::new(channel))
}

/// The wire form of a target and remote port.
pub fn forward_target(namespace: &str, target: &Target, port: u16) -> ForwardTarget {
    ForwardTarget {
        namespace: namespace.to_string(),
        kind: target.kind.as_str().to_string(),
        name: target.name.clone(),
        port: u32::from(port),
    }
}

/// Asks the control plane which pod and port a target maps to right now.
pub async fn resolve(
    client: &mut TunnelClient<Channel>,
    namespace: &str,
    target: &Target,
    port: u16,
) -> Result<ForwardRoute, ClientError> {
    client
        .resolve(forward_target(namespace, target, port))
        .await
        .map(tonic::Response::into_inner)
        .map_err(ClientError::Server)
}
