//! Dialling the control plane. `https://HOST:PORT` and `unix:///PATH`
//! speak TLS 1.3 (a socket's server name is `localhost`, which every
//! serving certificate carries); `http://HOST:PORT` is plaintext, for a
//! control plane started with `--insecure`. The connection is made here,
//! not by tonic, so every binary checks the server the same way.
//!
//! A target may name several control planes: each connection goes to the
//! one that answered last, and on to the next when it does not, so a
//! client fails over by simply reconnecting.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use crate::pin::PinnedCa;
use crate::{Result, TlsError};

/// How long one control plane may take to accept a connection before the
/// next is tried; a connection's own deadline is this times their number.
pub const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The name a certificate must carry for a server reached over a Unix socket.
pub const SOCKET_SERVER_NAME: &str = "localhost";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// A parsed control-plane URL, with the others to fail over to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    url: String,
    address: Address,
    plaintext: bool,
    /// Further control planes of the same cluster, tried in order when
    /// this one does not answer.
    fallbacks: Vec<Target>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |detail: &str| TlsError::Address {
            url: url.to_string(),
            detail: detail.to_string(),
        };
        if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad("a unix:// URL needs a socket path"));
            }
            return Ok(Self {
                url: url.to_string(),
                address: Address::Unix(PathBuf::from(path)),
                plaintext: false,
                fallbacks: Vec::new(),
            });
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let plaintext = match uri.scheme_str() {
            Some("https") => false,
            Some("http") => true,
            _ => {
                return Err(bad(
                    "expected https://HOST:PORT, unix:///PATH or http://HOST:PORT",
                ))
            }
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if plaintext { 80 } else { 443 });
        Ok(Self {
            url: url.to_string(),
            address: Address::Tcp { host, port },
            plaintext,
            fallbacks: Vec::new(),
        })
    }

    /// Several URLs of one cluster's control planes, the first preferred.
    /// They must agree on TLS: a client never falls back to plaintext.
    pub fn parse_all(urls: &[String]) -> Result<Self> {
        let mut targets = urls.iter().map(|u| Target::parse(u));
        let Some(first) = targets.next() else {
            return Err(TlsError::Address {
                url: String::new(),
                detail: "no control-plane URL".to_string(),
            });
        };
        let mut first = first?;
        for other in targets {
            let other = other?;
            if other.plaintext != first.plaintext {
                return Err(TlsError::Address {
                    url: other.url,
                    detail: format!("{} and this URL must both use TLS or both not", first.url),
                });
            }
            first.fallbacks.push(other);
        }
        Ok(first)
    }

    /// Every control plane this target names, the preferred one first.
    fn all(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(self).chain(&self.fallbacks)
    }

    /// How long dialling may take when every control plane is tried.
    pub fn dial_deadline(&self) -> std::time::Duration {
        DIAL_TIMEOUT * u32::try_from(self.all().count()).unwrap_or(u32::MAX)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every `HOST:PORT` (or socket path), comma-separated, for messages.
    pub fn authorities(&self) -> String {
        self.all()
            .map(Target::authority)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every URL, comma-separated, for messages.
    pub fn urls(&self) -> String {
        self.all()
            .map(|t| t.url.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn is_plaintext(&self) -> bool {
        self.plaintext
    }

    pub fn is_unix(&self) -> bool {
        matches!(self.address, Address::Unix(_))
    }

    /// `HOST:PORT`, or the socket path, for messages.
    pub fn authority(&self) -> String {
        match &self.address {
            Address::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Address::Tcp { host, port } => format!("{host}:{port}"),
            Address::Unix(path) => path.display().to_string(),
        }
    }

    /// Plaintext over a Unix socket, for agents of an `--insecure` control plane.
    pub fn into_plaintext(mut self) -> Self {
        self.plaintext = true;
        self.fallbacks = self
            .fallbacks
            .into_iter()
            .map(Target::into_plaintext)
            .collect();
        self
    }

    fn server_name(&self) -> Result<ServerName<'static>> {
        let name = match &self.address {
            Address::Tcp { host, .. } => host.clone(),
            Address::Unix(_) => SOCKET_SERVER_NAME.to_string(),
        };
        ServerName::try_from(name).map_err(|e| TlsError::Address {
            url: self.url.clone(),
            detail: e.to_string(),
        })
    }

    /// A tonic endpoint for this target, to tune and then connect with
    /// [`Target::connector`].
    pub fn endpoint(&self) -> Result<Endpoint> {
        // tonic only names the HTTP/2 authority from it; the connector dials.
        let uri = match &self.address {
            Address::Tcp { .. } => format!("http://{}", self.authority()),
            Address::Unix(_) => format!("http://{SOCKET_SERVER_NAME}"),
        };
        Endpoint::from_shared(uri).map_err(|e| TlsError::Address {
            url: self.url.clone(),
            detail: e.to_string(),
        })
    }

    /// Dials this target (or, failing that, its fallbacks), with TLS
    /// unless it is plaintext; a TLS target without a client configuration
    /// is an error.
    pub fn connector(&self, tls: Option<Arc<ClientConfig>>) -> Result<Connector> {
        let dials = self
            .all()
            .map(|t| t.dial(tls.clone()))
            .collect::<Result<Vec<Dial>>>()?;
        Ok(Connector {
            dials: dials.into(),
            preferred: Arc::default(),
        })
    }

    fn dial(&self, tls: Option<Arc<ClientConfig>>) -> Result<Dial> {
        let tls = match (self.plaintext, tls) {
            (true, _) => None,
            (false, Some(config)) => Some((TlsConnector::from(config), self.server_name()?)),
            (false, None) => {
                return Err(TlsError::Credentials(format!(
                    "{} needs TLS credentials",
                    self.url
                )))
            }
        };
        Ok(Dial {
            address: self.address.clone(),
            tls,
        })
    }

    /// A channel that connects on first use and reconnects by itself.
    pub fn lazy_channel(
        &self,
        endpoint: Endpoint,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Channel> {
        Ok(endpoint.connect_with_connector_lazy(self.connector(tls)?))
    }
}

/// How a client decides to trust the server.
pub enum Trust {
    /// The cluster CA, from a credentials file or an agent's state.
    Ca(CertificateDer<'static>),
    /// A pin of the CA, for a host joining with a token.
    Pinned(Arc<PinnedCa>),
}

/// A client certificate chain and its key.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    pub fn from_pem(cert_pem: &str, key_pem: &str, what: &str) -> Result<Self> {
        Ok(Self {
            chain: crate::pem::certificates(cert_pem.as_bytes(), &format!("{what} certificate"))?,
            key: crate::pem::private_key(key_pem.as_bytes(), &format!("{what} key"))?,
        })
    }
}

/// A TLS 1.3 client configuration.
pub fn config(trust: Trust, identity: Option<ClientIdentity>) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(crate::PROTOCOLS)?;
    let builder = match trust {
        Trust::Ca(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca)?;
            builder.with_root_certificates(roots)
        }
        Trust::Pinned(pin) => builder.dangerous().with_custom_certificate_verifier(pin),
    };
    let mut config = match identity {
        Some(id) => builder.with_client_auth_cert(id.chain, id.key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = crate::alpn();
    Ok(Arc::new(config))
}

/// Any connection the connector makes.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The tower service tonic dials through: the control plane that answered
/// last first, then the others in order.
#[derive(Clone)]
pub struct Connector {
    dials: Arc<[Dial]>,
    preferred: Arc<AtomicUsize>,
}

/// How to reach one control plane.
#[derive(Clone)]
struct Dial {
    address: Address,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Connector {
    async fn dial(self) -> io::Result<TokioIo<Box<dyn Io>>> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failure = io::Error::other("no control plane to dial");
        for i in 0..self.dials.len() {
            let at = (first + i) % self.dials.len();
            let attempt = tokio::time::timeout(DIAL_TIMEOUT, self.dials[at].clone().connect());
            match attempt.await {
                Ok(Ok(io)) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(io);
                }
                Ok(Err(e)) => failure = e,
                Err(_) => failure = io::Error::new(io::ErrorKind::TimedOut, "timed out connecting"),
            }
        }
        Err(failure)
    }
}

impl Dial {
    async fn connect(self) -> io::Result<TokioIo<Box<dyn Io>>> {
        let stream: Box<dyn Io> = match &self.address {
            Address::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port)).await?;
                // Small gRPC frames must not wait for Nagle.
                s.set_nodelay(true)?;
                Box::new(s)
            }
            Address::Unix(path) => Box::new(UnixStream::connect(path).await?),
        };
        let stream: Box<dyn Io> = match self.tls {
            None => stream,
            Some((connector, name)) => Box::new(connector.connect(name, stream).await?),
        };
        Ok(TokioIo::new(stream))
    }
}

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<Box<dyn Io>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        Box::pin(self.clone().dial())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_say_how_to_dial() {
        let t = Target::parse("https://10.0.0.1:7443").unwrap();
        assert_eq!(
            (t.authority(), t.is_plaintext()),
            ("10.0.0.1:7443".into(), false)
        );
        let t = Target::parse("http://127.0.0.1:7443").unwrap();
        assert_eq!(
            (t.authority(), t.is_plaintext()),
            ("127.0.0.1:7443".into(), true)
        );
        let t = Target::parse("unix:///run/switchyard.sock").unwrap();
        assert_eq!(
            (t.authority(), t.is_unix()),
            ("/run/switchyard.sock".into(), true)
        );
        let t = Target::parse("https://[fd00::1]:7443").unwrap();
        assert_eq!(t.authority(), "[fd00::1]:7443");
        assert_eq!(
            Target::parse("ftp://x").unwrap_err().to_string(),
            "invalid address \"ftp://x\": expected https://HOST:PORT, unix:///PATH or http://HOST:PORT"
        );
    }

    #[test]
    fn a_tls_target_needs_a_configuration() {
        let t = Target::parse("https://10.0.0.1:7443").unwrap();
        assert_eq!(
            t.connector(None).err().unwrap().to_string(),
            "credentials: https://10.0.0.1:7443 needs TLS credentials"
        );
        assert!(Target::parse("http://10.0.0.1:7443")
            .unwrap()
            .connector(None)
            .is_ok());
    }

    #[tokio::test]
    async fn a_connector_fails_over_to_the_control_plane_that_answers() {
        use tower::Service;
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let urls = [
            format!("http://{dead_addr}"),
            format!("http://{}", live.local_addr().unwrap()),
        ];
        let target = Target::parse_all(&urls).unwrap();
        assert_eq!(target.urls(), urls.join(", "));
        assert_eq!(target.dial_deadline(), DIAL_TIMEOUT * 2);
        let mut connector = target.connector(None).unwrap();
        let uri: http::Uri = "http://ignored".parse().unwrap();
        connector.call(uri.clone()).await.unwrap();
        live.accept().await.unwrap();
        assert_eq!(connector.preferred.load(Ordering::Relaxed), 1);
        connector.call(uri).await.unwrap();
        live.accept().await.unwrap();

        let mixed = [urls[1].clone(), "https://10.0.0.1:7443".to_string()];
        assert!(Target::parse_all(&mixed).is_err());
    }
}
