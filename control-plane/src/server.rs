//! Wiring: open the store, build the registry, serve gRPC until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::ResourcesApi;
use crate::listener;
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryConfig, RegistryError};
use crate::store::{SledStore, StoreError};
use crate::sync::session::SyncContext;
use crate::sync::{NodeTable, SnapshotCache, SyncApi};
use switchyard_api::v1::agent_sync_server::AgentSyncServer;
use switchyard_api::v1::resources_server::ResourcesServer;
use switchyard_api::v1::ClusterConfig;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub registry: RegistryConfig,
    pub cluster_domain: String,
    pub cluster_dns: std::net::Ipv4Addr,
    /// Also serve on this Unix socket (for agents in other network namespaces).
    pub listen_unix: Option<PathBuf>,
}

/// Pushes can carry every Service in the cluster.
const MAX_MESSAGE_BYTES: usize = 512 * 1024 * 1024;

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
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound, loaded control plane, ready to serve.
pub struct Server {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    sync: Arc<SyncContext>,
    stop: tokio::sync::watch::Sender<bool>,
    listener: TcpListener,
    unix: Option<tokio::net::UnixListener>,
}

impl Server {
    pub async fn bind(cfg: ServerConfig) -> Result<Self, ServerError> {
        let store = SledStore::open(&cfg.data_dir).map_err(|source| ServerError::Store {
            dir: cfg.data_dir.clone(),
            source,
        })?;
        let metrics = Metrics::new();
        let registry = Registry::open(Arc::new(store), cfg.registry, metrics.clone()).await?;
        let cluster = ClusterConfig {
            cluster_domain: cfg.cluster_domain.clone(),
            cluster_dns: cfg.cluster_dns.to_string(),
        };
        let cache = SnapshotCache::start(registry.clone(), cluster, metrics.clone()).await;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let sync = Arc::new(SyncContext {
            stopping,
            registry: registry.clone(),
            cache,
            nodes: Arc::new(NodeTable::default()),
            metrics: metrics.clone(),
        });
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
        Ok(Self {
            registry,
            metrics,
            sync,
            stop,
            listener,
            unix,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let stop = self.stop;
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let resources = ResourcesApi::new(self.registry.clone(), self.sync.clone());
        tonic::transport::Server::builder()
            .layer(crate::api::observe::ObserveLayer::new(self.metrics.clone()))
            .add_service(
                ResourcesServer::new(resources)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                AgentSyncServer::new(SyncApi::new(self.sync.clone()))
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(crate::tunnel::server(self.registry.clone()))
            .serve_with_incoming_shutdown(listener::incoming(self.listener, self.unix), shutdown)
            .await?;
        Ok(())
    }
}
