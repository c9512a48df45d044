//! systemd's side of a `Type=notify` service with a file-descriptor store,
//! for tests of what a daemon does under `systemctl restart`: it owns the
//! `NOTIFY_SOCKET`, keeps the descriptors a service stores (`FDSTORE=1`,
//! `FDNAME=`, `FDSTOREREMOVE=1`), and hands them to the next start as
//! systemd does: descriptors 3, 4, … with `LISTEN_FDS`, `LISTEN_FDNAMES`
//! and `LISTEN_PID` (set by the [`EXEC_WITH_LISTEN_PID`] wrapper, which
//! knows the pid that `ip netns exec` cannot).
//!
//! As with `NotifyAccess=main`, only the service's main process is heard
//! (the sender's pid comes from `SCM_CREDENTIALS`); as with
//! `FileDescriptorStoreMax=`, the store refuses descriptors past its size;
//! and a descriptor already stored (the same socket) is not stored twice.

use std::collections::BTreeSet;
use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::error::{LabError, Result};
use crate::ChildGuard;

/// The `switchyard-lab` subcommand that sets `LISTEN_PID` to its own pid
/// and execs the rest of its arguments (the pid stays: exec keeps it).
pub const EXEC_WITH_LISTEN_PID: &str = "exec-with-listen-pid";
/// Descriptors one notification may carry (systemd takes up to 768 in
/// all; a daemon sends one per `FDSTORE=1` here).
const MAX_FDS_PER_MESSAGE: usize = 16;
/// How long one read waits before the caller's conditions are checked
/// again (is the process still running, is the deadline past).
const READ_SLICE: Duration = Duration::from_millis(50);

/// One stored descriptor.
#[derive(Debug)]
struct Stored {
    name: String,
    fd: OwnedFd,
    /// The socket's identity (device, inode), to store each socket once.
    id: (u64, u64),
}

/// What a service gets at its start: environment, and descriptors to
/// place at 3, 4, ….
#[derive(Debug)]
pub struct Start {
    pub env: Vec<(String, String)>,
    pub fds: Vec<OwnedFd>,
}

/// A fake systemd for one service.
#[derive(Debug)]
pub struct ServiceManager {
    socket: UnixDatagram,
    path: PathBuf,
    store: Vec<Stored>,
    store_max: usize,
    /// Every notification heard from a main process, in order, for
    /// assertions and failure messages.
    heard: Vec<(u32, String)>,
}

impl ServiceManager {
    /// Listens at `path` (in the lab's log directory: a path socket, not
    /// an abstract one, which is per network namespace) with room for
    /// `store_max` stored descriptors (`FileDescriptorStoreMax=`).
    pub fn bind(path: &Path, store_max: usize) -> Result<Self> {
        let io = |what| {
            let path = path.to_path_buf();
            move |source| LabError::Io { what, path, source }
        };
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path).map_err(io("binding"))?;
        rustix::net::sockopt::set_socket_passcred(&socket, true)
            .map_err(|e| io("asking for senders' credentials on")(e.into()))?;
        socket
            .set_read_timeout(Some(READ_SLICE))
            .map_err(io("setting a read timeout on"))?;
        Ok(Self {
            socket,
            path: path.to_path_buf(),
            store: Vec::new(),
            store_max,
            heard: Vec::new(),
        })
    }

    /// `NOTIFY_SOCKET` for the service.
    pub fn notify_socket(&self) -> &Path {
        &self.path
    }

    /// Names of the stored descriptors, in store order.
    pub fn stored_names(&self) -> Vec<String> {
        self.store.iter().map(|s| s.name.clone()).collect()
    }

    /// Each stored descriptor's name and the address its socket is bound
    /// to (none for a socket that is not an internet one).
    pub fn stored_addrs(&self) -> Vec<(String, Option<SocketAddr>)> {
        self.store
            .iter()
            .map(|s| {
                // getsockname(2) reads any socket's address, whatever its type.
                let addr =
                    s.fd.try_clone()
                        .ok()
                        .and_then(|fd| std::net::TcpListener::from(fd).local_addr().ok());
                (s.name.clone(), addr)
            })
            .collect()
    }

    /// What the main processes said so far: (pid, message).
    pub fn heard(&self) -> &[(u32, String)] {
        &self.heard
    }

    /// The environment and descriptors of the next start: `NOTIFY_SOCKET`,
    /// and with a non-empty store `LISTEN_FDS` and `LISTEN_FDNAMES` with a
    /// duplicate of every stored descriptor (to go to 3, 4, …). The
    /// command must run under [`EXEC_WITH_LISTEN_PID`] for `LISTEN_PID`.
    pub fn start_env(&self) -> Result<Start> {
        let mut env = vec![(
            "NOTIFY_SOCKET".to_string(),
            self.path.to_string_lossy().into_owned(),
        )];
        let fds = self
            .store
            .iter()
            .map(|s| s.fd.try_clone())
            .collect::<io::Result<Vec<_>>>()
            .map_err(|source| LabError::Io {
                what: "duplicating a stored descriptor of",
                path: self.path.clone(),
                source,
            })?;
        if !fds.is_empty() {
            env.push(("LISTEN_FDS".to_string(), fds.len().to_string()));
            env.push(("LISTEN_FDNAMES".to_string(), self.stored_names().join(":")));
        }
        Ok(Start { env, fds })
    }

    /// Waits until `main` (the service's main process) sends `READY=1`,
    /// applying what it stores meanwhile; fails with its log when it
    /// exits first or `timeout` passes.
    pub fn wait_ready(&mut self, main: &ChildGuard, timeout: Duration) -> Result<()> {
        self.wait_for(main, "READY=1", timeout)
    }

    /// Waits until `main` says `line` (e.g. `STOPPING=1`), applying what
    /// it stores meanwhile.
    pub fn wait_for(&mut self, main: &ChildGuard, line: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let pid = main.pid();
        let already = |heard: &[(u32, String)]| {
            heard
                .iter()
                .any(|(from, m)| *from == pid && m.lines().any(|l| l == line))
        };
        while !already(&self.heard) {
            // A message sent just before the exit is still in the socket.
            let running = main.is_running();
            let got = self.receive()?;
            if !got && (!running || Instant::now() >= deadline) {
                return Err(LabError::Timeout(format!(
                    "process {pid} did not notify {line:?} (running: {running}); heard: {:?}; its log:\n{}",
                    self.heard,
                    main.log()
                )));
            }
        }
        Ok(())
    }

    /// Reads every notification already queued, applying the stores (e.g.
    /// what a process said just before it exited).
    pub fn drain(&mut self) -> Result<()> {
        while self.receive()? {}
        Ok(())
    }

    /// Reads one notification (waiting at most [`READ_SLICE`]) and acts on
    /// it; false when none came.
    fn receive(&mut self) -> Result<bool> {
        let mut text = [0u8; 4096];
        let mut space = [MaybeUninit::uninit();
            rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE), ScmCredentials(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = match rustix::net::recvmsg(
            &self.socket,
            &mut [IoSliceMut::new(&mut text)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(got) => got,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => return Ok(false),
            Err(e) => {
                return Err(LabError::Io {
                    what: "reading notifications on",
                    path: self.path.clone(),
                    source: e.into(),
                })
            }
        };
        let mut pid = None;
        let mut fds: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            match message {
                RecvAncillaryMessage::ScmRights(received) => fds.extend(received),
                RecvAncillaryMessage::ScmCredentials(cred) => {
                    pid = u32::try_from(cred.pid.as_raw_pid()).ok();
                }
                _ => {}
            }
        }
        let message = String::from_utf8_lossy(&text[..got.bytes]).into_owned();
        let Some(pid) = pid else {
            eprintln!("service manager: ignoring {message:?} without credentials");
            return Ok(true);
        };
        self.apply(&message, fds)?;
        self.heard.push((pid, message));
        Ok(true)
    }

    /// What systemd does with `FDSTOREREMOVE=1` and `FDSTORE=1`.
    fn apply(&mut self, message: &str, fds: Vec<OwnedFd>) -> Result<()> {
        let lines: BTreeSet<&str> = message.lines().collect();
        let name = message
            .lines()
            .find_map(|l| l.strip_prefix("FDNAME="))
            .unwrap_or("stored");
        if lines.contains("FDSTOREREMOVE=1") {
            self.store.retain(|s| s.name != name);
        }
        if !lines.contains("FDSTORE=1") {
            return Ok(());
        }
        for fd in fds {
            let stat = rustix::fs::fstat(fd.as_fd()).map_err(|e| LabError::Io {
                what: "inspecting a descriptor stored on",
                path: self.path.clone(),
                source: e.into(),
            })?;
            let id = (stat.st_dev, stat.st_ino);
            if self.store.iter().any(|s| s.id == id) {
                continue;
            }
            if self.store.len() >= self.store_max {
                return Err(LabError::Cluster(format!(
                    "the service stored more than FileDescriptorStoreMax={} descriptors: {:?} and {name}",
                    self.store_max,
                    self.stored_names()
                )));
            }
            self.store.push(Stored {
                name: name.to_string(),
                fd,
                id,
            });
        }
        Ok(())
    }
}

impl Drop for ServiceManager {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
