//! Joining: a host with a bootstrap token and the CA's pin, but no
//! certificate yet, makes its own key, checks that the server's CA is the
//! pinned one, and trades the token and a CSR for a node certificate.

use std::time::Duration;

use switchyard_api::v1::identity_client::IdentityClient;
use switchyard_api::v1::JoinRequest;
use switchyard_tls::certificate::ca_cert_hash;
use switchyard_tls::client::{Target, Trust};
use switchyard_tls::pin::PinnedCa;
use switchyard_tls::TlsError;
use tonic::Code;

use super::state::{NodeCredentials, StateError};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The server said no; its message reads `join refused: <why>`.
    #[error("{0}")]
    Refused(String),
    #[error("the control plane's CA ({seen}) does not match --ca-cert-hash {pinned}")]
    CaMismatch { pinned: String, seen: String },
    #[error("--ca-cert-hash must be sha256:<64 hex digits>, got {0:?}")]
    BadPin(String),
    #[error("joining needs TLS: give an https:// or unix:// --control-plane")]
    Plaintext,
    #[error("cannot reach the control plane at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the join failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    State(#[from] StateError),
}

fn valid_pin(pin: &str) -> bool {
    pin.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Joins the cluster as `node`; the credentials are returned, not stored.
pub async fn join(
    target: &Target,
    token: &str,
    pin: &str,
    node: &str,
) -> Result<NodeCredentials, JoinError> {
    if target.is_plaintext() {
        return Err(JoinError::Plaintext);
    }
    let pin = pin.trim().to_ascii_lowercase();
    if !valid_pin(&pin) {
        return Err(JoinError::BadPin(pin));
    }
    let key = switchyard_tls::csr::generate(&format!("node:{node}"))?;
    let pinned = PinnedCa::new(&pin);
    let config = switchyard_tls::client::config(Trust::Pinned(pinned.clone()), None)?;
    let deadline = target.dial_deadline().max(Duration::from_secs(5));
    let endpoint = target.endpoint()?.connect_timeout(deadline);
    let unreachable = |detail: String| {
        let seen = pinned.seen();
        match seen.mismatched.first() {
            Some(other) if seen.ca.is_none() => JoinError::CaMismatch {
                pinned: pin.clone(),
                seen: other.clone(),
            },
            _ => JoinError::Unreachable {
                url: target.urls(),
                detail,
            },
        }
    };
    let channel = endpoint
        .connect_with_connector(target.connector(Some(config))?)
        .await
        .map_err(|e| unreachable(switchyard_tls::error_chain(&e)))?;
    let request = JoinRequest {
        token: token.trim().to_string(),
        node_name: node.to_string(),
        csr_pem: key.csr_pem,
    };
    let issued = IdentityClient::new(channel)
        .join(request)
        .await
        .map_err(|status| match status.code() {
            Code::PermissionDenied => JoinError::Refused(status.message().to_string()),
            Code::Unavailable | Code::Unknown => unreachable(status.message().to_string()),
            _ => JoinError::Failed(status.message().to_string()),
        })?
        .into_inner();
    // The CA handed over must be the one this host pinned.
    let ca = switchyard_tls::pem::certificate(issued.ca_pem.as_bytes(), "the CA sent")?;
    let seen = ca_cert_hash(&ca)?;
    if seen != pin {
        return Err(JoinError::CaMismatch { pinned: pin, seen });
    }
    Ok(NodeCredentials::new(
        issued.certificate_pem,
        key.key_pem,
        issued.ca_pem,
    )?)
}
