//! `switchyard-lab demo`: the README's first run. A control plane on
//! 127.0.0.1:7443 with its sled store and its PKI (so `swctl` works from
//! this shell with the admin.conf it writes), a two-node lab whose agents
//! join with tokens, the frontend example, and a curl through its
//! ClusterIP and its NodePort. With `--ha`: three etcd members on
//! loopback and two control planes on them (7443 and 7444), the agents
//! knowing both.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use switchyard_lab::cluster::{bin_dir, Cluster, ClusterConfig, Placement};
use switchyard_lab::{missing_requirement, LabConfig};
use tokio::signal::unix::{signal, SignalKind};

const FRONTEND: &str = include_str!("../../../../examples/frontend.yaml");
const FRONTEND_NODEPORT: &str = include_str!("../../../../examples/frontend-nodeport.yaml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the control plane serves gRPC (loopback only).
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: String,
    /// The control plane's sled store.
    #[arg(long, default_value = "./switchyard-data")]
    data_dir: PathBuf,
    /// Tear down right after the demo instead of waiting for Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// High availability: 3 etcd members (Debian's etcd-server, data on
    /// tmpfs) and 2 control planes on them, on the next port too.
    #[arg(long)]
    ha: bool,
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    if let Some(reason) = missing_requirement() {
        return control_plane_only(&args, &reason);
    }
    anyhow::ensure!(
        !args.ha || switchyard_lab::find_tool("etcd").is_some(),
        "--ha needs etcd: apt-get install etcd-server"
    );
    let cluster = start(&args)?;
    show(&cluster)?;
    if args.exit {
        return Ok(());
    }
    let swctl = cluster.bin("swctl");
    let config = absolute(&cluster.admin_config());
    println!("\nThe demo keeps running. Try, from this machine:");
    println!("  export SWITCHYARD_CONFIG={}", config.display());
    if args.ha {
        println!("  export SWITCHYARD_SERVER={}", cluster.servers());
        println!("  {swctl} get controlplanes");
    }
    println!("  {swctl} get svc,ep");
    println!("  {swctl} get nodes");
    println!("  {swctl} describe svc frontend-svc");
    println!(
        "  KUBECONFIG={} kubectl get svc,ep   # or any Kubernetes client",
        config.display()
    );
    println!(
        "  ip netns exec {}-client curl http://172.18.0.11:30080/",
        cluster.lab.prefix()
    );
    println!(
        "Ctrl-C tears the lab down; the store stays in {}.",
        args.data_dir.display()
    );
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    println!("tearing down {}", cluster.lab.prefix());
    Ok(())
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Without root (or ip, nft, curl) there is no lab: serve the API alone, loudly.
fn control_plane_only(args: &DemoArgs, reason: &str) -> Result<()> {
    eprintln!("NOTE: the demo lab cannot start: {reason}.");
    eprintln!("It needs root and `apt-get install nftables iproute2 curl`.");
    eprintln!(
        "Running the control plane alone on {}; Ctrl-C stops it. swctl and kubectl work against it:",
        args.listen
    );
    eprintln!(
        "  {} --config {} get svc",
        bin_dir()?.join("swctl").display(),
        absolute(&args.data_dir.join("admin.conf")).display()
    );
    eprintln!(
        "  KUBECONFIG={} kubectl get svc",
        absolute(&args.data_dir.join("admin.conf")).display()
    );
    let bin = bin_dir()?.join("switchyard-control-plane");
    let status = std::process::Command::new(&bin)
        .args(["--listen", &args.listen, "--data-dir"])
        .arg(&args.data_dir)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    anyhow::ensure!(status.success(), "the control plane exited with {status}");
    Ok(())
}

fn start(args: &DemoArgs) -> Result<Cluster> {
    println!(
        "Starting the control plane on {} and a two-node lab…",
        args.listen
    );
    let (etcd_members, control_planes) = if args.ha { (3, 2) } else { (0, 1) };
    if args.ha {
        println!("…with 3 etcd members and a second control plane on the next port");
    }
    let cfg = ClusterConfig {
        lab: LabConfig {
            nodes: 2,
            pods_per_node: 2,
        },
        placement: Placement::OnHost {
            listen: args.listen.clone(),
            data_dir: args.data_dir.clone(),
        },
        etcd_members,
        control_planes,
        ..Default::default()
    };
    let cluster = Cluster::start(cfg).context("starting the cluster")?;
    let backends = [
        cluster.backend(1, 1, "frontend-1", 5000)?,
        cluster.backend(2, 1, "frontend-2", 5000)?,
    ];
    // The backends live as long as the lab: they are stopped at teardown.
    std::mem::forget(backends);
    print!("{}", cluster.apply(FRONTEND)?);
    print!("{}", cluster.apply(FRONTEND_NODEPORT)?);
    cluster.wait_synced(Duration::from_secs(20))?;
    Ok(cluster)
}

fn show(cluster: &Cluster) -> Result<()> {
    println!("\n$ swctl get controlplanes");
    print!("{}", cluster.swctl_ok(&["get", "controlplanes"])?);
    println!("\n$ swctl get svc,ep");
    print!("{}", cluster.swctl_ok(&["get", "svc,ep"])?);
    println!("\n$ swctl get nodes");
    print!("{}", cluster.swctl_ok(&["get", "nodes"])?);
    let svc: serde_json::Value =
        serde_json::from_str(&cluster.swctl_ok(&["get", "svc", "frontend-svc", "-o", "json"])?)?;
    let ip = svc["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod = cluster.lab.pod(1, 2).ns.clone();
    let client = cluster.lab.client().ns.clone();
    for (from, url) in [
        (&pod, format!("http://{ip}/")),
        (&client, "http://172.18.0.11:30080/".to_string()),
    ] {
        println!(
            "\n$ ip netns exec {from} curl -s {url}   # {}",
            if from == &pod {
                "ClusterIP, from a pod"
            } else {
                "NodePort, from outside"
            }
        );
        for _ in 0..4 {
            let body = cluster
                .lab
                .exec_ok(from, &["curl", "-sS", "--max-time", "3", &url])?;
            print!("{body}");
        }
    }
    Ok(())
}
