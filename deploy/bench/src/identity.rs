//! Who the suite is to a control plane, as in a real cluster: the admin of
//! the `admin.conf` the control plane writes, and nodes, which join with
//! one reusable token exactly as agents do (a CSR each, a node certificate
//! each). A plaintext control plane (`--insecure`, for the TLS-cost rows)
//! needs neither.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls::ClientConfig;
use switchyard_api::v1::identity_client::IdentityClient;
use switchyard_api::v1::CreateTokenRequest;
use switchyard_tls::client::Target;
use switchyard_tls::credentials::Credentials;
use tonic::transport::Channel;

pub struct Identities {
    target: Target,
    admin: Option<Arc<ClientConfig>>,
    /// `(token, pin)` nodes join with.
    join: Option<(String, String)>,
    nodes: tokio::sync::Mutex<HashMap<String, Channel>>,
}

impl Identities {
    /// Connects as admin and makes the join token; fails until the control
    /// plane serves.
    pub async fn open(url: &str, data_dir: &Path) -> anyhow::Result<Arc<Identities>> {
        let target = Target::parse(url)?;
        let mut ids = Identities {
            target,
            admin: None,
            join: None,
            nodes: Default::default(),
        };
        if ids.target.is_plaintext() {
            return Ok(Arc::new(ids));
        }
        let creds = Credentials::read(&data_dir.join("admin.conf"))?;
        ids.admin = Some(creds.client_config()?);
        let created = IdentityClient::new(ids.admin().await?)
            .create_token(CreateTokenRequest {
                reusable: true,
                ttl_seconds: 7 * 24 * 3600,
                ..Default::default()
            })
            .await?
            .into_inner();
        ids.join = Some((created.token, created.ca_cert_hash));
        Ok(Arc::new(ids))
    }

    /// A connected channel as admin.
    pub async fn admin(&self) -> anyhow::Result<Channel> {
        let endpoint = self.target.endpoint()?.tcp_nodelay(true);
        let connector = self.target.connector(self.admin.clone())?;
        endpoint
            .connect_with_connector(connector)
            .await
            .with_context(|| format!("connecting to {}", self.target.url()))
    }

    /// A lazily connected channel of its own as node `name`, joining the
    /// first time the name is asked for.
    pub async fn node(&self, name: &str) -> anyhow::Result<Channel> {
        let mut nodes = self.nodes.lock().await;
        if let Some(channel) = nodes.get(name) {
            return Ok(channel.clone());
        }
        let tls = match &self.join {
            None => None,
            Some((token, pin)) => {
                let creds = switchyard_agent::identity::join(&self.target, token, pin, name)
                    .await
                    .map_err(|e| anyhow!("joining as {name}: {e}"))?;
                Some(creds.client_config()?)
            }
        };
        let endpoint = self.target.endpoint()?.tcp_nodelay(true);
        let channel = self.target.lazy_channel(endpoint, tls)?;
        nodes.insert(name.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Joins every node the fixture's pods are bound to, whose readiness
    /// the benchmarks report.
    pub async fn join_fixture_nodes(&self) -> anyhow::Result<()> {
        for n in 0..crate::fixture::NODES {
            self.node(&crate::fixture::node_name(n, 0)).await?;
        }
        Ok(())
    }

    /// The flags a real agent joins with (it keeps its certificate in the
    /// `--state-dir` it is also given), or `--insecure`.
    pub fn agent_flags(&self) -> Vec<String> {
        match &self.join {
            None => vec!["--insecure".to_owned()],
            Some((token, pin)) => vec![
                "--join-token".to_owned(),
                token.clone(),
                "--ca-cert-hash".to_owned(),
                pin.clone(),
            ],
        }
    }
}
