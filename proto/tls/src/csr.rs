//! A fresh key pair and a certificate signing request: what a joining
//! node, a renewing node and `swctl create user` send. The key never
//! leaves the host that made it.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::Result;

pub struct KeyAndCsr {
    pub key_pem: String,
    pub csr_pem: String,
}

/// An ECDSA P-256 key and a CSR naming `common_name`. The CA decides the
/// certificate's real subject; the name only tells a reader what was asked.
pub fn generate(common_name: &str) -> Result<KeyAndCsr> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}
