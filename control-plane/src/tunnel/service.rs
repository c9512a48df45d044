//! The port-forward gRPC services: swctl's `PortForward` (`Resolve`,
//! `Forward`; admins) and the agents' `Tunnel` (`Serve`, `Dial`; each node
//! for itself only), both over one broker.

use std::sync::Arc;

use switchyard_api::resources::Kind;
use switchyard_api::v1::port_forward_server::PortForward;
use switchyard_api::v1::tunnel_agent_message::Message as AgentMsg;
use switchyard_api::v1::tunnel_frame::Frame;
use switchyard_api::v1::tunnel_server::Tunnel;
use switchyard_api::v1::{
    ForwardRoute, ForwardTarget, TunnelAgentMessage, TunnelBrokerMessage, TunnelDialed, TunnelFrame,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::broker::{Broker, PodRef};
use super::error::TunnelError;
use super::resolve::{resolve, ResolveError};
use super::{cut, peer, relay, session};
use crate::auth::{Access, Action, Caller, Verb};
use crate::ha::Peers;
use crate::registry::{Registry, RegistryError};

const FORWARD: &str = "/switchyard.v1.PortForward/Forward";
const SERVE: &str = "/switchyard.v1.Tunnel/Serve";

/// Frames buffered per direction of a relayed connection.
pub(super) const RELAY_BUFFER: usize = 16;
/// Messages buffered towards one agent's `Serve` stream.
const SESSION_BUFFER: usize = 256;

#[derive(Clone)]
pub struct TunnelApi {
    pub(super) registry: Arc<Registry>,
    pub(super) broker: Arc<Broker>,
    access: Arc<Access>,
    /// Turns true when the server stops: agents' sessions end then.
    stopping: tokio::sync::watch::Receiver<bool>,
    pub(super) peers: Arc<Peers>,
}

/// `services/portforward`, `pods/portforward`, …: forwarding to a target
/// is creating its port-forward subresource, as kubectl's is.
fn forward_resource(target: &ForwardTarget) -> String {
    let plural = target
        .kind
        .parse::<Kind>()
        .map(Kind::plural)
        .unwrap_or("pods");
    format!("{plural}/portforward")
}

/// The tunnel of `node`, which only that node may serve.
fn tunnel_action(node: &str) -> Action<'_> {
    Action::new(Verb::Create, "nodes/tunnel")
        .name(node)
        .of_node(node)
}

impl TunnelApi {
    pub fn new(
        registry: Arc<Registry>,
        broker: Arc<Broker>,
        access: Arc<Access>,
        stopping: tokio::sync::watch::Receiver<bool>,
        peers: Arc<Peers>,
    ) -> Self {
        Self {
            registry,
            broker,
            access,
            stopping,
            peers,
        }
    }

    /// Port-forwarding to `target`. A session (`Forward`) is audited; the
    /// check swctl makes before it listens (`Resolve`) is not.
    fn authorize_forward(
        &self,
        caller: &Caller,
        session: Option<&str>,
        target: &ForwardTarget,
    ) -> Result<(), Status> {
        let resource = forward_resource(target);
        let namespace = if target.namespace.is_empty() {
            "default"
        } else {
            &target.namespace
        };
        let action = Action::new(Verb::Create, &resource)
            .namespace(namespace)
            .name(&target.name);
        match session {
            Some(method) => self.access.authorize(caller, method, action),
            None => crate::auth::policy::authorize(&caller.principal, &action)
                .map_err(Status::permission_denied),
        }
    }

    fn route(&self, target: &ForwardTarget) -> Result<ForwardRoute, TunnelError> {
        Ok(resolve(&self.registry, target, |node| {
            self.broker.is_connected(node) || self.peers.tunnel_of(node).is_some()
        })?)
    }
}

pub(super) type FrameStream = ReceiverStream<Result<TunnelFrame, Status>>;

#[tonic::async_trait]
impl PortForward for TunnelApi {
    #[tracing::instrument(skip_all, fields(ns = %request.get_ref().namespace, kind = %request.get_ref().kind, name = %request.get_ref().name))]
    async fn resolve(
        &self,
        request: Request<ForwardTarget>,
    ) -> Result<Response<ForwardRoute>, Status> {
        self.authorize_forward(&Caller::of(&request), None, request.get_ref())?;
        Ok(Response::new(self.route(request.get_ref())?))
    }

    type ForwardStream = FrameStream;

    async fn forward(
        &self,
        request: Request<Streaming<TunnelFrame>>,
    ) -> Result<Response<Self::ForwardStream>, Status> {
        let caller = Caller::of(&request);
        let mut inbound = request.into_inner();
        let target = match first_frame(&mut inbound).await? {
            Frame::Open(target) => target,
            _ => return Err(protocol("the first frame of Forward must be open")),
        };
        self.authorize_forward(&caller, Some(FORWARD), &target)?;
        let route = self.route(&target)?;
        if !self.broker.is_connected(&route.node) {
            if let Some(address) = self.peers.tunnel_of(&route.node) {
                let frames = peer::forward(&address, self.peers.tls(), target, inbound).await?;
                return Ok(Response::new(frames));
            }
        }
        let id = rand::random::<u64>();
        let span = tracing::info_span!("forward", conn = id, ns = %route.namespace,
            target = %format!("{}/{}", target.kind, target.name), pod = %route.pod,
            node = %route.node, port = route.pod_port);
        // Tracked first: a deletion after this check cuts the connection.
        let tracked = self.broker.track(id, &route);
        if !cut::exists(&self.registry, &PodRef::of(&route)) {
            return Err(TunnelError::from(ResolveError::NotFound(
                RegistryError::NotFound {
                    kind: Kind::Pod,
                    name: route.pod,
                }
                .to_string(),
            ))
            .into());
        }
        let dialed = self.broker.dial(id, &route).instrument(span.clone()).await;
        let dialed = dialed
            .inspect_err(|e| span.in_scope(|| tracing::info!(error = %e, "forward failed")))?;
        let (tx, rx) = mpsc::channel(RELAY_BUFFER);
        let opened = TunnelFrame {
            frame: Some(Frame::Opened(route.clone())),
        };
        tx.send(Ok(opened))
            .await
            .map_err(|_| Status::cancelled("the port-forward client went away"))?;
        tokio::spawn(relay::run(inbound, tx, dialed, route, tracked).instrument(span));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl Tunnel for TunnelApi {
    type ServeStream = ReceiverStream<Result<TunnelBrokerMessage, Status>>;

    async fn serve(
        &self,
        request: Request<Streaming<TunnelAgentMessage>>,
    ) -> Result<Response<Self::ServeStream>, Status> {
        let caller = Caller::of(&request);
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(TunnelAgentMessage {
                message: Some(AgentMsg::Hello(hello)),
            }) if !hello.node_name.is_empty() => hello,
            _ => {
                return Err(protocol(
                    "the first message of Serve must be hello with a node name",
                ))
            }
        };
        self.access
            .authorize(&caller, SERVE, tunnel_action(&hello.node_name))?;
        let (tx, rx) = mpsc::channel(SESSION_BUFFER);
        let id = self.broker.register(&hello.node_name, tx.clone());
        let span = tracing::info_span!("tunnel", node = %hello.node_name, session = id,
            agent_version = %hello.agent_version);
        let task = session::run(
            self.broker.clone(),
            hello.node_name,
            id,
            inbound,
            tx,
            self.stopping.clone(),
        );
        tokio::spawn(task.instrument(span));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type DialStream = FrameStream;

    async fn dial(
        &self,
        request: Request<Streaming<TunnelFrame>>,
    ) -> Result<Response<Self::DialStream>, Status> {
        let caller = Caller::of(&request);
        let mut inbound = request.into_inner();
        let dialed: TunnelDialed = match first_frame(&mut inbound).await? {
            Frame::Dialed(d) => d,
            _ => return Err(protocol("the first frame of Dial must be dialed")),
        };
        // The broker hands the stream only to a dial made for this node.
        let action = tunnel_action(&dialed.node_name);
        if let Err(refusal) = crate::auth::policy::authorize(&caller.principal, &action) {
            return Err(Status::permission_denied(refusal));
        }
        let (tx, rx) = mpsc::channel(RELAY_BUFFER);
        self.broker.deliver(&dialed, inbound, tx)?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn first_frame(inbound: &mut Streaming<TunnelFrame>) -> Result<Frame, Status> {
    inbound
        .message()
        .await?
        .and_then(|f| f.frame)
        .ok_or_else(|| protocol("the stream ended before its first frame"))
}

fn protocol(msg: &str) -> Status {
    TunnelError::Protocol(format!("protocol error: {msg}")).into()
}
