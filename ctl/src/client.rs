//! The gRPC client behind every command, with server errors turned into
//! kubectl's wording.

use switchyard_api::resources::{Kind, Object};
use switchyard_api::v1::resources_client::ResourcesClient;
use switchyard_api::v1::{
    ApplyOutcome, ApplyRequest, EnvRequest, EnvVar, ListRequest, ObjectRef, Resource, WatchEvent,
    WatchRequest,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address {server:?}: {detail}")]
    BadAddress { server: String, detail: String },
    #[error("The connection to the server {server} was refused - did you specify the right host or port?")]
    Unreachable { server: String },
    /// A refusal from the server, printed the way kubectl prints it.
    #[error("{}", kubectl_message(.0))]
    Server(Status),
    #[error("the server sent an undecodable {kind}: {detail}")]
    Decode { kind: String, detail: String },
}

impl ClientError {
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Server(s) => Some(s.code()),
            _ => None,
        }
    }
}

/// kubectl prints validation failures as `The Service "x" is invalid: …` and
/// everything else as `Error from server (Reason): …`.
fn kubectl_message(s: &Status) -> String {
    let reason = match s.code() {
        Code::InvalidArgument if s.message().contains(" is invalid: ") => {
            return format!("The {}", s.message());
        }
        Code::InvalidArgument => "BadRequest",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "Forbidden",
        Code::OutOfRange => "Expired",
        Code::ResourceExhausted => "InternalError",
        Code::Unavailable => "ServiceUnavailable",
        _ => "InternalError",
    };
    format!("Error from server ({reason}): {}", s.message())
}

pub struct Client {
    inner: ResourcesClient<Channel>,
}

pub fn decode(r: &Resource) -> Result<Object, ClientError> {
    let err = |detail: String| ClientError::Decode {
        kind: r.kind.clone(),
        detail,
    };
    let kind: Kind = r
        .kind
        .parse()
        .map_err(|e: switchyard_api::resources::UnknownKind| err(e.to_string()))?;
    Object::from_json(kind, &r.json).map_err(|e| err(e.to_string()))
}

/// Connects to the control plane, reporting an unreachable server in
/// kubectl's words. Keepalives notice a control plane that vanished
/// without closing the connection (long watches and port-forwards).
pub async fn connect_channel(server: &str) -> Result<Channel, ClientError> {
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
    endpoint
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(5))
        .http2_keep_alive_interval(std::time::Duration::from_secs(20))
        .keep_alive_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .map_err(|_| ClientError::Unreachable { server: authority })
}

impl Client {
    pub async fn connect(server: &str) -> Result<Client, ClientError> {
        let channel = connect_channel(server).await?;
        Ok(Client {
            inner: ResourcesClient::new(channel).max_decoding_message_size(256 * 1024 * 1024),
        })
    }

    pub async fn apply(
        &mut self,
        kind: Kind,
        json: String,
        create_only: bool,
    ) -> Result<(Object, ApplyOutcome), ClientError> {
        let resp = self
            .inner
            .apply(ApplyRequest {
                resource: Some(Resource {
                    kind: kind.as_str().to_string(),
                    json,
                }),
                create_only,
            })
            .await
            .map_err(ClientError::Server)?
            .into_inner();
        let outcome = resp.outcome();
        let resource = resp.resource.ok_or_else(|| ClientError::Decode {
            kind: kind.to_string(),
            detail: "empty response".to_string(),
        })?;
        Ok((decode(&resource)?, outcome))
    }

    pub async fn get(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ClientError> {
        let r = self
            .inner
            .get(object_ref(kind, namespace, name))
            .await
            .map_err(ClientError::Server)?
            .into_inner();
        decode(&r)
    }

    pub async fn list(
        &mut self,
        kind: Kind,
        scope: &Scope,
    ) -> Result<(Vec<Object>, u64), ClientError> {
        let resp = self
            .inner
            .list(ListRequest {
                kind: kind.as_str().to_string(),
                namespace: scope.namespace.clone(),
                all_namespaces: scope.all_namespaces,
                label_selector: scope.selector.clone(),
            })
            .await
            .map_err(ClientError::Server)?
            .into_inner();
        let items = resp.items.iter().map(decode).collect::<Result<_, _>>()?;
        Ok((items, resp.resource_version))
    }

    pub async fn delete(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ClientError> {
        let r = self
            .inner
            .delete(object_ref(kind, namespace, name))
            .await
            .map_err(ClientError::Server)?
            .into_inner();
        decode(&r)
    }

    /// The Service variables for `pod` (empty: a pod created now) in `namespace`.
    pub async fn env(&mut self, namespace: &str, pod: &str) -> Result<Vec<EnvVar>, ClientError> {
        Ok(self
            .inner
            .env(EnvRequest {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
            })
            .await
            .map_err(ClientError::Server)?
            .into_inner()
            .vars)
    }

    pub async fn watch(
        &mut self,
        kind: Kind,
        scope: &Scope,
        after: u64,
    ) -> Result<Streaming<WatchEvent>, ClientError> {
        Ok(self
            .inner
            .watch(WatchRequest {
                kind: kind.as_str().to_string(),
                namespace: scope.namespace.clone(),
                all_namespaces: scope.all_namespaces,
                label_selector: scope.selector.clone(),
                resource_version: after,
            })
            .await
            .map_err(ClientError::Server)?
            .into_inner())
    }
}

/// Which objects a list or watch covers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub namespace: String,
    pub all_namespaces: bool,
    pub selector: String,
}

fn object_ref(kind: Kind, namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: kind.as_str().to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}
