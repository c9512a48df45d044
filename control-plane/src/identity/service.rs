//! The `switchyard.v1.Identity` gRPC service.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchyard_api::resources::{BootstrapToken, Kind, Node, Object, User};
use switchyard_api::v1::identity_server::Identity;
use switchyard_api::v1::{
    CertificateRequest, CreateTokenRequest, CreateTokenResponse, CreateUserRequest,
    IssuedCertificate, JoinRequest,
};
use tonic::{Request, Response, Status};

use super::token::{self, Refusal};
use super::{record_node_certificate, record_of, rfc3339};
use crate::auth::principal::NODES_GROUP;
use crate::auth::{Access, Action, Caller, Principal, Role, Verb};
use crate::pki::{Ca, Issued, PkiError, Subject, Usage};
use crate::registry::{Registry, RegistryError};
use crate::status::to_status;

const JOIN: &str = "/switchyard.v1.Identity/Join";
const RENEW: &str = "/switchyard.v1.Identity/RenewNodeCertificate";
const CREATE_USER: &str = "/switchyard.v1.Identity/CreateUser";
const CREATE_TOKEN: &str = "/switchyard.v1.Identity/CreateToken";

const DEFAULT_USER_TTL: Duration = Duration::from_secs(8760 * 3600);
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Lifetime of node certificates (`--node-cert-ttl`).
    pub node_cert_ttl: Duration,
    /// `https://` URLs of the advertised addresses, for what clients write down.
    pub server_urls: Vec<String>,
}

pub struct IdentityApi {
    registry: Arc<Registry>,
    ca: Arc<Ca>,
    access: Arc<Access>,
    cfg: IdentityConfig,
}

impl IdentityApi {
    pub fn new(
        registry: Arc<Registry>,
        ca: Arc<Ca>,
        access: Arc<Access>,
        cfg: IdentityConfig,
    ) -> Self {
        Self {
            registry,
            ca,
            access,
            cfg,
        }
    }

    fn issued(&self, cert: Issued) -> IssuedCertificate {
        IssuedCertificate {
            certificate_pem: cert.pem,
            ca_pem: self.ca.pem().to_string(),
            server_urls: self.cfg.server_urls.clone(),
        }
    }

    fn node_certificate(&self, csr_pem: &str, node: &str) -> Result<Issued, Status> {
        let subject = Subject {
            common_name: format!("{}{node}", crate::auth::principal::NODE_PREFIX),
            organization: NODES_GROUP.to_string(),
        };
        self.ca
            .sign_csr(csr_pem, &subject, &Usage::Client, self.cfg.node_cert_ttl)
            .map_err(pki_status)
    }

    /// Checks the token, signs, then records the certificate and the use
    /// of the token in one write, checking the token again under the
    /// writer lock: two hosts racing for a single-use token get one
    /// certificate that works between them.
    async fn join_node(
        &self,
        r: &JoinRequest,
        token_id: &str,
        secret: &str,
    ) -> Result<Issued, Status> {
        let mut node = Node::default();
        node.metadata.name = r.node_name.clone();
        crate::validation::node(&node).map_err(|errors| {
            to_status(RegistryError::invalid(Kind::Node, &r.node_name, errors))
        })?;
        let stored = match self.registry.get(Kind::BootstrapToken, "", token_id) {
            Ok(Object::BootstrapToken(t)) => Some(*t),
            _ => None,
        };
        token::check(stored.as_ref(), secret, &r.node_name, Utc::now()).map_err(refused)?;
        let cert = self.node_certificate(&r.csr_pem, &r.node_name)?;
        let record = record_of(&cert);
        let outcome = self
            .registry
            .write(|txn| {
                let now = Utc::now();
                let token = match txn.get(Kind::BootstrapToken, token_id) {
                    Some(Object::BootstrapToken(t)) => Some(*t),
                    _ => None,
                };
                if let Err(refusal) = token::check(token.as_ref(), secret, &r.node_name, now) {
                    return Ok(Err(refusal));
                }
                if let Some(mut token) = token {
                    token.status.uses += 1;
                    txn.put(Object::BootstrapToken(Box::new(token)));
                }
                record_node_certificate(txn, &r.node_name, record.clone(), now);
                Ok(Ok(()))
            })
            .await
            .map_err(to_status)?;
        outcome.map_err(refused)?;
        tracing::info!(node = %r.node_name, token = token_id, serial = %cert.info.serial, "node joined");
        Ok(cert)
    }
}

fn refused(r: Refusal) -> Status {
    Status::permission_denied(format!("join refused: {r}"))
}

fn pki_status(e: PkiError) -> Status {
    match e {
        PkiError::BadCsr(_) => Status::invalid_argument(e.to_string()),
        e => {
            tracing::error!(error = %e, "signing failed");
            Status::internal(e.to_string())
        }
    }
}

fn ttl(seconds: u64, default: Duration) -> Duration {
    if seconds == 0 {
        default
    } else {
        Duration::from_secs(seconds)
    }
}

#[tonic::async_trait]
impl Identity for IdentityApi {
    #[tracing::instrument(skip_all, fields(node = %request.get_ref().node_name))]
    async fn join(
        &self,
        request: Request<JoinRequest>,
    ) -> Result<Response<IssuedCertificate>, Status> {
        let received = Utc::now();
        let remote = Caller::of(&request).remote;
        let r = request.into_inner();
        let parsed = token::parse(&r.token);
        let caller = Caller {
            principal: Principal::Bootstrap {
                token: parsed.map(|(id, _)| id.to_string()).unwrap_or_default(),
            },
            remote,
        };
        let result = match parsed {
            Some((id, secret)) => self.join_node(&r, id, secret).await,
            None => Err(refused(Refusal::Unknown)),
        };
        let action = Action::new(Verb::Create, "certificatesigningrequests").name(&r.node_name);
        self.access
            .record(&caller, JOIN, &action, result.as_ref().err(), received);
        if let Err(e) = &result {
            tracing::info!(error = %e.message(), "join refused");
        }
        Ok(Response::new(self.issued(result?)))
    }

    #[tracing::instrument(skip_all)]
    async fn renew_node_certificate(
        &self,
        request: Request<CertificateRequest>,
    ) -> Result<Response<IssuedCertificate>, Status> {
        let caller = Caller::of(&request);
        let node = caller.principal.node().unwrap_or_default().to_string();
        let action = Action::new(Verb::Create, "certificatesigningrequests")
            .name(&node)
            .of_node(&node);
        let csr = request.into_inner().csr_pem;
        let cert = self
            .access
            .run(&caller, RENEW, action, async {
                let cert = self.node_certificate(&csr, &node)?;
                let record = record_of(&cert);
                let recorded = self
                    .registry
                    .write(|txn| {
                        let exists = txn.get(Kind::Node, &node).is_some();
                        if exists {
                            record_node_certificate(txn, &node, record.clone(), Utc::now());
                        }
                        Ok(exists)
                    })
                    .await
                    .map_err(to_status)?;
                if !recorded {
                    return Err(Status::unauthenticated(
                        "Unauthorized: the certificate was revoked",
                    ));
                }
                tracing::info!(%node, serial = %cert.info.serial, "renewed a node certificate");
                Ok(cert)
            })
            .await?;
        Ok(Response::new(self.issued(cert)))
    }

    #[tracing::instrument(skip_all, fields(user = %request.get_ref().name))]
    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<IssuedCertificate>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let action = Action::new(Verb::Create, "users").name(&r.name);
        let cert = self
            .access
            .run(&caller, CREATE_USER, action, async {
                let role = Role::parse(&r.role).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "User \"{}\" is invalid: spec.role: Unsupported value: \"{}\": supported values: \"admin\", \"view\"",
                        r.name, r.role
                    ))
                })?;
                let subject = Subject {
                    common_name: r.name.clone(),
                    organization: role.group(),
                };
                let lifetime = ttl(r.ttl_seconds, DEFAULT_USER_TTL);
                let cert = self
                    .ca
                    .sign_csr(&r.csr_pem, &subject, &Usage::Client, lifetime)
                    .map_err(pki_status)?;
                let mut user = User::default();
                user.metadata.name = r.name.clone();
                user.spec.role = role.as_str().to_string();
                user.status.certificate = Some(record_of(&cert));
                self.registry
                    .apply(Object::User(Box::new(user)), true)
                    .await
                    .map_err(to_status)?;
                Ok(cert)
            })
            .await?;
        Ok(Response::new(self.issued(cert)))
    }

    #[tracing::instrument(skip_all)]
    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let action = Action::new(Verb::Create, "tokens");
        let response = self
            .access
            .run(&caller, CREATE_TOKEN, action, async {
                let lifetime = ttl(r.ttl_seconds, DEFAULT_TOKEN_TTL);
                let expires = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
                let (id, secret) = token::generate(&mut rand::rng());
                let mut t = BootstrapToken::default();
                t.metadata.name = id.clone();
                t.spec.node_name = Some(r.node_name.clone()).filter(|n| !n.is_empty());
                t.spec.expires = rfc3339(expires);
                t.spec.reusable = r.reusable;
                t.spec.secret_hash = token::hash(&secret);
                self.registry
                    .apply(Object::BootstrapToken(Box::new(t)), true)
                    .await
                    .map_err(to_status)?;
                Ok(CreateTokenResponse {
                    token: format!("{id}.{secret}"),
                    ca_cert_hash: self.ca.pin().map_err(pki_status)?,
                    server_urls: self.cfg.server_urls.clone(),
                    expires: rfc3339(expires),
                })
            })
            .await?;
        Ok(Response::new(response))
    }
}
