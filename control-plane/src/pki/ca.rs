//! The cluster CA: loaded from `pki/ca.crt` and `pki/ca.key`, or made
//! there on first start, and the one place certificates are signed.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use switchyard_tls::certificate::{ca_cert_hash, CertificateInfo};

use super::{file_error, PkiError};

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start this much in the past (at most a tenth of their
/// lifetime), so a host whose clock runs a little behind accepts them.
const BACKDATE: Duration = Duration::from_secs(60);

pub struct Ca {
    der: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Whom a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub organization: String,
}

/// What a certificate may be used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    Client,
    /// DNS names and IP addresses the server is reached by.
    Server(Vec<String>),
}

/// A signed certificate and what revocation records of it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub info: CertificateInfo,
}

impl Ca {
    /// Loads the CA from `dir`, or makes one there (keys mode 0600).
    pub fn load_or_create(dir: &Path) -> Result<Ca, PkiError> {
        let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        if cert_path.exists() || key_path.exists() {
            let pem = std::fs::read_to_string(&cert_path).map_err(|e| file_error(&cert_path, e))?;
            let key_pem =
                std::fs::read_to_string(&key_path).map_err(|e| file_error(&key_path, e))?;
            return Self::from_pem(pem, &key_pem).map_err(|e| file_error(&cert_path, e));
        }
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("switchyard-ca", "switchyard");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        let (not_before, not_after) = validity(CA_LIFETIME);
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.self_signed(&key)?;
        switchyard_tls::pem::write_private(&key_path, key.serialize_pem().as_bytes())?;
        switchyard_tls::pem::write_private(&cert_path, cert.pem().as_bytes())?;
        tracing::info!(dir = %dir.display(), pin = %ca_cert_hash(cert.der())?, "created the cluster CA");
        Self::from_pem(cert.pem(), &key.serialize_pem())
    }

    fn from_pem(pem: String, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let der = switchyard_tls::pem::certificate(pem.as_bytes(), CA_CERT)?;
        let issuer = Issuer::from_ca_cert_der(&der, key)?;
        Ok(Ca { der, pem, issuer })
    }

    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// `sha256:<hex>` of the CA's public key, for `--ca-cert-hash`.
    pub fn pin(&self) -> Result<String, PkiError> {
        Ok(ca_cert_hash(&self.der)?)
    }

    /// Signs the public key of a CSR (its self-signature checked first);
    /// everything else in the CSR is ignored: the CA decides who the
    /// certificate names and for how long.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        subject: &Subject,
        usage: &Usage,
        lifetime: Duration,
    ) -> Result<Issued, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        self.sign(&csr.public_key, subject, usage, lifetime)
    }

    /// A certificate and its new key, for what the control plane keeps
    /// itself (its serving certificate, admin.conf).
    pub fn issue_with_key(
        &self,
        subject: &Subject,
        usage: &Usage,
        lifetime: Duration,
    ) -> Result<(Issued, KeyPair), PkiError> {
        let key = KeyPair::generate()?;
        Ok((self.sign(&key, subject, usage, lifetime)?, key))
    }

    fn sign(
        &self,
        public_key: &impl PublicKeyData,
        subject: &Subject,
        usage: &Usage,
        lifetime: Duration,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&subject.common_name, &subject.organization);
        params.serial_number = Some(random_serial());
        let (not_before, not_after) = validity(lifetime);
        params.not_before = not_before;
        params.not_after = not_after;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        match usage {
            Usage::Client => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Server(names) => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.subject_alt_names =
                    names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
            }
        }
        let cert = params.signed_by(public_key, &self.issuer)?;
        let info = CertificateInfo::parse(cert.der())?;
        Ok(Issued {
            der: cert.der().clone(),
            pem: cert.pem(),
            info,
        })
    }
}

fn name(common_name: &str, organization: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, organization);
    dn
}

fn san(name: &str) -> Result<SanType, rcgen::Error> {
    Ok(match name.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(name.to_string().try_into()?),
    })
}

/// 16 random bytes, the top bit clear so the DER integer stays positive.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn validity(lifetime: Duration) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = SystemTime::now();
    let backdate = BACKDATE.min(lifetime / 10);
    (
        time::OffsetDateTime::from(now - backdate),
        time::OffsetDateTime::from(now + lifetime),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn subject() -> Subject {
        Subject {
            common_name: "node:node-1".into(),
            organization: "switchyard:nodes".into(),
        }
    }

    #[test]
    fn is_made_once_and_loaded_after() {
        let dir = tempfile::tempdir().unwrap();
        let first = Ca::load_or_create(dir.path()).unwrap();
        let again = Ca::load_or_create(dir.path()).unwrap();
        assert_eq!(first.der(), again.der());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn signs_the_csr_key_with_its_own_subject_and_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path()).unwrap();
        let csr = switchyard_tls::csr::generate("node:someone-else").unwrap();
        let sign = || {
            ca.sign_csr(
                &csr.csr_pem,
                &subject(),
                &Usage::Client,
                Duration::from_secs(100),
            )
            .unwrap()
        };
        let issued = sign();
        assert_eq!(issued.info.common_name, "node:node-1");
        assert_eq!(
            issued.info.organizations,
            vec!["switchyard:nodes".to_string()]
        );
        let life = issued
            .info
            .not_after
            .duration_since(issued.info.not_before)
            .unwrap();
        assert_eq!(life, Duration::from_secs(110));
        assert_ne!(issued.info.serial, sign().info.serial);
    }

    #[test]
    fn refuses_a_csr_that_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path()).unwrap();
        let err = ca
            .sign_csr("hello", &subject(), &Usage::Client, Duration::from_secs(1))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the certificate signing request is invalid"),
            "{err}"
        );
    }
}
