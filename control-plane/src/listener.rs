//! The control plane's listeners: TCP, plus an optional Unix socket. The
//! socket lets agents in other network namespaces on the same machine reach
//! a control plane bound to loopback (the demo does this), with no address
//! or route added anywhere.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::server::Connected;

/// An accepted connection of either kind.
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer; `None` on the Unix socket.
    pub remote: Option<SocketAddr>,
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            remote: match self {
                Conn::Tcp(s) => s.peer_addr().ok(),
                Conn::Unix(_) => None,
            },
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
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

/// Every accepted connection from both listeners.
pub fn incoming(
    tcp: TcpListener,
    unix: Option<UnixListener>,
) -> impl Stream<Item = io::Result<Conn>> + Send {
    let tcp = TcpListenerStream::new(tcp).map(|r| {
        r.map(|s| {
            // Small gRPC frames must not wait for Nagle.
            let _ = s.set_nodelay(true);
            Conn::Tcp(s)
        })
    });
    let unix = unix
        .map(|l| {
            UnixListenerStream::new(l)
                .map(|r| r.map(Conn::Unix))
                .boxed()
        })
        .unwrap_or_else(|| futures::stream::empty().boxed());
    futures::stream::select(tcp, unix)
}
