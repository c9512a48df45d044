//! The agent under systemd (`Type=notify`): `systemctl restart` stops the
//! agent, then starts a new one, and in between no process reads the
//! node's DNS sockets. Kept open in systemd's file-descriptor store, they
//! queue what arrives meanwhile for the next agent instead of refusing it.
//!
//! - On start, the sockets systemd passes back (`LISTEN_FDS`, named
//!   `dns-udp`, `dns-tcp`, `healthz`, `metrics` as [`Sockets::by_name`]
//!   names them) take the path the handover's do: each is used when it is
//!   bound to the configured address, else the agent binds anew.
//! - Once DNS serves, the store is made to hold exactly the sockets this
//!   agent serves, then `READY=1`.
//! - On SIGTERM, `STOPPING=1`; the agent answers the queries it read and
//!   exits without `shutdown(2)` on any socket: what is still queued waits
//!   in systemd's copy.
//!
//! The unit needs `Type=notify`, `NotifyAccess=main` and
//! `FileDescriptorStoreMax=` of at least 4 (deploy/systemd).

use switchyard_daemon::systemd::{ListenFds, ListenFdsError, ServiceManager};

use crate::handover::Sockets;

/// The sockets systemd passed to this start, by name. Call it first
/// thing: reading them unsets `LISTEN_PID` and `LISTEN_FDS`.
pub fn passed_sockets() -> Sockets {
    let mut fds = match ListenFds::from_env() {
        Ok(fds) => fds,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the sockets the service manager passed");
            return Sockets::default();
        }
    };
    if fds.is_empty() {
        return Sockets::default();
    }
    let sockets = Sockets {
        dns_udp: adopt(fds.take_udp_socket("dns-udp")),
        dns_tcp: adopt(fds.take_tcp_listener("dns-tcp")),
        metrics: adopt(fds.take_tcp_listener("metrics")),
        healthz: adopt(fds.take_tcp_listener("healthz")),
    };
    tracing::info!(?sockets, unused = %fds.untaken().join(" "), "took sockets from the service manager");
    sockets
}

fn adopt<T>(taken: Result<Option<T>, ListenFdsError>) -> Option<T> {
    taken
        .inspect_err(
            |e| tracing::warn!(error = %e, "not using a socket the service manager passed"),
        )
        .ok()
        .flatten()
}

/// Keeps the sockets this agent serves in systemd's store, under their
/// names, in place of what it held (a socket passed but not used, bound
/// to an address no longer configured, leaves it and frees its port).
pub fn keep(manager: &ServiceManager, held: &Sockets) {
    manager.replace_stored_fds(&held.by_name());
}
