//! Which control plane, and as whom: `--config FILE`, else
//! `$SWITCHYARD_CONFIG`, else `~/.switchyard/config` (a kubeconfig-shaped
//! credentials file); `--server` (or `$SWITCHYARD_SERVER`) overrides its
//! URL. An `http://` server is plaintext, for a control plane started
//! with `--insecure`, and needs no credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use switchyard_tls::client::Target;
use switchyard_tls::credentials::Credentials;

use crate::client::ClientError;

/// Where swctl connects when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:7443";
pub const CONFIG_ENV: &str = "SWITCHYARD_CONFIG";

/// A resolved connection: where, and the TLS to speak (`None`: plaintext).
#[derive(Clone)]
pub struct Login {
    pub target: Target,
    pub tls: Option<Arc<ClientConfig>>,
    pub credentials: Option<Credentials>,
}

fn default_config() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".switchyard").join("config"))
}

/// Reads the credentials file a command uses: an explicit `--config`
/// must exist; the environment's or the default may be absent.
fn credentials(explicit: Option<&Path>) -> Result<Option<Credentials>, ClientError> {
    let config_error = |e: switchyard_tls::TlsError| ClientError::Config(e.to_string());
    if let Some(path) = explicit {
        return Credentials::read(path).map(Some).map_err(config_error);
    }
    let from_env = std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    match from_env.or_else(default_config) {
        Some(path) if path.exists() => Credentials::read(&path).map(Some).map_err(config_error),
        _ => Ok(None),
    }
}

impl Login {
    pub fn resolve(server: Option<&str>, config: Option<&Path>) -> Result<Login, ClientError> {
        let credentials = credentials(config)?;
        let url = server
            .map(str::to_string)
            .or_else(|| {
                credentials
                    .as_ref()
                    .map(|c| c.server.clone())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        // Several control planes of one cluster, comma-separated: each
        // connection tries them in turn.
        let urls: Vec<String> = url.split(',').map(|u| u.trim().to_string()).collect();
        let target = Target::parse_all(&urls).map_err(|e| ClientError::BadAddress {
            server: url.clone(),
            detail: e.to_string(),
        })?;
        let tls = match (&credentials, target.is_plaintext()) {
            (_, true) => None,
            (None, false) => return Err(ClientError::NotLoggedIn),
            (Some(c), false) => Some(
                c.client_config()
                    .map_err(|e| ClientError::Config(e.to_string()))?,
            ),
        };
        Ok(Login {
            target,
            tls,
            credentials,
        })
    }
}
