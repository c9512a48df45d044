//! Serving TLS 1.3 to clients that may or may not hold a certificate.
//!
//! A joining host has none yet, so the handshake accepts a connection
//! without one (it still proves possession of any key it presents); the
//! certificate is then checked against the CA once, right after the
//! handshake, and the verdict travels with the connection as a [`Peer`].
//! Every call but the join refuses a peer that is not `Certified`.

use std::io;
use std::sync::Arc;

use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::certificate::CertificateInfo;
use crate::Result;

/// Who is on the other end of a connection, as its certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No client certificate.
    Anonymous,
    /// A certificate the cluster CA signed, valid at the handshake.
    Certified(CertificateInfo),
    /// A certificate that is not the CA's, or not valid: why.
    Refused(String),
}

#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    strict: Arc<dyn ClientCertVerifier>,
}

impl ServerTls {
    /// `chain` is the serving certificate followed by the CA, so a joining
    /// host can find the CA it pinned.
    pub fn new(
        ca: CertificateDer<'static>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self> {
        let provider = crate::provider();
        let mut roots = RootCertStore::empty();
        roots.add(ca)?;
        let strict = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()?;
        let lenient = Arc::new(Lenient {
            strict: strict.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(crate::PROTOCOLS)?
            .with_client_cert_verifier(lenient)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = crate::server_alpn();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            strict,
        })
    }

    /// Runs the handshake and judges the client's certificate.
    pub async fn accept<IO>(&self, io: IO) -> io::Result<(TlsStream<IO>, Peer)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self.acceptor.accept(io).await?;
        let peer = match stream.get_ref().1.peer_certificates() {
            None | Some([]) => Peer::Anonymous,
            Some([leaf, intermediates @ ..]) => self.judge(leaf, intermediates),
        };
        Ok((stream, peer))
    }

    fn judge(&self, leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Peer {
        if let Err(e) = self
            .strict
            .verify_client_cert(leaf, intermediates, UnixTime::now())
        {
            return Peer::Refused(e.to_string());
        }
        match CertificateInfo::parse(leaf) {
            Ok(info) => Peer::Certified(info),
            Err(e) => Peer::Refused(e.to_string()),
        }
    }
}

/// Asks for a client certificate without requiring one, and leaves the
/// chain check to [`ServerTls::judge`]; signatures are still checked, so a
/// client cannot present a certificate whose key it lacks.
#[derive(Debug)]
struct Lenient {
    strict: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for Lenient {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.strict.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.strict.supported_verify_schemes()
    }
}
