//! The `switchyard.v1.AgentSync` gRPC service.

use std::sync::Arc;

use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::agent_sync_server::AgentSync;
use switchyard_api::v1::{AgentMessage, PodReadiness, PodReadinessAck, Push};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::session::{self, SyncContext};
use crate::api::to_status;

pub struct SyncApi {
    ctx: Arc<SyncContext>,
}

impl SyncApi {
    pub fn new(ctx: Arc<SyncContext>) -> Self {
        Self { ctx }
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
        self.ctx
            .registry
            .apply(session::node_object(&reg), false)
            .await
            .map_err(to_status)?;
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
        let r = request.into_inner();
        self.ctx
            .registry
            .set_pod_ready(&r.namespace, &r.name, &r.node_name, r.ready)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PodReadinessAck {}))
    }
}
