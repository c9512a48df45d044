use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: no PEM {expected} found")]
    NoPem {
        what: String,
        expected: &'static str,
    },
    #[error("{what}: {detail}")]
    BadPem { what: String, detail: String },
    #[error("reading a certificate: {0}")]
    Certificate(String),
    #[error("making a key or CSR: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("building the TLS verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("invalid address {url:?}: {detail}")]
    Address { url: String, detail: String },
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("credentials: {0}")]
    Credentials(String),
}

pub type Result<T, E = TlsError> = std::result::Result<T, E>;
