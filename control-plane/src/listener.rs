//! The control plane's listeners: TCP, plus an optional Unix socket (which
//! lets agents in other network namespaces of this machine reach a control
//! plane bound to loopback, with no address or route added anywhere).
//!
//! Both serve TLS 1.3 unless the server runs `--insecure`. Handshakes run
//! in tasks of their own, so a client that connects and stalls holds up
//! nobody; each connection carries the verdict on its client certificate
//! ([`Peer`]) for the edge layer to turn into a principal.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use switchyard_tls::server::{Peer, ServerTls};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_BUFFER: usize = 128;

/// A transport of either kind.
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

enum Io {
    Plain(Socket),
    Tls(Box<tokio_rustls::server::TlsStream<Socket>>),
}

/// An accepted connection, ready for HTTP/2.
pub struct Conn {
    io: Io,
    info: ConnInfo,
}

#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer; `None` on the Unix socket.
    pub remote: Option<SocketAddr>,
    /// What the client's certificate says (`Anonymous` without TLS).
    pub peer: Peer,
}

impl Conn {
    /// Who is at the other end, for the edge layer.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $body:expr) => {
        match $self.get_mut() {
            Socket::Tcp($s) => $body,
            Socket::Unix($s) => $body,
        }
    };
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Binds a Unix socket, replacing a stale socket file left by a previous run.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

/// Every connection accepted on both listeners, handshaken when `tls` is
/// given. Accepting stops when the returned stream is dropped.
pub fn incoming(
    tcp: TcpListener,
    unix: Option<UnixListener>,
    tls: Option<ServerTls>,
) -> impl Stream<Item = io::Result<Conn>> + Send {
    let (tx, rx) = mpsc::channel(ACCEPTED_BUFFER);
    tokio::spawn(accept_tcp(tcp, tls.clone(), tx.clone()));
    if let Some(unix) = unix {
        tokio::spawn(accept_unix(unix, tls, tx));
    }
    ReceiverStream::new(rx)
}

type Accepted = mpsc::Sender<io::Result<Conn>>;

async fn accept_tcp(listener: TcpListener, tls: Option<ServerTls>, tx: Accepted) {
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                // Small gRPC frames must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                tokio::spawn(handshake(
                    Socket::Tcp(stream),
                    Some(remote),
                    tls.clone(),
                    tx.clone(),
                ));
            }
            Err(e) => backoff_after(e).await,
        }
    }
}

async fn accept_unix(listener: UnixListener, tls: Option<ServerTls>, tx: Accepted) {
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(handshake(
                    Socket::Unix(stream),
                    None,
                    tls.clone(),
                    tx.clone(),
                ));
            }
            Err(e) => backoff_after(e).await,
        }
    }
}

/// Out of file descriptors and the like: say so, and let them free up
/// rather than spin.
async fn backoff_after(e: io::Error) {
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn handshake(
    socket: Socket,
    remote: Option<SocketAddr>,
    tls: Option<ServerTls>,
    tx: Accepted,
) {
    let conn = match tls {
        None => Conn {
            io: Io::Plain(socket),
            info: ConnInfo {
                remote,
                peer: Peer::Anonymous,
            },
        },
        Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(socket)).await {
            Ok(Ok((stream, peer))) => Conn {
                io: Io::Tls(Box::new(stream)),
                info: ConnInfo { remote, peer },
            },
            Ok(Err(e)) => {
                // A plaintext client lands here at once: its bytes are no TLS record.
                tracing::debug!(error = %e, ?remote, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(?remote, "TLS handshake timed out");
                return;
            }
        },
    };
    let _ = tx.send(Ok(conn)).await;
}
