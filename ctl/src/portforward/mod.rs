//! `swctl port-forward`'s machinery: `spec` parses the command line (pure),
//! `connection` carries one accepted local connection over the control
//! plane's `Forward` stream, and `pump` moves its bytes with the tunnel's
//! credit flow control. The command itself is `commands::port_forward`.

pub mod connection;
pub mod spec;

use switchyard_api::v1::port_forward_client::PortForwardClient;
use switchyard_api::v1::{ForwardRoute, ForwardTarget};
use tonic::transport::Channel;

use crate::client::ClientError;
use crate::login::Login;
use spec::Target;

/// One HTTP/2 connection carries every forwarded connection.
pub async fn connect(login: &Login) -> Result<PortForwardClient<Channel>, ClientError> {
    Ok(PortForwardClient::new(
        crate::client::connect_channel(login).await?,
    ))
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
    client: &mut PortForwardClient<Channel>,
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
