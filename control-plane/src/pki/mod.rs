//! The cluster's PKI, made by the control plane on first start in
//! `<data-dir>/pki/`: a CA (ECDSA P-256, ten years) whose key never leaves
//! that directory, and a serving certificate made afresh at every start
//! (so its names always match the flags). `ca` signs; `serving` makes
//! the listener's certificate.

mod ca;
mod serving;

use std::path::{Path, PathBuf};

pub use ca::{Ca, Issued, Subject, Usage};
pub use serving::{serving_names, serving_tls, HostNames};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("signing: {0}")]
    Sign(#[from] rcgen::Error),
    #[error("{0}")]
    Tls(#[from] switchyard_tls::TlsError),
    #[error("the certificate signing request is invalid: {0}")]
    BadCsr(String),
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> PkiError {
    PkiError::File {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}
