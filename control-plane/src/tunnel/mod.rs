//! The port-forward broker (`swctl port-forward`).
//!
//! The control plane never dials agents, and operators' machines reach only
//! the control plane, so a forwarded connection is two gRPC streams joined
//! here: swctl's `Forward` stream and a `Dial` stream that the pod's node
//! agent opens when asked over its long-lived `Serve` stream. `resolve`
//! picks the pod and port (pure rules over registry objects), `broker` keeps
//! the agents' sessions, pending dials and open connections, `relay` joins
//! the two streams, `cut` ends connections whose pod is deleted, `session`
//! serves one agent's `Serve` stream, `peer` passes a forward on to the
//! control plane holding the agent's tunnel, `service` is the gRPC surface,
//! `stream` a connection as a byte stream for the REST API (kubectl).

pub mod broker;
pub mod cut;
pub mod error;
pub mod peer;
pub mod relay;
pub mod resolve;
pub mod service;
pub mod session;
pub mod stream;

use std::sync::Arc;

use switchyard_api::v1::port_forward_server::PortForwardServer;
use switchyard_api::v1::tunnel_server::TunnelServer;

pub use broker::Broker;
pub use service::TunnelApi;

use crate::auth::Access;
use crate::ha::Peers;
use crate::registry::Registry;

/// The two gRPC services to add to the server, over the broker, which
/// follows the registry's pod deletions from now on, and the API itself
/// (for the REST API's port-forward). Forwards to a pod whose agent's
/// tunnel ends at another control plane go there (`peer`).
pub fn servers(
    registry: Arc<Registry>,
    access: Arc<Access>,
    stopping: tokio::sync::watch::Receiver<bool>,
    broker: Arc<Broker>,
    peers: Arc<Peers>,
) -> (
    PortForwardServer<TunnelApi>,
    TunnelServer<TunnelApi>,
    TunnelApi,
) {
    tokio::spawn(cut::follow_pods(
        registry.subscribe(),
        Arc::downgrade(&registry),
        broker.clone(),
    ));
    let api = TunnelApi::new(registry, broker, access, stopping, peers);
    (
        PortForwardServer::new(api.clone()),
        TunnelServer::new(api.clone()),
        api,
    )
}
