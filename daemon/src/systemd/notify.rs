//! sd_notify(3): newline-separated `KEY=VALUE` lines in one datagram to
//! the Unix socket named by `$NOTIFY_SOCKET`, with descriptors attached
//! (`SCM_RIGHTS`) for the file-descriptor store.
//!
//! Written against the protocol rather than libsystemd (which would need
//! `unsafe` FFI; the workspace forbids it): descriptors travel through
//! rustix's safe `sendmsg`, as the agent's handover does.

use std::ffi::OsStr;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

/// Where systemd listens for this process's notifications.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// systemd's limit on a stored descriptor's name (`FDNAME=`).
const MAX_FD_NAME: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Only a path (`/run/systemd/notify`) or an abstract name (`@…`) is
    /// a Unix socket address; systemd's `vsock:` form is not supported.
    #[error("{NOTIFY_SOCKET}={0:?} is neither an absolute path nor an abstract socket name (@…)")]
    Address(String),
    /// The address does not fit a `sockaddr_un` (108 bytes).
    #[error("{NOTIFY_SOCKET}={address:?} is not a usable socket address: {source}")]
    BadAddress {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open a socket to the service manager: {0}")]
    Socket(#[source] io::Error),
    #[error("cannot send {message:?} to the service manager at {address}: {source}")]
    Send {
        message: String,
        address: String,
        #[source]
        source: io::Error,
    },
    /// systemd refuses names that are empty, longer than 255 bytes, or
    /// hold anything but printable ASCII other than `:` (its separator
    /// in `LISTEN_FDNAMES`).
    #[error("{0:?} is not a name systemd stores a descriptor under (1 to 255 printable ASCII characters, no ':' or space)")]
    FdName(String),
}

/// A socket to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: OwnedFd,
    address: SocketAddrUnix,
    shown: String,
}

// === impl Notifier ===

impl Notifier {
    /// The service manager in `$NOTIFY_SOCKET`; `None` when it is unset
    /// or empty (not started by systemd, or `Type=simple`).
    pub fn from_env() -> Result<Option<Self>, NotifyError> {
        match std::env::var_os(NOTIFY_SOCKET) {
            Some(address) if !address.is_empty() => Self::connect(&address).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for `address`: an absolute path, or `@name` for a
    /// socket in the abstract namespace (as systemd's user instances and
    /// containers pass it).
    pub fn connect(address: &OsStr) -> Result<Self, NotifyError> {
        let shown = address.to_string_lossy().into_owned();
        let bytes = address.as_bytes();
        let parsed = match bytes.split_first() {
            Some((b'@', name)) => SocketAddrUnix::new_abstract_name(name),
            Some((b'/', _)) => SocketAddrUnix::new(Path::new(address)),
            _ => return Err(NotifyError::Address(shown)),
        };
        let address = parsed.map_err(|e| NotifyError::BadAddress {
            address: shown.clone(),
            source: e.into(),
        })?;
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| NotifyError::Socket(e.into()))?;
        Ok(Self {
            socket,
            address,
            shown,
        })
    }

    /// `READY=1`.
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1", &[])
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1", &[])
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1", &[])
    }

    /// `STATUS=…`, what `systemctl status` shows; one line.
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        self.send(&format!("STATUS={}", text.replace('\n', " ")), &[])
    }

    /// `FDSTORE=1` with `fd` named `name`. systemd keeps a duplicate (one
    /// it already holds, the same open file, is not stored twice) and
    /// passes it to the next start in `LISTEN_FDS`, named in
    /// `LISTEN_FDNAMES`, as long as the unit has `FileDescriptorStoreMax=`
    /// room for it.
    pub fn store_fd(&self, name: &str, fd: BorrowedFd<'_>) -> Result<(), NotifyError> {
        check_fd_name(name)?;
        self.send(&format!("FDSTORE=1\nFDNAME={name}"), &[fd])
    }

    /// `FDSTOREREMOVE=1`: systemd closes every descriptor it stores under
    /// `name`.
    pub fn remove_fds(&self, name: &str) -> Result<(), NotifyError> {
        check_fd_name(name)?;
        self.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}"), &[])
    }

    /// Sends `message` (with `fds`) in one datagram. It blocks only while
    /// systemd's queue is full, as libsystemd's `sd_notify` does: a
    /// dropped `READY=1` would fail the start.
    pub fn send(&self, message: &str, fds: &[BorrowedFd<'_>]) -> Result<(), NotifyError> {
        let failed = |source: io::Error| NotifyError::Send {
            message: message.to_string(),
            address: self.shown.clone(),
            source,
        };
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(failed(io::Error::other(
                "no room for the descriptors in the message",
            )));
        }
        let sent = rustix::net::sendmsg_addr(
            &self.socket,
            &self.address,
            &[IoSlice::new(message.as_bytes())],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .map_err(|e| failed(e.into()))?;
        if sent < message.len() {
            return Err(failed(io::Error::other("the datagram was cut short")));
        }
        Ok(())
    }
}

fn check_fd_name(name: &str) -> Result<(), NotifyError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_FD_NAME
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if valid {
        Ok(())
    } else {
        Err(NotifyError::FdName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    use std::io::IoSliceMut;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

    /// One datagram systemd would read: the text and the descriptors.
    fn receive(socket: &UnixDatagram) -> (String, Vec<OwnedFd>) {
        let mut text = [0u8; 512];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut text)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .expect("recvmsg");
        let fds = control
            .drain()
            .filter_map(|m| match m {
                RecvAncillaryMessage::ScmRights(fds) => Some(fds),
                _ => None,
            })
            .flatten()
            .collect();
        (
            String::from_utf8_lossy(&text[..got.bytes]).into_owned(),
            fds,
        )
    }

    /// A path socket, as systemd's system instance passes it: the states
    /// arrive as lines, a stored socket arrives as a descriptor of the
    /// very socket (a datagram sent to it is read from systemd's copy).
    #[test]
    fn a_path_socket_receives_states_and_stored_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::connect(path.as_os_str()).expect("connect");

        notifier.ready().expect("ready");
        assert_eq!(receive(&manager).0, "READY=1");

        let dns = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        notifier.store_fd("dns-udp", dns.as_fd()).expect("store");
        let (text, fds) = receive(&manager);
        assert_eq!(text, "FDSTORE=1\nFDNAME=dns-udp");
        assert_eq!(fds.len(), 1);
        let stored = UdpSocket::from(fds.into_iter().next().expect("one fd"));
        assert_eq!(stored.local_addr().unwrap(), dns.local_addr().unwrap());
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(b"queued", dns.local_addr().unwrap())
            .unwrap();
        drop(dns);
        let mut buf = [0u8; 16];
        let (n, _) = stored
            .recv_from(&mut buf)
            .expect("read from the stored copy");
        assert_eq!(&buf[..n], b"queued");

        notifier.remove_fds("dns-udp").expect("remove");
        assert_eq!(receive(&manager).0, "FDSTOREREMOVE=1\nFDNAME=dns-udp");
        notifier.stopping().expect("stopping");
        assert_eq!(receive(&manager).0, "STOPPING=1");
        notifier.watchdog().expect("watchdog");
        assert_eq!(receive(&manager).0, "WATCHDOG=1");
        notifier.status("two\nlines").expect("status");
        assert_eq!(receive(&manager).0, "STATUS=two lines");
    }

    /// `@name` is a socket in the abstract namespace, as containers and
    /// systemd's user instances may pass it.
    #[test]
    fn an_abstract_socket_is_reached_by_its_at_name() {
        let name = format!("switchyard-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract");
        let manager = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let notifier = Notifier::connect(OsStr::new(&format!("@{name}"))).expect("connect");
        notifier.ready().expect("ready");
        assert_eq!(receive(&manager).0, "READY=1");
    }

    #[test]
    fn addresses_that_are_not_unix_sockets_are_refused() {
        for address in ["", "relative/notify", "vsock:2:1234"] {
            let err = Notifier::connect(OsStr::new(address)).expect_err(address);
            assert_eq!(
                err.to_string(),
                format!("NOTIFY_SOCKET={address:?} is neither an absolute path nor an abstract socket name (@…)")
            );
        }
        let long = format!("/{}", "x".repeat(200));
        assert!(matches!(
            Notifier::connect(OsStr::new(&long)),
            Err(NotifyError::BadAddress { .. })
        ));
    }

    #[test]
    fn descriptor_names_follow_systemds_rules() {
        for good in ["dns-udp", "healthz", "a.b_c"] {
            assert!(check_fd_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(256);
        for bad in ["", "dns:udp", "dns udp", "dns\nudp", long.as_str()] {
            assert!(check_fd_name(bad).is_err(), "{bad:?}");
        }
    }

    /// Nobody listening is an error for the caller to log, not a hang.
    #[test]
    fn a_missing_manager_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gone");
        let notifier = Notifier::connect(path.as_os_str()).expect("connect");
        let err = notifier.ready().expect_err("nobody listens");
        assert!(
            err.to_string()
                .starts_with("cannot send \"READY=1\" to the service manager at "),
            "{err}"
        );
    }
}
