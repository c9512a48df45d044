//! `switchyard-bench`: Switchyard's benchmark suite at Kubernetes scale.
//!
//! Each subcommand runs one benchmark of issue 6 (`all` runs them in order),
//! prints a results table (median and p99 over repeated runs, the target,
//! PASS/MISS), and writes `bench-results/results.{csv,json,md}` plus PNG
//! plots of latency against scale. Parts that need root (nftables in network
//! namespaces, the lab) are skipped loudly when not run as root.
#![forbid(unsafe_code)]

mod api;
mod bench;
mod bins;
mod context;
mod control_plane;
mod fixture;
mod hollow;
mod identity;
mod light;
mod netns;
mod plot;
mod process;
mod real_agents;
mod report;
mod stats;
mod wire;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::context::Ctx;
use crate::report::Report;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard-bench",
    version,
    about = "Switchyard benchmark suite"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Smaller cluster and fewer repetitions (about a minute or two).
    #[arg(long, global = true)]
    quick: bool,
    /// Hollow agent counts for `programming` (default 100,500,1000; quick 25,50,100).
    #[arg(long, global = true, value_delimiter = ',')]
    agents: Vec<usize>,
    /// Run with this many Services instead of 10,000 (1,000 with --quick).
    #[arg(long, global = true, hide = true)]
    services: Option<usize>,
    /// Serve the loaded control planes with --insecure (no TLS), to set a
    /// benchmark's figures beside the TLS ones.
    #[arg(long, global = true)]
    plaintext: bool,
    /// Where results and plots go.
    #[arg(long, global = true, default_value = "bench-results")]
    out: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Subcommand)]
enum Command {
    /// Every benchmark, in order.
    All,
    /// 1. API write → ACK by every agent (hollow agents + real lab agents).
    Programming,
    /// 2. An agent starting against the big cluster until its table is complete.
    FullSync,
    /// 3. Agent-side apply time of one change, 10,000 vs 100 Services loaded.
    Incremental,
    /// Whole-agent push → ACK of one change (view, snapshot, data path,
    /// ACK), split into the data path and the rest, 10,000 vs 100 Services.
    WholeAgent,
    /// 4. New-connection latency and rate through a ClusterIP, 1 to 30,000 Services.
    Datapath,
    /// 5. Control plane and agent memory; bytes on the wire per change.
    Memory,
    /// 6. Durable writes per second and list latency.
    Api,
    /// Writes per second and programming latency with mutual TLS against --insecure.
    TlsCost,
    /// `kubectl get svc -A` over the loaded cluster, and Service writes per
    /// second through the Kubernetes REST API beside gRPC. Not part of `all`.
    KubeApi,
    /// Writes per second and programming latency on sled against a 3-member etcd.
    Store,
    /// DNS answer latency while the agent restarts hot and resyncs the big table.
    DnsLatency,
    /// A cluster name's DNS latency and the agent's RSS while 20,000
    /// questions/s for outside names flood its responder (their upstream
    /// never answers). Not part of `all`.
    DnsFlood,
    /// Churn soak: endpoint changes as fast as the control plane takes them,
    /// 1,000 Services, 2 real agents and hollow ones; memory at each tenth.
    /// Not part of `all`.
    Soak {
        /// Endpoint changes to make.
        #[arg(long, default_value_t = 1_000_000)]
        changes: u64,
        /// Hollow agents next to the 2 real ones.
        #[arg(long, default_value_t = 100)]
        hollow: usize,
    },
    /// Internal: run inside a network namespace by `incremental`.
    #[command(hide = true)]
    IncrementalInner {
        #[arg(long)]
        services: usize,
        #[arg(long)]
        reps: usize,
    },
    /// Internal: run inside a network namespace by `whole-agent`.
    #[command(hide = true)]
    WholeAgentInner {
        #[arg(long)]
        services: usize,
        #[arg(long)]
        reps: usize,
    },
    /// Internal: the flood of `dns-flood`, run in the agent's namespace.
    #[command(hide = true)]
    DnsFloodInner {
        #[arg(long)]
        server: std::net::SocketAddr,
        /// Where to bind the upstream that never answers.
        #[arg(long)]
        sink: std::net::SocketAddr,
        /// The agent's metrics listener, read at the end.
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
        #[arg(long, default_value_t = 20_000)]
        rate: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Internal: a one-line TCP server for `datapath`.
    #[command(hide = true)]
    Backend {
        #[arg(long)]
        listen: String,
    },
}

/// The agents' allocator, so hollow agents cost what real ones do.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::IncrementalInner { services, reps } => {
            return bench::incremental::inner(services, reps).await;
        }
        Command::WholeAgentInner { services, reps } => {
            return bench::whole_agent::inner(services, reps).await;
        }
        Command::Backend { listen } => return bench::datapath::backend(&listen).await,
        Command::DnsFloodInner {
            server,
            sink,
            metrics,
            rate,
            seconds,
        } => return bench::dns_flood::inner(server, sink, metrics, rate, seconds).await,
        _ => {}
    }
    let root = process::is_root();
    let bins = bins::prepare()?;
    let mut ctx = Ctx::new(bins, args.quick, root)?;
    ctx.agents = args.agents.clone();
    ctx.out = args.out.clone();
    if args.plaintext {
        ctx.transport = control_plane::Transport::Plaintext;
    }
    if let Some(services) = args.services {
        ctx.shape.services = services;
        ctx.services_override = true;
    }
    let mut report = Report {
        command: command_line(),
        machine: machine(),
        ..Default::default()
    };
    if !root {
        report.skip(
            "not running as root: the nftables, network-namespace and lab parts \
             (full-sync, incremental, whole-agent, datapath, real agents in programming, agent memory) are skipped",
        );
    }
    let started = std::time::Instant::now();
    // On Ctrl-C the benchmark future is dropped, so every guard runs:
    // processes stop and namespaces are deleted.
    let result = tokio::select! {
        r = bench::run(&args.command, &ctx, &mut report) => r,
        _ = shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Err(e) = &result {
        report.skip(format!("the run stopped early: {e:#}"));
    }
    eprintln!("\nfinished in {:.0} s", started.elapsed().as_secs_f64());
    finish(&report, &args.out)?;
    result
}

fn finish(report: &Report, out: &std::path::Path) -> anyhow::Result<()> {
    report.write_files(out)?;
    let plots = plot::write_all(report, out)?;
    println!("\n{}", report.markdown());
    println!(
        "results: {}/results.csv, results.json, results.md",
        out.display()
    );
    for p in plots {
        println!("plot: {}", p.display());
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cargo run --release -p switchyard-bench -- {}",
        args.join(" ")
    )
}

/// CPU model, core count and memory, for the results header.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem}, Linux {kernel}")
}
