//! The `switchyard.v1.AgentSync` gRPC service, routed by hand rather than
//! by the generated server: its stream sends pre-encoded pushes through
//! [`PushCodec`], which the generated code (one codec for every method,
//! messages typed as the proto's) cannot.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::{AgentMessage, PodReadiness, PodReadinessAck};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, StreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use super::session::{self, SyncContext};
use super::wire::{EncodedPush, PushCodec};
use crate::auth::{Access, Action, Caller, Verb};
use crate::status::to_status;

const STREAM: &str = "/switchyard.v1.AgentSync/Stream";
const READINESS: &str = "/switchyard.v1.AgentSync/ReportPodReadiness";

type PushStream = ReceiverStream<Result<EncodedPush, Status>>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Clone)]
pub struct SyncApi {
    ctx: Arc<SyncContext>,
    access: Arc<Access>,
    max_encoding: usize,
}

impl SyncApi {
    /// Pushes bigger than `max_encoding` bytes are refused by the codec
    /// layer, as the generated server's `max_encoding_message_size` would.
    pub fn new(ctx: Arc<SyncContext>, access: Arc<Access>, max_encoding: usize) -> Self {
        Self {
            ctx,
            access,
            max_encoding,
        }
    }

    #[tracing::instrument(skip_all)]
    async fn stream(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<PushStream>, Status> {
        let caller = Caller::of(&request);
        let mut inbound = request.into_inner();
        let reg = match inbound.message().await? {
            Some(AgentMessage {
                message: Some(AgentMsg::Register(reg)),
            }) => reg,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message on the stream must be Register",
                ))
            }
        };
        if reg.node_name.is_empty() {
            return Err(Status::invalid_argument(
                "register.nodeName: Required value",
            ));
        }
        let node = reg.node_name.as_str();
        let action = Action::new(Verb::Update, "nodes/status")
            .name(node)
            .of_node(node);
        self.access
            .run(&caller, STREAM, action, async {
                self.ctx
                    .registry
                    .apply(session::node_object(&reg), false)
                    .await
                    .map_err(to_status)
            })
            .await?;
        // A small buffer: a slow agent applies back-pressure here, and later
        // versions coalesce into the next delta instead of queueing.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(session::run(self.ctx.clone(), reg, inbound, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    #[tracing::instrument(skip_all, fields(pod = %request.get_ref().name))]
    async fn report_pod_readiness(
        &self,
        request: Request<PodReadiness>,
    ) -> Result<Response<PodReadinessAck>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        // A node identity speaks for itself whatever the message says.
        let reporter = caller.principal.node().unwrap_or(&r.node_name).to_string();
        let bound = self
            .ctx
            .registry
            .pod_node(&r.namespace, &r.name)
            .map_err(to_status)?;
        let mut action = Action::new(Verb::Update, "pods/status")
            .namespace(&r.namespace)
            .name(&r.name);
        if !bound.is_empty() {
            action = action.of_node(&bound);
        }
        self.access
            .run(&caller, READINESS, action, async {
                self.ctx
                    .registry
                    .set_pod_ready(&r.namespace, &r.name, &reporter, r.ready)
                    .await
                    .map_err(to_status)
            })
            .await?;
        Ok(Response::new(PodReadinessAck {}))
    }
}

impl NamedService for SyncApi {
    const NAME: &'static str = "switchyard.v1.AgentSync";
}

impl<B> tower::Service<http::Request<B>> for SyncApi
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let api = Arc::new(self.clone());
        let limits = (None, Some(self.max_encoding));
        Box::pin(async move {
            Ok(match req.uri().path() {
                STREAM => {
                    let mut grpc =
                        Grpc::new(PushCodec).apply_max_message_size_config(limits.0, limits.1);
                    grpc.streaming(Method(api), req).await
                }
                READINESS => {
                    let mut grpc =
                        Grpc::new(ProstCodec::<PodReadinessAck, PodReadiness>::default());
                    grpc.unary(Method(api), req).await
                }
                _ => Status::unimplemented("").into_http(),
            })
        })
    }
}

/// One of the service's methods, as tonic's server calls it.
struct Method(Arc<SyncApi>);

impl StreamingService<AgentMessage> for Method {
    type Response = EncodedPush;
    type ResponseStream = PushStream;
    type Future = BoxFuture<Result<Response<PushStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<AgentMessage>>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.stream(request).await })
    }
}

impl UnaryService<PodReadiness> for Method {
    type Response = PodReadinessAck;
    type Future = BoxFuture<Result<Response<PodReadinessAck>, Status>>;

    fn call(&mut self, request: Request<PodReadiness>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.report_pod_readiness(request).await })
    }
}
