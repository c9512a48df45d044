//! Wiring: open the store, build the registry, serve gRPC until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::api::ResourcesApi;
use crate::registry::{Registry, RegistryConfig, RegistryError};
use crate::store::{SledStore, StoreError};
use switchyard_api::v1::resources_server::ResourcesServer;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub registry: RegistryConfig,
}

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
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound, loaded control plane, ready to serve.
pub struct Server {
    pub registry: Arc<Registry>,
    listener: TcpListener,
}

impl Server {
    pub async fn bind(cfg: ServerConfig) -> Result<Self, ServerError> {
        let store = SledStore::open(&cfg.data_dir).map_err(|source| ServerError::Store {
            dir: cfg.data_dir.clone(),
            source,
        })?;
        let registry = Registry::open(Arc::new(store), cfg.registry).await?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: cfg.listen, source })?;
        Ok(Self { registry, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        tonic::transport::Server::builder()
            .add_service(ResourcesServer::new(ResourcesApi::new(self.registry.clone())))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown)
            .await?;
        Ok(())
    }
}
