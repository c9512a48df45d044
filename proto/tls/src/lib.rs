//! Identity plumbing shared by the control plane, the agent and swctl.
//!
//! Everything speaks TLS 1.3 with one crypto provider (ring), and every
//! peer is a certificate signed by the cluster's CA:
//! - [`certificate`] reads what a certificate says (subject, serial,
//!   lifetime) and the CA pin (`sha256:` of its SubjectPublicKeyInfo);
//! - [`csr`] makes a key pair and a certificate signing request;
//! - [`client`] dials `https://`, `unix://` (TLS) and `http://` (plaintext,
//!   for `--insecure` servers) into a tonic `Channel`, trusting either the
//!   CA or a pin of it ([`pin`]) for a host that has nothing else yet;
//! - [`server`] accepts TLS with an optional client certificate and says,
//!   once per connection, whether that certificate is the CA's;
//! - [`credentials`] reads and writes swctl's kubeconfig-shaped file.
#![forbid(unsafe_code)]

pub mod certificate;
pub mod client;
pub mod credentials;
pub mod csr;
mod error;
pub mod pem;
pub mod pin;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use error::{Result, TlsError};

/// The one crypto provider of the workspace, passed explicitly so that no
/// process-wide default has to be installed (or can be the wrong one).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Only TLS 1.3 is offered or accepted.
pub(crate) static PROTOCOLS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// gRPC runs on HTTP/2.
pub(crate) fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec()]
}

/// Servers also speak HTTP/1.1: the Kubernetes API beside gRPC serves
/// clients that upgrade connections (port-forward) or know no HTTP/2.
pub(crate) fn server_alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// An error and its causes, one after another: tonic and rustls keep what
/// went wrong (refused, unknown CA, closed) in the sources.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
