//! The DNS server: binds the responder's sockets and serves them over UDP
//! ([`super::udp`]) and TCP ([`super::tcp`]), our own loops, which can stop
//! reading without dropping what they read. Each question goes to the
//! [`Responder`]: the UDP loop answers the cluster zone inline, so those
//! answers never queue behind forwarded ones, and only forwarded questions,
//! each holding a forwarder slot, get tasks, so the work in flight is
//! bounded whatever the clients send.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::forward::{ForwardMetrics, Forwarder, DEFAULT_FORWARD_MAX};
use super::DnsError;
use super::{tcp, udp};
use crate::view::ClusterView;

/// How many times to look for a port free for both UDP and TCP when the
/// caller asked for port 0.
const PORT_TRIES: usize = 16;

/// A bound, not yet serving responder. Binding first lets the caller report
/// a taken port or a missing address before it spawns anything.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    view: watch::Receiver<Arc<ClusterView>>,
    upstreams: Vec<SocketAddr>,
    forward_max: usize,
    forward_metrics: ForwardMetrics,
}

/// Binds UDP and TCP on `listen` (with port 0: one port free for both).
pub async fn bind(
    listen: SocketAddr,
    view: watch::Receiver<Arc<ClusterView>>,
    upstreams: Vec<SocketAddr>,
) -> Result<DnsServer, DnsError> {
    let (udp, tcp) = bind_both(listen).await?;
    Ok(DnsServer::new(udp, tcp, view, upstreams))
}

/// A responder on sockets bound before, by this process or the agent it
/// took over from ([`crate::handover`]).
pub fn from_std(
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    view: watch::Receiver<Arc<ClusterView>>,
    upstreams: Vec<SocketAddr>,
) -> Result<DnsServer, DnsError> {
    let tokio_sockets = || {
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        Ok::<_, std::io::Error>((UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?))
    };
    let (udp, tcp) = tokio_sockets().map_err(|e| DnsError::Stopped(e.to_string()))?;
    Ok(DnsServer::new(udp, tcp, view, upstreams))
}

async fn bind_both(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let tries = if listen.port() == 0 { PORT_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| DnsError::Bind {
                proto: "udp",
                addr: listen,
                source,
            })?;
        let addr = udp.local_addr().map_err(|source| DnsError::Bind {
            proto: "udp",
            addr: listen,
            source,
        })?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => {
                last = Some(DnsError::Bind {
                    proto: "tcp",
                    addr,
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or(DnsError::Stopped("no port tried".into())))
}

impl DnsServer {
    fn new(
        udp: UdpSocket,
        tcp: TcpListener,
        view: watch::Receiver<Arc<ClusterView>>,
        upstreams: Vec<SocketAddr>,
    ) -> Self {
        DnsServer {
            udp,
            tcp,
            view,
            upstreams,
            forward_max: DEFAULT_FORWARD_MAX,
            forward_metrics: ForwardMetrics::default(),
        }
    }

    /// At most `max` questions wait on the upstreams at once (UDP and TCP
    /// together); more are REFUSED at once. Default [`DEFAULT_FORWARD_MAX`].
    pub fn forward_max(mut self, max: usize) -> Self {
        self.forward_max = max;
        self
    }

    /// Counts forwarding in `metrics` (the agent's registered ones).
    pub fn counting(mut self, metrics: ForwardMetrics) -> Self {
        self.forward_metrics = metrics;
        self
    }

    /// Second handles on the two sockets, to hand over to a successor
    /// while this server keeps reading them.
    pub fn sockets(&self) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
        let udp = self.udp.as_fd().try_clone_to_owned()?;
        let tcp = self.tcp.as_fd().try_clone_to_owned()?;
        Ok((udp.into(), tcp.into()))
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> Result<SocketAddr, DnsError> {
        self.udp
            .local_addr()
            .map_err(|e| DnsError::Stopped(e.to_string()))
    }

    /// Serves in tasks of its own until [`Serving::stop`].
    pub fn start(self) -> Serving {
        let responder = Arc::new(Responder::new(
            self.view,
            Forwarder::bounded(self.upstreams, self.forward_max, self.forward_metrics),
        ));
        let (stop, stopped) = watch::channel(false);
        let udp = tokio::spawn(udp::serve(self.udp, responder.clone(), stopped.clone()));
        let tcp = tokio::spawn(tcp::serve(self.tcp, responder, stopped));
        Serving { stop, udp, tcp }
    }

    /// Serves until a socket fails; dropping the future does not stop the
    /// server (use [`Self::start`] for that).
    pub async fn run(self) -> Result<(), DnsError> {
        let Serving {
            udp,
            tcp,
            stop: _stop,
        } = self.start();
        let finished = tokio::select! {
            done = udp => done,
            done = tcp => done,
        };
        finished.map_err(|e| DnsError::Stopped(e.to_string()))?
    }
}

/// A responder at work.
pub struct Serving {
    stop: watch::Sender<bool>,
    udp: JoinHandle<Result<(), DnsError>>,
    tcp: JoinHandle<Result<(), DnsError>>,
}

impl Serving {
    /// Stops reading the sockets and answers every query already read,
    /// so a process that hands its sockets over and exits loses none (a
    /// TCP client whose connection this process holds reconnects).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in [self.udp, self.tcp] {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "DNS responder stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "DNS responder task failed"),
            }
        }
    }
}

pub(super) use super::responder::Responder;
