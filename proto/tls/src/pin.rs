//! Trusting a CA by its pin, for a host that has nothing else yet (a node
//! joining with a token). The server sends its CA with its certificate;
//! the CA is trusted only if its public key hashes to the pin, and the
//! server's certificate must then verify against it as usual (name and
//! all). The CA seen is kept, so the joining host can store it.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::certificate::ca_cert_hash;

#[derive(Debug)]
pub struct PinnedCa {
    pin: String,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Seen>,
}

/// What the last handshake showed.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The pinned CA, once a server presented it.
    pub ca: Option<CertificateDer<'static>>,
    /// The pins of the certificates a server presented that did not match.
    pub mismatched: Vec<String>,
}

impl PinnedCa {
    /// `pin` is `sha256:<hex>`, compared case-insensitively.
    pub fn new(pin: &str) -> Arc<Self> {
        Arc::new(Self {
            pin: pin.trim().to_ascii_lowercase(),
            provider: crate::provider(),
            seen: Mutex::new(Seen::default()),
        })
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut mismatched = Vec::new();
        let mut ca = None;
        for cert in intermediates {
            match ca_cert_hash(cert) {
                Ok(pin) if pin == self.pin => ca = Some(cert.clone().into_owned()),
                Ok(pin) => mismatched.push(pin),
                Err(_) => {}
            }
        }
        let Some(ca) = ca else {
            self.record(|s| s.mismatched = mismatched);
            return Err(rustls::Error::General(format!(
                "the server's CA does not match --ca-cert-hash {}",
                self.pin
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.record(|s| s.ca = Some(ca));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
