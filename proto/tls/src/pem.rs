//! PEM in and out. `what` names the file or field in errors, so a bad
//! credentials file says which of its parts is broken.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Result, TlsError};

/// Every certificate in `pem`, in order (a chain: leaf first).
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what: what.to_string(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The first certificate in `pem`.
pub fn certificate(pem: &[u8], what: &str) -> Result<CertificateDer<'static>> {
    let mut certs = certificates(pem, what)?;
    Ok(certs.swap_remove(0))
}

pub fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            what: what.to_string(),
            expected: "PRIVATE KEY",
        },
        e => TlsError::BadPem {
            what: what.to_string(),
            detail: e.to_string(),
        },
    })
}

/// A DER certificate as PEM.
pub fn encode_certificate(der: &[u8]) -> String {
    encode("CERTIFICATE", der)
}

/// A private key as PEM, under the label of its format.
pub fn encode_private_key(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    encode(label, key.secret_der())
}

fn encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a file only its owner can read (keys, credentials), replacing
/// any old one in one step so a reader never sees half a key.
pub fn write_private(path: &std::path::Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |detail: String| TlsError::File {
        path: path.to_path_buf(),
        detail,
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(format!("creating {}: {e}", tmp.display())))?;
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .map_err(|e| err(format!("writing: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| err(format!("replacing: {e}")))
}
