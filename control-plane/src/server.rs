//! Wiring: open the store, build the registry and the PKI, serve gRPC
//! until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchyard_tls::server::ServerTls;
use tokio::net::TcpListener;

use crate::api::ResourcesApi;
use crate::auth::{Access, Audit, AuthLayer, Authenticator};
use crate::connections;
use crate::ha;
use crate::health::Health;
use crate::identity::admin::{ensure_admin_conf, AdminError};
use crate::identity::service::IdentityConfig;
use crate::identity::IdentityApi;
use crate::listener;
use crate::metrics::Metrics;
use crate::node_lifecycle;
use crate::pki::{self, Ca, PkiError};
use crate::registry::{Registry, RegistryConfig, RegistryError, Sharing};
use crate::rest::Rest;
use crate::store::{EtcdConfig, EtcdStore, SledStore, Store, StoreError};
use crate::sync::encoded::Encodings;
use crate::sync::session::SyncContext;
use crate::sync::{NodeTable, SnapshotCache, SyncApi};
use crate::tunnel::Broker;
use switchyard_api::v1::identity_server::IdentityServer;
use switchyard_api::v1::resources_server::ResourcesServer;
use switchyard_api::v1::ClusterConfig;

/// How the listeners are secured.
#[derive(Debug, Clone)]
pub enum Security {
    /// Mutual TLS 1.3 with the cluster CA in `<data-dir>/pki/`.
    Tls {
        /// Addresses (IPs or DNS names) clients reach this control plane by.
        advertise: Vec<String>,
        /// Lifetime of the node certificates it signs.
        node_cert_ttl: Duration,
    },
    /// `--insecure`: plaintext, and every caller may do everything.
    Insecure,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The PKI, admin.conf and (without `etcd`) the sled store.
    pub data_dir: PathBuf,
    /// Keep the store in etcd rather than sled.
    pub etcd: Option<EtcdConfig>,
    /// This control plane's name among those sharing a store.
    pub name: String,
    pub listen: SocketAddr,
    pub registry: RegistryConfig,
    pub cluster_domain: String,
    pub cluster_dns: std::net::Ipv4Addr,
    /// Also serve on this Unix socket (for agents in other network namespaces).
    pub listen_unix: Option<PathBuf>,
    pub security: Security,
    /// Where audit events go (`--audit-log`); none when unset.
    pub audit_log: Option<PathBuf>,
    /// A node not heard from this long turns NotReady
    /// (`--node-monitor-grace-period`).
    pub node_grace: Duration,
}

/// Pushes can carry every Service in the cluster.
const MAX_MESSAGE_BYTES: usize = 512 * 1024 * 1024;
/// How often `--insecure` says so again.
const INSECURE_REMINDER: Duration = Duration::from_secs(60);
/// How long a graceful shutdown waits for open streams (port-forwarded
/// connections, streams a peer keeps open) before it closes them anyway:
/// under systemd's 15 s stop timeout, and within the 5 s operators expect.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);
/// HTTP/2 ping interval, and how long a ping may go unanswered.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(5);

const INSECURE_WARNING: &str = "--insecure: TLS and authentication are OFF; anyone who reaches this control plane can change every Service, forward into any pod and pose as any node";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("opening the store in {dir}: {source}")]
    Store {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("loading the registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("binding {path}: {source}")]
    BindUnix {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cluster PKI: {0}")]
    Pki(#[from] PkiError),
    #[error("the admin credentials: {0}")]
    Admin(#[from] AdminError),
    #[error("opening the audit log {path}: {source}")]
    Audit {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another control plane named \"{name}\" is running at {address}; give this one a different --name")]
    NameTaken { name: String, address: String },
    #[error("reading the other control planes' records: {0}")]
    Members(#[source] StoreError),
}

/// What TLS mode adds: the serving configuration and the identity service.
struct Secure {
    tls: ServerTls,
    identity: IdentityApi,
    /// How this control plane identifies itself to the others.
    peer_tls: Arc<rustls::ClientConfig>,
}

/// A bound, loaded control plane, ready to serve.
pub struct Server {
    pub registry: Arc<Registry>,
    directory: Arc<ha::Directory>,
    broker: Arc<Broker>,
    peers: Arc<ha::Peers>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    sync: Arc<SyncContext>,
    access: Arc<Access>,
    auth: Arc<Authenticator>,
    secure: Option<Secure>,
    stop: tokio::sync::watch::Sender<bool>,
    listener: TcpListener,
    unix: Option<tokio::net::UnixListener>,
}

/// `https://` URLs for these hosts on `port`.
fn urls(hosts: &[String], port: u16) -> Vec<String> {
    hosts
        .iter()
        .map(|h| match h.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("https://[{h}]:{port}"),
            Err(_) => format!("https://{h}:{port}"),
        })
        .collect()
}

impl Server {
    pub async fn bind(cfg: ServerConfig) -> Result<Self, ServerError> {
        let store: Arc<dyn Store> = match &cfg.etcd {
            Some(etcd) => Arc::new(EtcdStore::open(etcd).map_err(|source| ServerError::Store {
                dir: etcd.endpoints.join(",").into(),
                source,
            })?),
            None => {
                Arc::new(
                    SledStore::open(&cfg.data_dir).map_err(|source| ServerError::Store {
                        dir: cfg.data_dir.clone(),
                        source,
                    })?,
                )
            }
        };
        let metrics = Metrics::new();
        let coordination = store.clone().coordination();
        let sharing = match coordination {
            Some(_) => Sharing::Shared,
            None => Sharing::Alone,
        };
        let registry =
            Registry::open(store, cfg.registry.clone(), metrics.clone(), sharing).await?;
        let heartbeat = node_lifecycle::heartbeat_interval(cfg.node_grace);
        let cluster = ClusterConfig {
            cluster_domain: cfg.cluster_domain.clone(),
            cluster_dns: cfg.cluster_dns.to_string(),
            heartbeat_interval_ms: u32::try_from(heartbeat.as_millis()).unwrap_or(u32::MAX),
        };
        let cache = SnapshotCache::start(registry.clone(), cluster, metrics.clone()).await;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let sync = Arc::new(SyncContext {
            stopping,
            registry: registry.clone(),
            cache,
            encodings: Encodings::default(),
            nodes: Arc::new(NodeTable::default()),
            metrics: metrics.clone(),
            node_grace: cfg.node_grace,
        });
        tokio::spawn(node_lifecycle::run(
            Arc::downgrade(&registry),
            sync.nodes.clone(),
            metrics.clone(),
            cfg.node_grace,
            sync.stopping.clone(),
        ));
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let unix = cfg
            .listen_unix
            .as_deref()
            .map(listener::bind_unix)
            .transpose()
            .map_err(|source| ServerError::BindUnix {
                path: cfg.listen_unix.clone().unwrap_or_default(),
                source,
            })?;
        let audit = match &cfg.audit_log {
            Some(path) => Audit::open(path).map_err(|source| ServerError::Audit {
                path: path.clone(),
                source,
            })?,
            None => Audit::disabled(),
        };
        let access = Access::new(audit);
        let insecure = matches!(cfg.security, Security::Insecure);
        let auth = Authenticator::new(registry.clone(), insecure);
        let bound = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let address = announced_address(&cfg, bound);
        if let Some(coord) = &coordination {
            let holder = ha::name_holder(coord.as_ref(), &cfg.name, &address)
                .await
                .map_err(ServerError::Members)?;
            if let Some(other) = holder {
                return Err(ServerError::NameTaken {
                    name: cfg.name.clone(),
                    address: other.address,
                });
            }
        }
        let secure = match &cfg.security {
            Security::Insecure => None,
            Security::Tls {
                advertise,
                node_cert_ttl,
            } => Some(secure(&cfg, &registry, &access, bound, advertise, *node_cert_ttl).await?),
        };
        let health = Health::new(registry.clone(), sync.stopping.clone());
        let broker = Arc::new(Broker::default());
        let peers = ha::Peers::new(secure.as_ref().map(|s| s.peer_tls.clone()));
        let me = announcement(&cfg, address, &sync, &broker, &peers);
        let directory = Arc::new(ha::Directory::new(coordination.clone(), me.clone()));
        if let Some(coord) = coordination {
            tokio::spawn(ha::run(
                coord,
                Arc::downgrade(&registry),
                me,
                sync.stopping.clone(),
            ));
        }
        Ok(Self {
            directory,
            broker,
            peers,
            registry,
            metrics,
            health,
            sync,
            access,
            auth,
            secure,
            stop,
            listener,
            unix,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves; then stops accepting, ends every
    /// long-lived stream (agents reconnect to the next control plane by
    /// themselves), and returns once the rest finished or after
    /// [`SHUTDOWN_GRACE`], whichever comes first. A write in flight is one
    /// store transaction: committed whole or not at all.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let stop = self.stop;
        let mut stopped = stop.subscribe();
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let grace_over = async move {
            let _ = stopped.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let resources = Arc::new(ResourcesApi::new(
            self.registry.clone(),
            self.sync.clone(),
            self.access.clone(),
            self.directory.clone(),
        ));
        let (port_forward, tunnel, forwarding) = crate::tunnel::servers(
            self.registry.clone(),
            self.access.clone(),
            self.sync.stopping.clone(),
            self.broker.clone(),
            self.peers.clone(),
        );
        let (tls, identity) = match self.secure {
            Some(Secure { tls, identity, .. }) => (Some(tls), Some(IdentityServer::new(identity))),
            None => {
                tokio::spawn(remind_insecure(self.sync.stopping.clone()));
                (None, None)
            }
        };
        tokio::spawn(crate::identity::sweep_expired_tokens(Arc::downgrade(
            &self.registry,
        )));
        let rest = Rest::new(
            resources.clone(),
            forwarding,
            self.registry.clone(),
            self.sync.stopping.clone(),
        );
        let mut grpc = tonic::service::Routes::builder();
        grpc.add_service(
            ResourcesServer::from_arc(resources)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(SyncApi::new(
            self.sync.clone(),
            self.access.clone(),
            MAX_MESSAGE_BYTES,
        ))
        .add_service(port_forward)
        .add_service(tunnel);
        if let Some(identity) = identity {
            grpc.add_service(identity);
        }
        // gRPC by its service paths; everything else is the Kubernetes API.
        let routes = grpc
            .routes()
            .into_axum_router()
            .fallback_service(rest.router(self.health.clone()));
        let service = tower::ServiceBuilder::new()
            .layer(crate::api::observe::ObserveLayer::new(self.metrics.clone()))
            .layer(AuthLayer::new(self.auth.clone()))
            .service(tonic::service::Routes::from(routes));
        // A peer that went silent (a partition, a host that lost power) is
        // dropped within KEEPALIVE * 2: its node shows DISCONNECTED.
        let keepalive = connections::Keepalive {
            interval: KEEPALIVE,
        };
        let serving = connections::serve(
            listener::incoming(self.listener, self.unix, tls),
            service,
            keepalive,
            shutdown,
        );
        // The listener is bound and accepting: calls succeed from here on.
        self.health.serving();
        tokio::select! {
            () = serving => {}
            _ = grace_over => tracing::warn!(grace = ?SHUTDOWN_GRACE, "streams still open at shutdown; closing them"),
        }
        Ok(())
    }
}

/// How this control plane names itself to the others: the first address it
/// advertises, else the one it listens on.
fn announced_address(cfg: &ServerConfig, bound: SocketAddr) -> String {
    match &cfg.security {
        Security::Tls { advertise, .. } if !advertise.is_empty() => urls(advertise, bound.port())
            .into_iter()
            .next()
            .unwrap_or_default(),
        Security::Tls { .. } => format!("https://{bound}"),
        Security::Insecure => format!("http://{bound}"),
    }
}

fn announcement(
    cfg: &ServerConfig,
    address: String,
    sync: &Arc<SyncContext>,
    broker: &Arc<Broker>,
    peers: &Arc<ha::Peers>,
) -> ha::Announcement {
    let (nodes, cache, broker) = (sync.nodes.clone(), sync.cache.clone(), broker.clone());
    let learning = sync.nodes.clone();
    ha::Announcement {
        name: cfg.name.clone(),
        address,
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        agents: Arc::new(move || ha::Agents {
            nodes: nodes.reports(cache.version()),
            tunnels: broker.connected_nodes(),
        }),
        learn: Arc::new(move |others| learning.learn(others)),
        peers: peers.clone(),
    }
}

/// The CA, the serving certificate and admin.conf, made or loaded.
async fn secure(
    cfg: &ServerConfig,
    registry: &Arc<Registry>,
    access: &Arc<Access>,
    bound: SocketAddr,
    advertise: &[String],
    node_cert_ttl: Duration,
) -> Result<Secure, ServerError> {
    let pki_dir = cfg.data_dir.join("pki");
    let ca = Arc::new(Ca::load_or_create(&pki_dir)?);
    let names = pki::serving_names(bound, advertise, &pki::HostNames::of_this_host());
    let tls = pki::serving_tls(&ca, &pki_dir, &names)?;
    let mut hosts = advertise.to_vec();
    if !bound.ip().is_unspecified() {
        hosts.push(bound.ip().to_string());
    }
    // What join commands and credentials files name: the advertised
    // addresses, else a specific listen address; for a wildcard listener
    // without one, swctl falls back to the address it used itself.
    let server_urls = urls(&hosts, bound.port());
    let admin_server = server_urls
        .first()
        .cloned()
        .unwrap_or_else(|| format!("https://127.0.0.1:{}", bound.port()));
    ensure_admin_conf(
        registry,
        &ca,
        &cfg.data_dir.join("admin.conf"),
        &admin_server,
        cfg.etcd.is_some(),
    )
    .await?;
    let ca_for_peers = ca.clone();
    let identity = IdentityApi::new(
        registry.clone(),
        ca,
        access.clone(),
        IdentityConfig {
            node_cert_ttl,
            server_urls,
        },
    );
    let peer_tls = crate::identity::peer::client_config(&ca_for_peers, &cfg.name)?;
    Ok(Secure {
        tls,
        identity,
        peer_tls,
    })
}

async fn remind_insecure(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(INSECURE_REMINDER);
    loop {
        tokio::select! {
            _ = tick.tick() => tracing::warn!("{INSECURE_WARNING}"),
            _ = stopping.changed() => return,
        }
    }
}
