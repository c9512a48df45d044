//! A forwarded connection as a byte stream inside this process, for the
//! REST API's port-forward: kubectl's protocol runs on one end of a pipe,
//! the tunnel's flow-controlled frames to the pod's agent (the same broker,
//! dial and cut as swctl's connections) on the other.

use switchyard_api::resources::{Kind, Object};
use switchyard_api::v1::ForwardRoute;
use switchyard_tunnel::pump::{pump, OUTBOUND_BUFFER};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::broker::{Dialed, PodRef, Tracked};
use super::error::TunnelError;
use super::resolve::{route_to_pod, ResolveError};
use super::{cut, TunnelApi};
use crate::registry::RegistryError;

/// Bytes buffered in the pipe each way; the tunnel's credits bound the rest.
const PIPE: usize = 64 * 1024;

impl TunnelApi {
    /// A connection to `port` of pod `namespace/name`, through its node's
    /// agent. The caller has been authorized and audited for the session.
    pub async fn open(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
    ) -> Result<DuplexStream, TunnelError> {
        let route = self.route_to(namespace, name, port)?;
        if !self.broker.is_connected(&route.node) {
            return Err(match self.peers.tunnel_of(&route.node) {
                Some(address) => TunnelError::Protocol(format!(
                    "the agent of node \"{}\" keeps its tunnel at the control plane at {address}; forward through that one",
                    route.node
                )),
                None => TunnelError::AgentGone {
                    node: route.node.clone(),
                    pod: route.pod.clone(),
                },
            });
        }
        let id = rand::random::<u64>();
        let span = tracing::info_span!("forward", conn = id, ns = %route.namespace,
            pod = %route.pod, node = %route.node, port = route.pod_port, api = "rest");
        // Tracked first: a deletion after this check cuts the connection.
        let tracked = self.broker.track(id, &route);
        if !cut::exists(&self.registry, &PodRef::of(&route)) {
            return Err(not_found(&route.pod));
        }
        let dialed = self
            .broker
            .dial(id, &route)
            .instrument(span.clone())
            .await?;
        let (ours, theirs) = tokio::io::duplex(PIPE);
        tokio::spawn(carry(theirs, dialed, tracked).instrument(span));
        Ok(ours)
    }

    fn route_to(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
    ) -> Result<ForwardRoute, TunnelError> {
        let pod = match self.registry.get(Kind::Pod, namespace, name) {
            Ok(Object::Pod(pod)) => pod,
            _ => return Err(not_found(name)),
        };
        Ok(route_to_pod(&pod, port)?)
    }
}

fn not_found(pod: &str) -> TunnelError {
    let missing = RegistryError::NotFound {
        kind: Kind::Pod,
        name: pod.to_string(),
    };
    TunnelError::from(ResolveError::NotFound(missing.to_string()))
}

/// Shuttles the pipe's bytes over the agent's stream until both ends are
/// done, or the broker cuts the connection (pod deleted, agent gone): then
/// the pipe is dropped, which ends kubectl's stream for that connection.
async fn carry(mut pipe: DuplexStream, dialed: Dialed, tracked: Tracked) {
    let Dialed {
        inbound, outbound, ..
    } = dialed;
    let (tx, mut rx) = mpsc::channel(OUTBOUND_BUFFER);
    let forward = async move {
        while let Some(frame) = rx.recv().await {
            if outbound.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    };
    let carried = async {
        let (pumped, ()) = tokio::join!(pump(&mut pipe, inbound, tx), forward);
        pumped
    };
    tokio::select! {
        pumped = carried => match pumped {
            Ok(totals) => tracing::info!(bytes_to_pod = totals.received, bytes_from_pod = totals.sent, "connection closed"),
            Err(e) => tracing::info!(error = %e, "connection failed"),
        },
        status = tracked.cut() => tracing::info!(reason = %status.message(), "connection cut"),
    }
}
