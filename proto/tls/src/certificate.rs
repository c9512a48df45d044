//! What a certificate says about its holder, read once with x509-parser.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Result, TlsError};

/// The fields identity and renewal decisions are made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// Lower-case hex without separators.
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CertificateInfo {
    pub fn parse(der: &[u8]) -> Result<Self> {
        let cert = decode(der)?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let organizations = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        Ok(Self {
            common_name,
            organizations,
            serial: cert.serial.to_str_radix(16),
            not_before: at(cert.validity().not_before.timestamp()),
            not_after: at(cert.validity().not_after.timestamp()),
        })
    }

    /// When a holder should renew: at 80% of the lifetime, as kubelet
    /// does (it picks a jittered point in 70-90%).
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + life.mul_f64(0.8)
    }

    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.not_after
    }
}

fn decode(der: &[u8]) -> Result<X509Certificate<'_>> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| TlsError::Certificate(e.to_string()))
}

fn at(unix_seconds: i64) -> SystemTime {
    match u64::try_from(unix_seconds) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

/// The CA pin a joining host checks: `sha256:` and the hex SHA-256 of the
/// CA certificate's SubjectPublicKeyInfo (kubeadm's `--discovery-token-ca-cert-hash`).
pub fn ca_cert_hash(der: &[u8]) -> Result<String> {
    let cert = decode(der)?;
    Ok(format!(
        "sha256:{}",
        hex(&Sha256::digest(cert.public_key().raw))
    ))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, SerialNumber,
    };

    #[test]
    fn reads_subject_serial_and_lifetime() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "node:node-1");
        dn.push(DnType::OrganizationName, "switchyard:nodes");
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&[0x0a, 0xbc]));
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(1_100).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = CertificateInfo::parse(cert.der()).unwrap();
        assert_eq!(info.common_name, "node:node-1");
        assert_eq!(info.organizations, vec!["switchyard:nodes".to_string()]);
        assert_eq!(info.serial, "abc");
        assert_eq!(info.not_before, UNIX_EPOCH + Duration::from_secs(1_000));
        assert_eq!(info.renew_at(), UNIX_EPOCH + Duration::from_secs(1_080));
        assert!(info.is_expired(UNIX_EPOCH + Duration::from_secs(1_100)));
        assert!(!info.is_expired(UNIX_EPOCH + Duration::from_secs(1_099)));
    }

    #[test]
    fn the_pin_is_the_hash_of_the_public_key_info() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::default().self_signed(&key).unwrap();
        let expected = format!(
            "sha256:{}",
            hex(&Sha256::digest(key.subject_public_key_info()))
        );
        assert_eq!(ca_cert_hash(cert.der()).unwrap(), expected);
    }
}
