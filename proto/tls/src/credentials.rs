//! swctl's credentials file: a kubeconfig (`clusters`, `users`,
//! `contexts`, `current-context`), so anyone who has read one can read
//! this, and the PEM travels base64-encoded in `*-data` fields exactly as
//! kubeadm's admin.conf carries it. File references
//! (`certificate-authority`, `client-certificate`, `client-key`) work too,
//! relative to the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rustls::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::client::{ClientIdentity, Trust};
use crate::{Result, TlsError};

/// The cluster name written into files this crate makes.
pub const CLUSTER_NAME: &str = "switchyard";

/// One server and one identity: what a command needs to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub server: String,
    pub ca_pem: Option<String>,
    pub user: String,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeConfig {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    current_context: String,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct NamedCluster {
    name: String,
    #[serde(default)]
    cluster: Cluster,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    #[serde(default)]
    server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate_authority_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate_authority: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct NamedContext {
    name: String,
    #[serde(default)]
    context: Context,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Context {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    user: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_certificate_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_certificate: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_key: Option<PathBuf>,
}

fn bad(detail: impl Into<String>) -> TlsError {
    TlsError::Credentials(detail.into())
}

/// A `*-data` field, else the file it names.
fn pem_of(
    data: &Option<String>,
    file: &Option<PathBuf>,
    base: &Path,
    field: &str,
) -> Result<Option<String>> {
    if let Some(data) = data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| bad(format!("{field}-data: not base64: {e}")))?;
        let text =
            String::from_utf8(bytes).map_err(|_| bad(format!("{field}-data: not PEM text")))?;
        return Ok(Some(text));
    }
    match file {
        Some(path) => {
            let path = base.join(path);
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|e| TlsError::File {
                    path,
                    detail: format!("reading {field}: {e}"),
                })
        }
        None => Ok(None),
    }
}

fn encode(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

impl Credentials {
    /// Reads a credentials file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TlsError::File {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_yaml(&text, base).map_err(|e| TlsError::File {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Picks the current context (else the only one, else the first
    /// cluster and user) and resolves it.
    pub fn from_yaml(text: &str, base: &Path) -> Result<Self> {
        let config: KubeConfig =
            serde_saphyr::from_str(text).map_err(|e| bad(format!("not a kubeconfig: {e}")))?;
        let context = config
            .contexts
            .iter()
            .find(|c| c.name == config.current_context)
            .or_else(|| (config.contexts.len() == 1).then(|| &config.contexts[0]))
            .map(|c| &c.context);
        let cluster = match context {
            Some(c) => config.clusters.iter().find(|n| n.name == c.cluster),
            None => config.clusters.first(),
        }
        .ok_or_else(|| bad("no cluster for the current context"))?;
        let user = match context {
            Some(c) => config.users.iter().find(|n| n.name == c.user),
            None => config.users.first(),
        };
        let (user_name, user) = match user {
            Some(u) => (u.name.clone(), &u.user),
            None => (String::new(), &User::default()),
        };
        let c = &cluster.cluster;
        Ok(Self {
            server: c.server.clone(),
            ca_pem: pem_of(
                &c.certificate_authority_data,
                &c.certificate_authority,
                base,
                "certificate-authority",
            )?,
            user: user_name,
            client_cert_pem: pem_of(
                &user.client_certificate_data,
                &user.client_certificate,
                base,
                "client-certificate",
            )?,
            client_key_pem: pem_of(&user.client_key_data, &user.client_key, base, "client-key")?,
        })
    }

    pub fn to_yaml(&self) -> Result<String> {
        let context = format!("{}@{CLUSTER_NAME}", self.user);
        let config = KubeConfig {
            api_version: "v1".to_string(),
            kind: "Config".to_string(),
            clusters: vec![NamedCluster {
                name: CLUSTER_NAME.to_string(),
                cluster: Cluster {
                    server: self.server.clone(),
                    certificate_authority_data: self.ca_pem.as_deref().map(encode),
                    certificate_authority: None,
                },
            }],
            contexts: vec![NamedContext {
                name: context.clone(),
                context: Context {
                    cluster: CLUSTER_NAME.to_string(),
                    user: self.user.clone(),
                },
            }],
            current_context: context,
            users: vec![NamedUser {
                name: self.user.clone(),
                user: User {
                    client_certificate_data: self.client_cert_pem.as_deref().map(encode),
                    client_key_data: self.client_key_pem.as_deref().map(encode),
                    ..User::default()
                },
            }],
        };
        serde_saphyr::to_string(&config).map_err(|e| bad(e.to_string()))
    }

    /// Writes the file readable by its owner only: it holds a private key.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::pem::write_private(path, self.to_yaml()?.as_bytes())
    }

    /// Whether this names a client certificate to log in with.
    pub fn has_client_certificate(&self) -> bool {
        self.client_cert_pem.is_some() && self.client_key_pem.is_some()
    }

    /// The TLS client configuration these credentials make.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let ca = self
            .ca_pem
            .as_deref()
            .ok_or_else(|| bad("no certificate-authority-data to check the server with"))?;
        let ca = crate::pem::certificate(ca.as_bytes(), "certificate-authority-data")?;
        let identity = match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(cert), Some(key)) => Some(ClientIdentity::from_pem(cert, key, "client")?),
            _ => None,
        };
        crate::client::config(Trust::Ca(ca), identity)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            server: "https://10.0.0.1:7443".into(),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n".into()),
            user: "alice".into(),
            client_cert_pem: Some("cert".into()),
            client_key_pem: Some("key".into()),
        }
    }

    #[test]
    fn round_trips_through_a_kubeconfig() {
        let yaml = sample().to_yaml().unwrap();
        assert!(yaml.contains("current-context: alice@switchyard"), "{yaml}");
        assert!(yaml.contains("client-key-data: a2V5"), "{yaml}");
        assert_eq!(
            Credentials::from_yaml(&yaml, Path::new(".")).unwrap(),
            sample()
        );
    }

    #[test]
    fn reads_file_references_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "CA").unwrap();
        std::fs::write(dir.path().join("me.crt"), "CERT").unwrap();
        std::fs::write(dir.path().join("me.key"), "KEY").unwrap();
        let yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://h:1\n    certificate-authority: ca.crt\nusers:\n- name: me\n  user:\n    client-certificate: me.crt\n    client-key: me.key\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: me\ncurrent-context: x\n";
        let path = dir.path().join("config");
        std::fs::write(&path, yaml).unwrap();
        let c = Credentials::read(&path).unwrap();
        assert_eq!(
            (c.server.as_str(), c.ca_pem.as_deref(), c.user.as_str()),
            ("https://h:1", Some("CA"), "me")
        );
        assert_eq!(
            (c.client_cert_pem.as_deref(), c.client_key_pem.as_deref()),
            (Some("CERT"), Some("KEY"))
        );
    }

    #[test]
    fn written_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.conf");
        sample().write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Credentials::read(&path).unwrap(), sample());
    }
}
