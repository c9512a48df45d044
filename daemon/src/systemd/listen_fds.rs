//! Sockets passed by systemd at start (sd_listen_fds(3)): descriptors 3,
//! 4, … as `LISTEN_FDS` counts them, for the process `LISTEN_PID` names,
//! each named in the colon-separated `LISTEN_FDNAMES` (its `FDNAME=` when
//! it comes from the file-descriptor store, `FileDescriptorName=` when
//! from a socket unit).
//!
//! Turning a descriptor number into a socket is `unsafe` (the workspace
//! forbids it); `listenfd` does it, checking `LISTEN_PID`, the socket's
//! type and family, and setting close-on-exec, so a command the daemon
//! runs does not inherit its listeners. It unsets `LISTEN_PID` and
//! `LISTEN_FDS` as it reads them: call [`ListenFds::from_env`] once, early,
//! before other threads read the environment. The names are ours to map
//! to its indexes.

use std::net::{TcpListener, UdpSocket};

/// Names of the passed descriptors, `:`-separated.
pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// The name systemd gives a descriptor that has none.
pub const UNKNOWN_NAME: &str = "unknown";

#[derive(Debug, thiserror::Error)]
pub enum ListenFdsError {
    /// systemd always names every descriptor; a count that differs means
    /// the environment is not systemd's, and no descriptor is trusted.
    #[error("LISTEN_FDNAMES names {names} descriptors but LISTEN_FDS passes {fds}; using none")]
    NameCount { names: usize, fds: usize },
    /// The descriptor named `name` is not the kind of socket asked for
    /// (or not a socket at all).
    #[error("the descriptor passed as {name:?} (fd {fd}) is not a {kind}: {source}")]
    Kind {
        name: String,
        fd: usize,
        kind: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The descriptors systemd passed, taken by name.
pub struct ListenFds {
    fds: listenfd::ListenFd,
    names: Vec<String>,
    taken: Vec<bool>,
}

impl std::fmt::Debug for ListenFds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenFds")
            .field("names", &self.names)
            .field("taken", &self.taken)
            .finish()
    }
}

// === impl ListenFds ===

impl ListenFds {
    /// What systemd passed to this process; none when `LISTEN_PID` names
    /// another process (the variables were inherited from a parent) or
    /// nothing was passed.
    pub fn from_env() -> Result<Self, ListenFdsError> {
        let names = std::env::var(LISTEN_FDNAMES).ok();
        let fds = listenfd::ListenFd::from_env();
        let names = parse_names(names.as_deref(), fds.len())?;
        Ok(Self::new(fds, names))
    }

    /// Nothing passed.
    pub fn empty() -> Self {
        Self::new(listenfd::ListenFd::empty(), Vec::new())
    }

    fn new(fds: listenfd::ListenFd, names: Vec<String>) -> Self {
        let taken = vec![false; names.len()];
        Self { fds, names, taken }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every passed descriptor's name, in order (names may repeat).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Names of the descriptors not taken: a daemon says what it was
    /// passed and did not use.
    pub fn untaken(&self) -> Vec<&str> {
        self.names
            .iter()
            .zip(&self.taken)
            .filter(|(_, taken)| !**taken)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The first untaken UDP socket named `name`.
    pub fn take_udp_socket(&mut self, name: &str) -> Result<Option<UdpSocket>, ListenFdsError> {
        self.take(name, "UDP socket", listenfd::ListenFd::take_udp_socket)
    }

    /// The first untaken TCP listener named `name`.
    pub fn take_tcp_listener(&mut self, name: &str) -> Result<Option<TcpListener>, ListenFdsError> {
        self.take(name, "TCP listener", listenfd::ListenFd::take_tcp_listener)
    }

    fn take<T>(
        &mut self,
        name: &str,
        kind: &'static str,
        adopt: impl FnOnce(&mut listenfd::ListenFd, usize) -> std::io::Result<Option<T>>,
    ) -> Result<Option<T>, ListenFdsError> {
        let Some(index) = self
            .names
            .iter()
            .zip(&self.taken)
            .position(|(n, taken)| n == name && !taken)
        else {
            return Ok(None);
        };
        let adopted = adopt(&mut self.fds, index).map_err(|source| ListenFdsError::Kind {
            name: name.to_string(),
            fd: index + 3,
            kind,
            source,
        })?;
        self.taken[index] = true;
        Ok(adopted)
    }
}

/// `LISTEN_FDNAMES` for `count` descriptors: `unknown` for each when it
/// is unset (systemd before 227, or a launcher that names none).
pub fn parse_names(value: Option<&str>, count: usize) -> Result<Vec<String>, ListenFdsError> {
    let Some(value) = value else {
        return Ok(vec![UNKNOWN_NAME.to_string(); count]);
    };
    let names: Vec<String> = if value.is_empty() {
        Vec::new()
    } else {
        value.split(':').map(str::to_string).collect()
    };
    if names.len() != count {
        return Err(ListenFdsError::NameCount {
            names: names.len(),
            fds: count,
        });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_are_colon_separated_in_descriptor_order() {
        assert_eq!(
            parse_names(Some("dns-udp:dns-tcp:healthz:metrics"), 4).unwrap(),
            ["dns-udp", "dns-tcp", "healthz", "metrics"]
        );
        // The store may hold two descriptors of one name.
        assert_eq!(
            parse_names(Some("metrics:metrics"), 2).unwrap(),
            ["metrics", "metrics"]
        );
    }

    #[test]
    fn unnamed_descriptors_are_unknown() {
        assert_eq!(parse_names(None, 2).unwrap(), ["unknown", "unknown"]);
        assert!(parse_names(None, 0).unwrap().is_empty());
        assert!(parse_names(Some(""), 0).unwrap().is_empty());
    }

    #[test]
    fn a_name_count_that_differs_trusts_nothing() {
        let err = parse_names(Some("dns-udp:dns-tcp"), 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LISTEN_FDNAMES names 2 descriptors but LISTEN_FDS passes 3; using none"
        );
        assert!(parse_names(Some(""), 1).is_err());
    }

    #[test]
    fn nothing_passed_gives_nothing() {
        let mut fds = ListenFds::empty();
        assert!(fds.is_empty());
        assert!(fds.take_udp_socket("dns-udp").unwrap().is_none());
        assert!(fds.take_tcp_listener("dns-tcp").unwrap().is_none());
        assert!(fds.untaken().is_empty());
    }
}
