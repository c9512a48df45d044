//! The `switchyard.v1.AgentSync` gRPC service.

use std::sync::Arc;

use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::agent_sync_server::AgentSync;
use switchyard_api::v1::{AgentMessage, PodReadiness, PodReadinessAck, Push};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::session::{self, SyncContext};
use crate::auth::{Access, Action, Caller, Verb};
use crate::status::to_status;

const STREAM: &str = "/switchyard.v1.AgentSync/Stream";
const READINESS: &str = "/switchyard.v1.AgentSync/ReportPodReadiness";

pub struct SyncApi {
    ctx: Arc<SyncContext>,
    access: Arc<Access>,
}

impl SyncApi {
    pub fn new(ctx: Arc<SyncContext>, access: Arc<Access>) -> Self {
        Self { ctx, access }
    }
}

#[tonic::async_trait]
impl AgentSync for SyncApi {
    type StreamStream = ReceiverStream<Result<Push, Status>>;

    #[tracing::instrument(skip_all)]
    async fn stream(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
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
