//! `switchyard-lab up`: a lab for demos and manual poking.

use anyhow::{Context, Result};
use clap::Args;
use switchyard_lab::{Lab, LabConfig};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = 2)]
    pods_per_node: usize,
    /// Namespace prefix ([a-z0-9], ≤16 chars); default: a unique `sy<pid>x<n>`.
    #[arg(long)]
    prefix: Option<String>,
}

pub async fn run(args: UpArgs) -> Result<()> {
    // Handlers first, so a Ctrl-C during setup still ends in a clean teardown.
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let cfg = LabConfig {
        nodes: args.nodes,
        pods_per_node: args.pods_per_node,
    };
    let lab = match &args.prefix {
        Some(prefix) => Lab::with_prefix(cfg, prefix),
        None => Lab::new(cfg),
    }
    .context("building the lab")?;
    print!("{}", lab.describe());
    println!("shell in a host: ip netns exec {}-n1 bash", lab.prefix());
    println!(
        "leftovers after a crash: switchyard-lab down --prefix {}-",
        lab.prefix()
    );
    println!("lab up; Ctrl-C or SIGTERM tears it down");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    println!("tearing down {}", lab.prefix());
    drop(lab);
    Ok(())
}
