//! systemd's side of starting, stopping and restarting a daemon, without
//! libsystemd: the notification protocol (`Type=notify`, the watchdog and
//! the file-descriptor store, [`notify`]) and socket passing
//! (`LISTEN_FDS`, [`listen_fds`]).
//!
//! Why a daemon keeps its listening sockets in systemd: `systemctl
//! restart` stops the old process before it starts the new one. A socket
//! closed in between refuses what arrives (a DNS client waits out its
//! resolver timeout, 5 s with glibc); a socket kept open by systemd while
//! no process runs queues it instead, and the next process reads it. So a
//! daemon stores its sockets once it serves them (`FDSTORE=1`), gets them
//! back as `LISTEN_FDS` on its next start, and must never `shutdown(2)`
//! them on its way out: they outlive it.
//!
//! [`ServiceManager`] is what a daemon's `main` holds: every call does
//! nothing when the process was not started by systemd, and a failure to
//! tell systemd something is logged, never fatal, since serving matters
//! more than reporting it.

pub mod listen_fds;
pub mod notify;
pub mod watchdog;

use std::os::fd::BorrowedFd;
use std::sync::Arc;

pub use listen_fds::{ListenFds, ListenFdsError};
pub use notify::{Notifier, NotifyError};

/// The service manager that started this process, if any.
#[derive(Debug, Clone, Default)]
pub struct ServiceManager {
    notifier: Option<Arc<Notifier>>,
}

// === impl ServiceManager ===

impl ServiceManager {
    /// The one in `$NOTIFY_SOCKET`; none (every call a no-op) without it,
    /// or when it cannot be used, which is logged.
    pub fn from_env() -> Self {
        let notifier = Notifier::from_env()
            .inspect_err(|e| tracing::warn!(error = %e, "not talking to the service manager"))
            .ok()
            .flatten();
        Self {
            notifier: notifier.map(Arc::new),
        }
    }

    /// One that sends to `notifier` (tests, or a socket found elsewhere).
    pub fn with_notifier(notifier: Notifier) -> Self {
        Self {
            notifier: Some(Arc::new(notifier)),
        }
    }

    /// Whether a service manager listens at all.
    pub fn is_present(&self) -> bool {
        self.notifier.is_some()
    }

    /// `READY=1`: the daemon serves; `systemctl start` returns, units
    /// ordered after this one start.
    pub fn ready(&self) {
        self.tell("READY=1", Notifier::ready);
    }

    /// `STOPPING=1`: the daemon is on its way out (and will not be
    /// killed for being slow to say so within `TimeoutStopSec`).
    pub fn stopping(&self) {
        self.tell("STOPPING=1", Notifier::stopping);
    }

    /// Makes the file-descriptor store hold exactly these sockets under
    /// these names: each name's stored descriptors are removed
    /// (`FDSTOREREMOVE=1`), then the given one stored (`FDSTORE=1`). The
    /// removal first is what keeps a socket this process no longer uses
    /// (a changed listen address, a listener turned off) from being
    /// passed to every later start and holding its port; `None` only
    /// removes. Removing is safe while this process holds its own
    /// descriptor: the socket stays open.
    pub fn replace_stored_fds(&self, entries: &[(&str, Option<BorrowedFd<'_>>)]) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let mut stored = Vec::new();
        for (name, fd) in entries {
            if let Err(e) = notifier.remove_fds(name) {
                tracing::warn!(error = %e, fd_name = name, "cannot clear the service manager's file descriptor store");
            }
            let Some(fd) = fd else { continue };
            match notifier.store_fd(name, *fd) {
                Ok(()) => stored.push(*name),
                Err(e) => {
                    tracing::warn!(error = %e, fd_name = name, "cannot keep a socket in the service manager; a restart will bind it anew")
                }
            }
        }
        if !stored.is_empty() {
            tracing::info!(sockets = %stored.join(" "), "sockets kept in the service manager's file descriptor store");
        }
    }

    /// Pings the watchdog (`WATCHDOG=1`) every half `WATCHDOG_USEC` while
    /// the runtime runs, when systemd asked for it (`WatchdogSec=`) and
    /// `WATCHDOG_PID`, if set, is this process. A runtime too stuck to
    /// run this task misses the pings and systemd restarts the daemon.
    pub fn spawn_watchdog(&self) -> Option<tokio::task::JoinHandle<()>> {
        let notifier = self.notifier.clone()?;
        let every = watchdog::from_env()?;
        tracing::info!(?every, "pinging the service manager's watchdog");
        Some(tokio::spawn(watchdog::run(notifier, every)))
    }

    fn tell(&self, what: &str, send: impl FnOnce(&Notifier) -> Result<(), NotifyError>) {
        if let Some(notifier) = &self.notifier {
            match send(notifier) {
                Ok(()) => tracing::debug!("told the service manager {what}"),
                Err(e) => tracing::warn!(error = %e, "cannot tell the service manager {what}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    use std::net::TcpListener;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    /// Each name is cleared before its socket is stored, and a name with
    /// no socket is only cleared: the store ends up holding exactly what
    /// the daemon serves.
    #[test]
    fn replacing_the_store_clears_each_name_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).expect("bind");
        manager.set_nonblocking(true).unwrap();
        let sm = ServiceManager::with_notifier(Notifier::connect(path.as_os_str()).unwrap());
        let healthz = TcpListener::bind("127.0.0.1:0").unwrap();
        sm.replace_stored_fds(&[("healthz", Some(healthz.as_fd())), ("metrics", None)]);
        let mut got = Vec::new();
        let mut buf = [0u8; 128];
        while let Ok(n) = manager.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            got,
            [
                "FDSTOREREMOVE=1\nFDNAME=healthz",
                "FDSTORE=1\nFDNAME=healthz",
                "FDSTOREREMOVE=1\nFDNAME=metrics",
            ]
        );
    }

    #[test]
    fn without_a_manager_every_call_is_a_no_op() {
        let sm = ServiceManager::default();
        assert!(!sm.is_present());
        sm.ready();
        sm.stopping();
        sm.replace_stored_fds(&[("metrics", None)]);
    }
}
