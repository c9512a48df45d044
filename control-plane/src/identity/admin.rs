//! `<data-dir>/admin.conf`: credentials for the `admin` user, written by
//! the control plane itself (as kubeadm writes its admin.conf), so the
//! first `swctl` works with nothing but read access to the data dir.
//!
//! A file whose certificate still authenticates is kept (only its server
//! address is brought up to date); otherwise a new certificate is issued
//! and the old one stops working. Deleting the file and restarting is how
//! an operator who lost every admin credential gets one back.

use std::path::Path;
use std::time::{Duration, SystemTime};

use switchyard_api::resources::{Kind, Object, User};
use switchyard_tls::certificate::CertificateInfo;
use switchyard_tls::credentials::Credentials;

use crate::auth::Role;
use crate::pki::{Ca, PkiError, Subject, Usage};
use crate::registry::{Registry, RegistryError};

pub const ADMIN_USER: &str = "admin";
const ADMIN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// A certificate closer than this to its end is replaced at start.
const RENEW_WITHIN: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("recording the admin user: {0}")]
    Registry(#[from] RegistryError),
    #[error("writing {0}")]
    Write(#[from] switchyard_tls::TlsError),
}

/// Makes sure `path` holds working admin credentials for `server`. On a
/// store shared with other control planes, an admin certificate that one
/// of them issued is left alone (issuing another would revoke theirs): this
/// control plane then writes no admin.conf and says where to get one.
pub async fn ensure_admin_conf(
    registry: &Registry,
    ca: &Ca,
    path: &Path,
    server: &str,
    shared: bool,
) -> Result<(), AdminError> {
    if let Some(mut creds) = Credentials::read(path)
        .ok()
        .filter(|c| still_good(c, registry, ca))
    {
        if creds.server != server {
            creds.server = server.to_string();
            creds.write(path)?;
        }
        return Ok(());
    }
    if shared && admin_certificate_current(registry) {
        tracing::warn!(path = %path.display(), "the admin user's certificate was issued by another control plane of this store; copy its admin.conf here (docs/ha.md) rather than revoking it with a new one");
        return Ok(());
    }
    let role = Role::Admin;
    let subject = Subject {
        common_name: ADMIN_USER.to_string(),
        organization: role.group(),
    };
    let (issued, key) = ca.issue_with_key(&subject, &Usage::Client, ADMIN_LIFETIME)?;
    let mut user = User::default();
    user.metadata.name = ADMIN_USER.to_string();
    user.spec.role = role.as_str().to_string();
    user.status.certificate = Some(super::record_of(&issued));
    registry.apply(Object::User(Box::new(user)), false).await?;
    Credentials {
        server: server.to_string(),
        ca_pem: Some(ca.pem().to_string()),
        user: ADMIN_USER.to_string(),
        client_cert_pem: Some(issued.pem),
        client_key_pem: Some(key.serialize_pem()),
    }
    .write(path)?;
    tracing::info!(path = %path.display(), "wrote admin credentials (swctl --config {})", path.display());
    Ok(())
}

/// Whether the store's admin user holds a certificate far from expiry.
fn admin_certificate_current(registry: &Registry) -> bool {
    let renew_by =
        chrono::Utc::now() + chrono::Duration::from_std(RENEW_WITHIN).unwrap_or_default();
    matches!(
        registry.get(Kind::User, "", ADMIN_USER),
        Ok(Object::User(u)) if u.status.certificate.as_ref().is_some_and(|c| {
            chrono::DateTime::parse_from_rfc3339(&c.not_after).is_ok_and(|t| t > renew_by)
        })
    )
}

/// The file's certificate is this CA's, far from expiry and still the
/// admin user's.
fn still_good(creds: &Credentials, registry: &Registry, ca: &Ca) -> bool {
    if creds.ca_pem.as_deref() != Some(ca.pem()) || !creds.has_client_certificate() {
        return false;
    }
    let Some(info) = creds
        .client_cert_pem
        .as_deref()
        .and_then(|pem| switchyard_tls::pem::certificate(pem.as_bytes(), "admin.conf").ok())
        .and_then(|der| CertificateInfo::parse(&der).ok())
    else {
        return false;
    };
    if info.is_expired(SystemTime::now() + RENEW_WITHIN) {
        return false;
    }
    matches!(
        registry.get(Kind::User, "", ADMIN_USER),
        Ok(Object::User(u)) if u.status.certificate.as_ref().is_some_and(|c| c.serial_number == info.serial)
    )
}
