//! The gRPC client behind every command, with server errors turned into
//! kubectl's wording.

use switchyard_api::resources::{Kind, Object};
use switchyard_api::v1::identity_client::IdentityClient;
use switchyard_api::v1::resources_client::ResourcesClient;
use switchyard_api::v1::{
    ApplyOutcome, ApplyRequest, ControlPlane, ControlPlanesRequest, CreateTokenRequest,
    CreateTokenResponse, CreateUserRequest, EnvRequest, EnvVar, IssuedCertificate, ListRequest,
    ObjectRef, Resource, WatchEvent, WatchRequest,
};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::login::Login;

const LOGGED_OUT: &str = "error: You must be logged in to the server (Unauthorized)";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address {server:?}: {detail}")]
    BadAddress { server: String, detail: String },
    #[error("The connection to the server {server} was refused - did you specify the right host or port?")]
    Unreachable { server: String },
    /// No credentials to present (kubectl's words for a refused one too).
    #[error("{LOGGED_OUT}")]
    NotLoggedIn,
    #[error("reading credentials: {0}")]
    Config(String),
    #[error("Unable to connect to the server {server}: {detail}")]
    Connect { server: String, detail: String },
    /// A plaintext client whose server hung up at once: it speaks TLS.
    #[error("the server {server} closed the connection: it requires TLS (use an https:// --server and a credentials file)")]
    NeedsTls { server: String },
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

    /// Whether kubectl would print this with its own prefix (not `error: `).
    pub fn is_prefixed(&self) -> bool {
        matches!(
            self,
            ClientError::Server(_) | ClientError::Unreachable { .. } | ClientError::NotLoggedIn
        )
    }

    /// This error as `kubectl apply -f` prints the refusal of an object it
    /// read from a file: the server's message behind `context`, kubectl's
    /// words naming the file (`error when creating "web.yaml"`). A
    /// validation failure that is the command's only error keeps the form
    /// without them (`The Service "web" is invalid: …`), as kubectl's does;
    /// among several, kubectl prints it as `Error from server (Invalid): …`.
    pub fn with_source(&self, context: &str, alone: bool) -> String {
        match self {
            ClientError::Server(s)
                if s.code() == Code::Unauthenticated || (alone && is_invalid(s)) =>
            {
                kubectl_message(s)
            }
            ClientError::Server(s) => format!(
                "Error from server ({}): {context}: {}",
                reason(s),
                s.message()
            ),
            ClientError::NotLoggedIn => self.to_string(),
            other if alone => format!("error: {context}: {other}"),
            other => format!("{context}: {other}"),
        }
    }
}

/// A refusal of the object's content, with the fields at fault.
fn is_invalid(s: &Status) -> bool {
    s.code() == Code::InvalidArgument && s.message().contains(" is invalid: ")
}

/// kubectl prints validation failures as `The Service "x" is invalid: …` and
/// everything else as `Error from server (Reason): …`.
fn kubectl_message(s: &Status) -> String {
    match s.code() {
        Code::Unauthenticated => LOGGED_OUT.to_string(),
        _ if is_invalid(s) => format!("The {}", s.message()),
        _ => format!("Error from server ({}): {}", reason(s), s.message()),
    }
}

/// The Kubernetes status reason kubectl shows for a refusal.
fn reason(s: &Status) -> &'static str {
    match s.code() {
        Code::Unauthenticated => "Unauthorized",
        Code::InvalidArgument if is_invalid(s) => "Invalid",
        Code::InvalidArgument => "BadRequest",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "Forbidden",
        Code::OutOfRange => "Expired",
        Code::ResourceExhausted => "InternalError",
        Code::Unavailable => "ServiceUnavailable",
        _ => "InternalError",
    }
}

#[derive(Clone)]
pub struct Client {
    inner: ResourcesClient<Channel>,
    identity: IdentityClient<Channel>,
    login: Login,
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
pub async fn connect_channel(login: &Login) -> Result<Channel, ClientError> {
    let server = login.target.authorities();
    let endpoint = login
        .target
        .endpoint()
        .map_err(|e| ClientError::BadAddress {
            server: login.target.url().to_string(),
            detail: e.to_string(),
        })?
        .connect_timeout(
            login
                .target
                .dial_deadline()
                .max(std::time::Duration::from_secs(5)),
        )
        .http2_keep_alive_interval(std::time::Duration::from_secs(20))
        .keep_alive_timeout(std::time::Duration::from_secs(10));
    let connector = login
        .target
        .connector(login.tls.clone())
        .map_err(|e| ClientError::Config(e.to_string()))?;
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| {
            let detail = switchyard_tls::error_chain(&e);
            if detail.contains("refused") || detail.contains("No such file") {
                ClientError::Unreachable { server }
            } else {
                ClientError::Connect { server, detail }
            }
        })
}

/// A status from a call whose connection broke before any answer: over
/// plaintext that is a TLS server hanging up on the first bytes.
pub fn call_failed(login: &Login, status: Status) -> ClientError {
    let transport = matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Internal
    ) && !status.message().contains("shutting down");
    if login.target.is_plaintext() && transport && status.metadata().is_empty() {
        return ClientError::NeedsTls {
            server: login.target.authority(),
        };
    }
    ClientError::Server(status)
}

impl Client {
    pub async fn connect(login: &Login) -> Result<Client, ClientError> {
        let channel = connect_channel(login).await?;
        Ok(Client {
            inner: ResourcesClient::new(channel.clone())
                .max_decoding_message_size(256 * 1024 * 1024),
            identity: IdentityClient::new(channel),
            login: login.clone(),
        })
    }

    pub fn login(&self) -> &Login {
        &self.login
    }

    pub async fn create_user(
        &mut self,
        req: CreateUserRequest,
    ) -> Result<IssuedCertificate, ClientError> {
        let resp = self.identity.create_user(req).await;
        Ok(resp.map_err(|s| self.failed(s))?.into_inner())
    }

    pub async fn create_token(
        &mut self,
        req: CreateTokenRequest,
    ) -> Result<CreateTokenResponse, ClientError> {
        let resp = self.identity.create_token(req).await;
        Ok(resp.map_err(|s| self.failed(s))?.into_inner())
    }

    fn failed(&self, status: Status) -> ClientError {
        call_failed(&self.login, status)
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
            .map_err(|s| self.failed(s))?
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
            .map_err(|s| self.failed(s))?
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
            .map_err(|s| self.failed(s))?
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
            .map_err(|s| self.failed(s))?
            .into_inner();
        decode(&r)
    }

    /// The Service variables for `pod` (empty: a pod created now) in `namespace`.
    /// The control planes sharing the cluster's store, sorted by name.
    pub async fn control_planes(&mut self) -> Result<Vec<ControlPlane>, ClientError> {
        Ok(self
            .inner
            .control_planes(ControlPlanesRequest {})
            .await
            .map_err(|s| self.failed(s))?
            .into_inner()
            .control_planes)
    }

    pub async fn env(&mut self, namespace: &str, pod: &str) -> Result<Vec<EnvVar>, ClientError> {
        Ok(self
            .inner
            .env(EnvRequest {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
            })
            .await
            .map_err(|s| self.failed(s))?
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
            .map_err(|s| self.failed(s))?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_objects_from_a_file_are_worded_as_kubectl_words_them() {
        let context = "error when creating \"svc.yaml\"";
        let invalid = ClientError::Server(Status::invalid_argument(
            "Service \"web\" is invalid: spec.ports[0].port: Required value",
        ));
        assert_eq!(
            invalid.with_source(context, true),
            "The Service \"web\" is invalid: spec.ports[0].port: Required value"
        );
        assert_eq!(
            invalid.with_source(context, false),
            "Error from server (Invalid): error when creating \"svc.yaml\": Service \"web\" is invalid: spec.ports[0].port: Required value"
        );
        let missing = ClientError::Server(Status::not_found("namespaces \"other\" not found"));
        assert_eq!(
            missing.with_source(context, true),
            "Error from server (NotFound): error when creating \"svc.yaml\": namespaces \"other\" not found"
        );
        let broken = ClientError::Decode {
            kind: "Service".into(),
            detail: "empty response".into(),
        };
        assert_eq!(
            broken.with_source(context, true),
            "error: error when creating \"svc.yaml\": the server sent an undecodable Service: empty response"
        );
        assert_eq!(
            ClientError::NotLoggedIn.with_source(context, false),
            LOGGED_OUT
        );
    }
}
