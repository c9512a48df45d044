//! `swctl port-forward TARGET [LOCAL:]REMOTE...`: listens locally and carries
//! every accepted connection through the control plane to one pod of the
//! target, printing kubectl's lines. A failed connection is reported and
//! closed; the forward keeps serving the others until SIGINT or SIGTERM.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpListener;

use crate::cli::PortForwardArgs;
use crate::login::Login;
use crate::portforward::connection::{self, Forward};
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
    for (listener, fwd, pod_port) in listeners {
        tokio::spawn(accept_loop(listener, fwd, pod_port));
    }
    shutdown_signal().await;
    Ok(true)
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

async fn accept_loop(listener: TcpListener, fwd: Arc<Forward>, pod_port: u16) {
    let local = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                say(&format!("Handling connection for {local}"));
                tokio::spawn(serve_one(fwd.clone(), socket, local, pod_port));
            }
            Err(e) => {
                // E.g. out of file descriptors: report, back off, go on.
                eprintln!("error: accepting a connection on port {local}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_one(fwd: Arc<Forward>, socket: tokio::net::TcpStream, local: u16, pod_port: u16) {
    if let Err(e) = connection::forward(fwd, socket).await {
        eprintln!("error: an error occurred forwarding {local} -> {pod_port}: {e}");
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
