//! The node's credentials on disk, in the state directory: `node.pem`
//! (the certificate, then its key; mode 0600) and `ca.crt`. Certificate
//! and key share one file, as kubelet's `kubelet-client-current.pem` does,
//! so replacing them is one rename and never leaves one without the other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use switchyard_tls::certificate::CertificateInfo;
use switchyard_tls::client::{ClientIdentity, Trust};
use switchyard_tls::TlsError;

const BUNDLE: &str = "node.pem";
const CA: &str = "ca.crt";

#[derive(Debug, Clone)]
pub struct NodeCredentials {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
    pub info: CertificateInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

fn read(dir: &Path, name: &str) -> Result<Option<String>, StateError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

impl NodeCredentials {
    pub fn new(cert_pem: String, key_pem: String, ca_pem: String) -> Result<Self, StateError> {
        let der = switchyard_tls::pem::certificate(cert_pem.as_bytes(), BUNDLE)?;
        let info = CertificateInfo::parse(&der)?;
        Ok(Self {
            cert_pem,
            key_pem,
            ca_pem,
            info,
        })
    }

    /// The credentials in `dir`, if a certificate was stored there.
    pub fn load(dir: &Path) -> Result<Option<Self>, StateError> {
        let (Some(bundle), Some(ca)) = (read(dir, BUNDLE)?, read(dir, CA)?) else {
            return Ok(None);
        };
        let certs = switchyard_tls::pem::certificates(bundle.as_bytes(), BUNDLE)?;
        let cert_pem: String = certs
            .iter()
            .map(|c| switchyard_tls::pem::encode_certificate(c))
            .collect();
        let key = switchyard_tls::pem::private_key(bundle.as_bytes(), BUNDLE)?;
        let key_pem = switchyard_tls::pem::encode_private_key(&key);
        Self::new(cert_pem, key_pem, ca).map(Some)
    }

    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        switchyard_tls::pem::write_private(&dir.join(CA), self.ca_pem.as_bytes())?;
        let bundle = format!("{}{}", self.cert_pem, self.key_pem);
        switchyard_tls::pem::write_private(&dir.join(BUNDLE), bundle.as_bytes())?;
        Ok(())
    }

    /// The node this certificate names.
    pub fn node_name(&self) -> Option<&str> {
        self.info.common_name.strip_prefix("node:")
    }

    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let ca = switchyard_tls::pem::certificate(self.ca_pem.as_bytes(), CA)?;
        let id = ClientIdentity::from_pem(&self.cert_pem, &self.key_pem, "node")?;
        switchyard_tls::client::config(Trust::Ca(ca), Some(id))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saved_credentials_load_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(NodeCredentials::load(dir.path()).unwrap().is_none());
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "node:node-1");
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).unwrap();
        let creds = NodeCredentials::new(cert.pem(), key.serialize_pem(), cert.pem()).unwrap();
        creds.save(dir.path()).unwrap();
        let loaded = NodeCredentials::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.node_name(), Some("node-1"));
        assert_eq!(loaded.info, creds.info);
        assert!(loaded.client_config().is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(BUNDLE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
