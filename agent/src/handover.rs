//! Hot restart: an agent started while another runs on the node takes the
//! running one's listening sockets (DNS over UDP and TCP, metrics, node
//! health) through
//! a Unix socket in the state directory.
//!
//! The very sockets pass, not new ones on the same port: a query that
//! arrives during the switch waits in the kernel's queue of that socket
//! until whichever process reads it first, so none goes unanswered.
//! Closing and binding again loses the queries in between, and
//! `SO_REUSEPORT` those still queued on the socket that closes.
//!
//! The exchange, over `<state-dir>/handover.sock`:
//! 1. the successor connects and sends `take`;
//! 2. the predecessor stops syncing (the data path is the successor's from
//!    now on) and sends its sockets, named in the message (`SCM_RIGHTS`);
//! 3. the successor serves them once its first snapshot is in, then sends
//!    `done`;
//! 4. the predecessor exits. If the successor goes away first, it resumes.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};

/// The handover socket's name in the state directory.
pub const SOCKET_FILE: &str = "handover.sock";
/// How long a predecessor waits for its successor to serve what it took.
pub const SERVE_WAIT: Duration = Duration::from_secs(60);

const TAKE: &[u8; 5] = b"take\n";
const DONE: &[u8; 5] = b"done\n";
/// Sockets that can pass: DNS UDP, DNS TCP, metrics, node health.
const MAX_SOCKETS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unexpected handover message {0:?}")]
    Protocol(String),
}

/// The listening sockets an agent hands over.
#[derive(Debug, Default)]
pub struct Sockets {
    pub dns_udp: Option<std::net::UdpSocket>,
    pub dns_tcp: Option<std::net::TcpListener>,
    pub metrics: Option<std::net::TcpListener>,
    pub healthz: Option<std::net::TcpListener>,
}

impl Sockets {
    /// Every socket's name (as it travels here and as systemd stores
    /// it, [`crate::systemd`]) and descriptor, if held, in the order
    /// they travel.
    pub fn by_name(&self) -> [(&'static str, Option<std::os::fd::BorrowedFd<'_>>); MAX_SOCKETS] {
        [
            ("dns-udp", self.dns_udp.as_ref().map(AsFd::as_fd)),
            ("dns-tcp", self.dns_tcp.as_ref().map(AsFd::as_fd)),
            ("metrics", self.metrics.as_ref().map(AsFd::as_fd)),
            ("healthz", self.healthz.as_ref().map(AsFd::as_fd)),
        ]
    }

    /// Names and descriptors of the sockets held, in the order they travel.
    fn named(&self) -> Vec<(&'static str, std::os::fd::BorrowedFd<'_>)> {
        self.by_name()
            .into_iter()
            .filter_map(|(name, fd)| Some((name, fd?)))
            .collect()
    }

    /// Each socket from `self`, else from `other`: a predecessor's
    /// sockets before those systemd passed (the same sockets when systemd
    /// started the predecessor; the predecessor's are the ones it served
    /// last when not).
    pub fn or(self, other: Sockets) -> Sockets {
        Sockets {
            dns_udp: self.dns_udp.or(other.dns_udp),
            dns_tcp: self.dns_tcp.or(other.dns_tcp),
            metrics: self.metrics.or(other.metrics),
            healthz: self.healthz.or(other.healthz),
        }
    }

    fn from_named(names: &str, fds: Vec<OwnedFd>) -> Result<Self, HandoverError> {
        let names: Vec<&str> = names.split_whitespace().collect();
        if names.len() != fds.len() {
            return Err(HandoverError::Protocol(format!(
                "{} names for {} sockets",
                names.len(),
                fds.len()
            )));
        }
        let mut sockets = Sockets::default();
        for (name, fd) in names.into_iter().zip(fds) {
            match name {
                "dns-udp" => sockets.dns_udp = Some(fd.into()),
                "dns-tcp" => sockets.dns_tcp = Some(fd.into()),
                "metrics" => sockets.metrics = Some(fd.into()),
                "healthz" => sockets.healthz = Some(fd.into()),
                other => return Err(HandoverError::Protocol(other.to_string())),
            }
        }
        Ok(sockets)
    }
}

/// A running agent that handed its sockets to this one and waits to hear
/// that they are served.
pub struct Predecessor {
    stream: UnixStream,
    path: PathBuf,
}

impl Predecessor {
    /// Tells the predecessor that its sockets are served: it exits.
    pub async fn release(mut self) -> Result<(), HandoverError> {
        let path = self.path.clone();
        self.stream
            .write_all(DONE)
            .await
            .map_err(io_error("releasing the agent at", &path))
    }
}

/// Takes the sockets of the agent running with `state_dir`, if one does.
pub async fn take_over(state_dir: &Path) -> Result<Option<(Sockets, Predecessor)>, HandoverError> {
    let path = state_dir.join(SOCKET_FILE);
    let mut stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(source) => {
            return Err(HandoverError::Io {
                what: "connecting to",
                path,
                source,
            })
        }
    };
    stream
        .write_all(TAKE)
        .await
        .map_err(io_error("asking for sockets at", &path))?;
    let (names, fds) = receive_sockets(&stream)
        .await
        .map_err(io_error("receiving sockets from", &path))?;
    let sockets = Sockets::from_named(&names, fds)?;
    Ok(Some((sockets, Predecessor { stream, path })))
}

/// Where successors ask for this agent's sockets.
pub struct Listener {
    inner: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Listens in `state_dir`, replacing the socket of an agent gone (or
    /// of the predecessor this one took over from).
    pub fn bind(state_dir: &Path) -> Result<Self, HandoverError> {
        let path = state_dir.join(SOCKET_FILE);
        std::fs::create_dir_all(state_dir).map_err(io_error("creating", state_dir))?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_error("removing", &path)(e));
            }
            _ => {}
        }
        let inner = UnixListener::bind(&path).map_err(io_error("listening on", &path))?;
        // Whoever connects can stop this agent: owner only.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error("restricting", &path))?;
        Ok(Self { inner, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next agent that asks for the sockets.
    pub async fn accept(&self) -> Result<Successor, HandoverError> {
        let (mut stream, _) = self
            .inner
            .accept()
            .await
            .map_err(io_error("accepting on", &self.path))?;
        let mut word = [0u8; TAKE.len()];
        stream
            .read_exact(&mut word)
            .await
            .map_err(io_error("reading a request on", &self.path))?;
        if &word != TAKE {
            return Err(HandoverError::Protocol(
                String::from_utf8_lossy(&word).into_owned(),
            ));
        }
        Ok(Successor {
            stream,
            path: self.path.clone(),
        })
    }
}

/// An agent that asked for this one's sockets.
pub struct Successor {
    stream: UnixStream,
    path: PathBuf,
}

impl Successor {
    /// Sends the sockets and waits until the successor serves them.
    pub async fn hand_over(
        mut self,
        sockets: &Sockets,
        wait: Duration,
    ) -> Result<(), HandoverError> {
        tracing::info!(
            ?sockets,
            "a new agent on this node takes over; syncing paused"
        );
        let named = sockets.named();
        let names: Vec<&str> = named.iter().map(|(n, _)| *n).collect();
        let fds: Vec<_> = named.iter().map(|(_, fd)| *fd).collect();
        let message = format!("{}\n", names.join(" "));
        send_sockets(&self.stream, message.as_bytes(), &fds)
            .await
            .map_err(io_error("sending sockets to", &self.path))?;
        let mut word = [0u8; DONE.len()];
        match tokio::time::timeout(wait, self.stream.read_exact(&mut word)).await {
            Err(_) => Err(io_error("waiting for the successor on", &self.path)(
                io::ErrorKind::TimedOut.into(),
            )),
            Ok(Err(e)) => Err(io_error("waiting for the successor on", &self.path)(e)),
            Ok(Ok(_)) if &word == DONE => Ok(()),
            Ok(Ok(_)) => Err(HandoverError::Protocol(
                String::from_utf8_lossy(&word).into_owned(),
            )),
        }
    }
}

async fn send_sockets(
    stream: &UnixStream,
    message: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> io::Result<()> {
    stream
        .async_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(io::Error::other("too many sockets for one message"));
            }
            let sent = rustix::net::sendmsg(
                stream,
                &[IoSlice::new(message)],
                &mut control,
                SendFlags::NOSIGNAL,
            )?;
            if sent < message.len() {
                return Err(io::Error::other("the handover message was cut short"));
            }
            Ok(())
        })
        .await
}

async fn receive_sockets(stream: &UnixStream) -> io::Result<(String, Vec<OwnedFd>)> {
    stream
        .async_io(Interest::READABLE, || {
            let mut text = [0u8; 128];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                stream,
                &mut [IoSliceMut::new(&mut text)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            if got.bytes == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let fds = control
                .drain()
                .filter_map(|m| match m {
                    RecvAncillaryMessage::ScmRights(fds) => Some(fds),
                    _ => None,
                })
                .flatten()
                .collect();
            let names = String::from_utf8_lossy(&text[..got.bytes])
                .trim()
                .to_string();
            Ok((names, fds))
        })
        .await
}

fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> HandoverError + 'a {
    move |source| HandoverError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{TcpListener, UdpSocket};

    /// The successor gets the very sockets: a datagram sent to the
    /// predecessor's port before the switch is read from the successor's.
    #[tokio::test]
    async fn the_successor_reads_what_was_queued_on_the_predecessors_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let addr = udp.local_addr().expect("addr");
        let tcp_addr = tcp.local_addr().expect("addr");
        let healthz = TcpListener::bind("127.0.0.1:0").expect("bind healthz");
        let healthz_addr = healthz.local_addr().expect("addr");
        let held = Sockets {
            dns_udp: Some(udp),
            dns_tcp: Some(tcp),
            metrics: None,
            healthz: Some(healthz),
        };
        let listener = Listener::bind(dir.path()).expect("listen");
        let predecessor = tokio::spawn(async move {
            let successor = listener.accept().await.expect("accept");
            successor.hand_over(&held, SERVE_WAIT).await
        });
        let client = UdpSocket::bind("127.0.0.1:0").expect("client");
        client.send_to(b"queued", addr).expect("send");

        let (sockets, predecessor_link) = take_over(dir.path())
            .await
            .expect("take over")
            .expect("a predecessor runs");
        let udp = sockets.dns_udp.expect("dns udp passed");
        assert_eq!(udp.local_addr().expect("addr"), addr);
        assert_eq!(
            sockets
                .dns_tcp
                .expect("dns tcp passed")
                .local_addr()
                .expect("addr"),
            tcp_addr
        );
        assert!(sockets.metrics.is_none());
        let healthz = sockets.healthz.expect("healthz passed");
        assert_eq!(healthz.local_addr().expect("addr"), healthz_addr);
        let mut buf = [0u8; 16];
        let (n, _) = udp.recv_from(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"queued");

        predecessor_link.release().await.expect("release");
        predecessor.await.expect("join").expect("handed over");
    }

    #[tokio::test]
    async fn no_predecessor_without_a_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(take_over(dir.path()).await.expect("no error").is_none());
        // A socket file left by an agent that is gone refuses connections.
        drop(Listener::bind(dir.path()).expect("listen"));
        assert!(take_over(dir.path()).await.expect("no error").is_none());
    }

    /// A successor that hangs up before serving leaves the predecessor in
    /// charge: the handover fails and the predecessor resumes.
    #[tokio::test]
    async fn a_successor_that_goes_away_fails_the_handover() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = Listener::bind(dir.path()).expect("listen");
        let held = Sockets {
            dns_udp: Some(UdpSocket::bind("127.0.0.1:0").expect("bind")),
            ..Sockets::default()
        };
        let predecessor = tokio::spawn(async move {
            let successor = listener.accept().await.expect("accept");
            successor.hand_over(&held, SERVE_WAIT).await
        });
        let taken = take_over(dir.path()).await.expect("take over");
        drop(taken);
        let result = predecessor.await.expect("join");
        assert!(
            matches!(result, Err(HandoverError::Io { ref source, .. }) if source.kind() == io::ErrorKind::UnexpectedEof),
            "{result:?}"
        );
    }
}
