//! `switchyard-lab backend`: the test workload run inside pod namespaces.
//! Every answer names the backend and the client address it saw, so tests can
//! check load balancing and source-IP preservation/masquerade in one request.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use crate::http;

#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Name reported in every answer.
    #[arg(long)]
    name: String,
    /// Address to serve on (repeatable); TCP/HTTP unless `--udp`.
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Serve the `--listen` addresses as UDP echo instead of HTTP.
    #[arg(long)]
    udp: bool,
    /// Extra UDP echo addresses (repeatable), to serve TCP and UDP at once.
    #[arg(long)]
    udp_listen: Vec<SocketAddr>,
}

/// Binds everything first, then prints `ready` (what tests wait for), then
/// serves until a listener fails.
pub async fn run(args: BackendArgs) -> Result<()> {
    let name: Arc<str> = Arc::from(args.name.as_str());
    let (tcp, mut udp) = if args.udp {
        (Vec::new(), args.listen)
    } else {
        (args.listen, Vec::new())
    };
    udp.extend(args.udp_listen);
    if tcp.is_empty() && udp.is_empty() {
        bail!("nothing to serve: give --listen or --udp-listen");
    }
    let mut tasks = JoinSet::new();
    for addr in tcp {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding tcp {addr}"))?;
        println!("listening tcp {addr}");
        tasks.spawn(serve_tcp(listener, Arc::clone(&name)));
    }
    for addr in udp {
        let socket = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding udp {addr}"))?;
        println!("listening udp {addr}");
        tasks.spawn(serve_udp(socket, Arc::clone(&name)));
    }
    println!("backend {name} ready");
    while let Some(done) = tasks.join_next().await {
        done.context("listener task panicked")??;
    }
    Ok(())
}

async fn serve_tcp(listener: TcpListener, name: Arc<str>) -> Result<()> {
    loop {
        let (stream, peer) = listener.accept().await.context("accepting")?;
        let name = Arc::clone(&name);
        tokio::spawn(async move {
            if let Err(e) = http::serve_connection(stream, peer, &name).await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
}

async fn serve_udp(socket: UdpSocket, name: Arc<str>) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (_, peer) = socket.recv_from(&mut buf).await.context("receiving")?;
        let reply = identity(&name, peer);
        if let Err(e) = socket.send_to(reply.as_bytes(), peer).await {
            eprintln!("udp reply to {peer}: {e}");
        }
    }
}

/// The answer line: `NAME <client-ip>:<client-port>\n`, an IPv6 address
/// in brackets (IPv4-mapped IPv6 peers are shown as plain IPv4).
pub fn identity(name: &str, peer: SocketAddr) -> String {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    format!("{name} {peer}\n")
}
