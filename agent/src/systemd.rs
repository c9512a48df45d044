//! The agent under systemd (`Type=notify`): `systemctl restart` stops the
//! agent, then starts a new one, and in between no process reads the
//! node's DNS sockets. Kept open in systemd's file-descriptor store, they
//! queue what arrives meanwhile for the next agent instead of refusing it.
//!
//! - On start, the sockets systemd passes back (`LISTEN_FDS`, named
//!   `dns-udp`, `dns-tcp`, `healthz`, `metrics` as [`Sockets::by_name`]
//!   names them) take the path the handover's do. One bound to another
//!   address than configured (the flags changed) is closed and taken out
//!   of the store at once, before the agent binds anew: systemd's copy
//!   would hold the port (`0.0.0.0:10256` blocks `127.0.0.1:10256`).
//! - Once DNS serves, the store is made to hold exactly the sockets this
//!   agent serves, then `READY=1`.
//! - On SIGTERM, `STOPPING=1`; the agent answers the queries it read and
//!   exits without `shutdown(2)` on any socket: what is still queued waits
//!   in systemd's copy.
//!
//! The unit needs `Type=notify`, `NotifyAccess=main` and
//! `FileDescriptorStoreMax=` of at least 4 (deploy/systemd).

use std::net::{SocketAddr, TcpListener, UdpSocket};

use switchyard_daemon::systemd::{ListenFds, ListenFdsError, ServiceManager};

use crate::handover::Sockets;

/// Where the agent is configured to listen.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub dns: SocketAddr,
    pub healthz: SocketAddr,
    pub metrics: Option<SocketAddr>,
}

/// The sockets systemd passed to this start that are bound where the
/// agent listens; the others leave `manager`'s store. Call it first
/// thing: reading them unsets `LISTEN_PID` and `LISTEN_FDS`.
pub fn passed_sockets(manager: &ServiceManager, listening: &Listening) -> Sockets {
    let (passed, unknown) = taken_by_name();
    // DNS takes both or neither: one of them would hold the port the
    // other is bound anew on.
    let dns = bound_to(
        passed.dns_udp.as_ref().map(UdpSocket::local_addr),
        Some(listening.dns),
    ) && bound_to(
        passed.dns_tcp.as_ref().map(TcpListener::local_addr),
        Some(listening.dns),
    );
    let listener_at = |l: &TcpListener, addr| bound_to(Some(l.local_addr()), addr);
    let passed_names = names(&passed);
    let usable = Sockets {
        dns_udp: passed.dns_udp.filter(|_| dns),
        dns_tcp: passed.dns_tcp.filter(|_| dns),
        healthz: passed
            .healthz
            .filter(|l| listener_at(l, Some(listening.healthz))),
        metrics: passed.metrics.filter(|l| listener_at(l, listening.metrics)),
    };
    let usable_names = names(&usable);
    let stale: Vec<(&str, _)> = passed_names
        .into_iter()
        .filter(|name| !usable_names.contains(name))
        .chain(unknown.iter().map(String::as_str))
        .map(|name| (name, None))
        .collect();
    if !stale.is_empty() {
        let names: Vec<&str> = stale.iter().map(|(name, _)| *name).collect();
        tracing::info!(sockets = %names.join(" "), ?listening,
            "closing sockets the service manager passed that this agent does not listen on");
        manager.replace_stored_fds(&stale);
    }
    usable
}

fn bound_to(local: Option<std::io::Result<SocketAddr>>, addr: Option<SocketAddr>) -> bool {
    matches!((local, addr), (Some(Ok(local)), Some(addr)) if local == addr)
}

fn names(sockets: &Sockets) -> Vec<&'static str> {
    sockets
        .by_name()
        .into_iter()
        .filter_map(|(name, fd)| fd.map(|_| name))
        .collect()
}

/// Every socket systemd passed under a name the agent knows, and the
/// names it does not know.
fn taken_by_name() -> (Sockets, Vec<String>) {
    let mut fds = match ListenFds::from_env() {
        Ok(fds) => fds,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the sockets the service manager passed");
            return (Sockets::default(), Vec::new());
        }
    };
    if fds.is_empty() {
        return (Sockets::default(), Vec::new());
    }
    let sockets = Sockets {
        dns_udp: adopt(fds.take_udp_socket("dns-udp")),
        dns_tcp: adopt(fds.take_tcp_listener("dns-tcp")),
        metrics: adopt(fds.take_tcp_listener("metrics")),
        healthz: adopt(fds.take_tcp_listener("healthz")),
    };
    let unknown: Vec<String> = fds.untaken().into_iter().map(str::to_string).collect();
    tracing::info!(?sockets, unused = %unknown.join(" "), "took sockets from the service manager");
    (sockets, unknown)
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
