//! `swctl port-forward TARGET [LOCAL:]REMOTE...`: listens locally and carries
//! every accepted connection through the control plane to one pod of the
//! target, printing kubectl's lines. A failed connection is reported and
//! closed; the forward keeps serving the others until SIGINT or SIGTERM.
//! Except, as with kubectl, when a connection is lost because its pod was
//! deleted or the pod's node agent went away: then every connection is
//! reset and swctl fails with `error: lost connection to pod`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::cli::PortForwardArgs;
use crate::login::Login;
use crate::portforward::connection::{self, ConnectionError, Forward};
use crate::portforward::spec::{listen_addresses, PortPair, Target};
use crate::portforward::{connect, resolve};

pub async fn run(login: &Login, namespace: &str, args: &PortForwardArgs) -> anyhow::Result<bool> {
    let target = Target::parse(&args.target)?;
    let pairs = args
        .ports
        .iter()
        .map(|p| PortPair::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let addresses = listen_addresses(&args.address)?;
    let mut client = connect(login).await?;
    let mut listeners = Vec::new();
    for pair in pairs {
        // Fails early, as kubectl does, when the target cannot be reached now.
        let route = resolve(&mut client, namespace, &target, pair.remote).await?;
        let pod_port = u16::try_from(route.pod_port).unwrap_or(pair.remote);
        let fwd = Arc::new(Forward {
            client: client.clone(),
            namespace: namespace.to_string(),
            target: target.clone(),
            remote: pair.remote,
        });
        for listener in bind(&addresses, pair.local).await? {
            let addr = listener.local_addr().context("reading a bound address")?;
            say(&format!("Forwarding from {addr} -> {pod_port}"));
            listeners.push((listener, fwd.clone(), pod_port));
        }
    }
    let (lost_tx, mut lost) = watch::channel(false);
    let (open_tx, mut open) = mpsc::channel(1);
    let ending = Ending {
        lost: lost_tx,
        _open: open_tx,
    };
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(listener, fwd, pod_port)| {
            tokio::spawn(accept_loop(listener, fwd, pod_port, ending.clone()))
        })
        .collect();
    drop(ending);
    // Only the accept loops and connections send: they never all end.
    let lost = async move { lost.wait_for(|lost| *lost).await.is_ok() };
    tokio::select! {
        () = shutdown_signal() => Ok(true),
        true = lost => {
            for task in &accepting {
                task.abort();
            }
            // Every connection holds a sender: once all are dropped, every
            // local socket has been reset.
            let _ = tokio::time::timeout(RESET_WAIT, open.recv()).await;
            bail!("lost connection to pod")
        }
    }
}

/// How long the connections get to reset their sockets before swctl exits.
const RESET_WAIT: Duration = Duration::from_secs(5);

/// What each accept loop and connection holds of the forward's ending.
#[derive(Clone)]
struct Ending {
    /// Set by the first connection whose pod was lost.
    lost: watch::Sender<bool>,
    /// Never sent on: dropped when its holder is done.
    _open: mpsc::Sender<()>,
}

impl Ending {
    /// Resolves once some connection lost its pod.
    fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.lost.subscribe();
        async move {
            if rx.wait_for(|lost| *lost).await.is_err() {
                // Cannot happen while the caller holds `self`.
                std::future::pending::<()>().await;
            }
        }
    }

    fn lose(&self) {
        self.lost.send_replace(true);
    }
}

/// Binds every address on one port; a free port picked for the first
/// address is reused for the others. Like kubectl, `localhost`'s IPv6 half
/// may fail on hosts without IPv6.
async fn bind(addresses: &[IpAddr], local: Option<u16>) -> anyhow::Result<Vec<TcpListener>> {
    let mut port = local.unwrap_or(0);
    let mut bound = Vec::new();
    for ip in addresses {
        let addr = SocketAddr::new(*ip, port);
        match TcpListener::bind(addr).await {
            Ok(l) => {
                port = l.local_addr().context("reading a bound address")?.port();
                bound.push(l);
            }
            Err(e) if ip.is_ipv6() && ip.is_loopback() && addresses.len() > 1 => {
                eprintln!("Unable to listen on {addr}: {e}");
            }
            Err(e) => bail!("unable to listen on {addr}: {e}"),
        }
    }
    Ok(bound)
}

async fn accept_loop(listener: TcpListener, fwd: Arc<Forward>, pod_port: u16, ending: Ending) {
    let local = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                say(&format!("Handling connection for {local}"));
                tokio::spawn(serve_one(
                    fwd.clone(),
                    socket,
                    local,
                    pod_port,
                    ending.clone(),
                ));
            }
            Err(e) => {
                // E.g. out of file descriptors: report, back off, go on.
                eprintln!("error: accepting a connection on port {local}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_one(
    fwd: Arc<Forward>,
    socket: tokio::net::TcpStream,
    local: u16,
    pod_port: u16,
    ending: Ending,
) {
    match connection::forward(fwd, socket, ending.lost()).await {
        Ok(_) | Err(ConnectionError::Ended) => {}
        Err(e) => {
            eprintln!("error: an error occurred forwarding {local} -> {pod_port}: {e}");
            if matches!(e, ConnectionError::Lost(_)) {
                ending.lose();
            }
        }
    }
}

/// Prints a line; a closed stdout must not bring the forward down.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
