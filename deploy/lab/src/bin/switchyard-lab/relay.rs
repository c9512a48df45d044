//! `switchyard-lab relay`: forwards every TCP connection it accepts to one
//! address, bytes untouched (TLS passes through), so a test can give the
//! control plane a second address reached by another path.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Where to accept connections.
    #[arg(long)]
    listen: SocketAddr,
    /// Where each one goes.
    #[arg(long)]
    to: SocketAddr,
}

pub async fn run(args: &RelayArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!("relaying {} -> {}", args.listen, args.to);
    let to = args.to;
    loop {
        let (mut inbound, _) = listener.accept().await.context("accepting")?;
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
