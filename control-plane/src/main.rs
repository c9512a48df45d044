//! `switchyard-control-plane`: the API server with its embedded sled store,
//! or on etcd beside other control planes.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use ipnet::Ipv4Net;
use switchyard_control_plane::allocator::cluster_ip::ServiceCidrs;
use switchyard_control_plane::registry::RegistryConfig;
use switchyard_control_plane::server::{Security, Server, ServerConfig, ServerError};
use switchyard_control_plane::store::EtcdConfig;
use switchyard_control_plane::{health, metrics, node_lifecycle};
use switchyard_daemon::systemd::ServiceManager;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard-control-plane",
    version,
    about = "Switchyard control plane: API server and store"
)]
struct Args {
    /// A YAML file of settings, one key per flag in Kubernetes' camelCase
    /// (`--node-ip` is `nodeIP`, `--data-dir` is `dataDir`); a flag given
    /// on the command line wins over the file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the embedded sled store.
    #[arg(long, default_value = "./switchyard-data")]
    data_dir: PathBuf,
    /// Address for the gRPC API (swctl and agents).
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// CIDR that ClusterIPs are allocated from; for dual-stack Services,
    /// one IPv4 and one IPv6 CIDR, comma-separated, the first being the
    /// cluster's primary family (an IPv6 CIDR's mask must be >= 108).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: ServiceCidrs,
    /// Range that NodePorts are allocated from, as FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    node_port_range: RangeInclusive<u16>,
    /// CIDR that LoadBalancer ingress addresses are allocated from; without
    /// it, LoadBalancer Services stay <pending> and work as NodePorts.
    #[arg(long)]
    lb_pool: Option<Ipv4Net>,
    /// Revisions of history kept for watches and agents to resume from.
    #[arg(long, default_value_t = 100_000)]
    log_retention: u64,
    /// DNS domain of the cluster, answered by every agent.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Address pods use as their nameserver (default: the 10th address of the service CIDR).
    #[arg(long)]
    cluster_dns: Option<Ipv4Addr>,
    /// Address to serve Prometheus metrics (`/metrics`) and health
    /// (`/livez`, `/healthz`, `/readyz`) on; off when unset.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Also serve the API on this Unix socket, for agents in other network
    /// namespaces of this machine (agents use `--control-plane unix://PATH`).
    #[arg(long)]
    listen_unix: Option<PathBuf>,
    /// An address (IP or DNS name) agents and swctl reach this control
    /// plane by (repeatable): it goes into the serving certificate and
    /// into the commands `swctl create token` prints.
    #[arg(long = "advertise-address")]
    advertise_addresses: Vec<String>,
    /// Lifetime of the node certificates this control plane signs; agents
    /// renew at about 80% of it.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    node_cert_ttl: Duration,
    /// Append an audit event (JSON lines, Kubernetes' audit.k8s.io/v1
    /// shape, level Metadata) for every write, identity change and
    /// port-forward session.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// etcd v3 members (`https://HOST:2379`, or `http://` for a plaintext
    /// etcd) to keep the store in instead of sled, comma-separated or
    /// repeated: several control planes on one etcd serve one cluster.
    #[arg(long = "etcd-endpoints", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// CA bundle that etcd's serving certificates chain to.
    #[arg(long = "etcd-cafile")]
    etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd's mutual TLS.
    #[arg(long = "etcd-certfile")]
    etcd_certfile: Option<PathBuf>,
    /// Key of `--etcd-certfile`.
    #[arg(long = "etcd-keyfile")]
    etcd_keyfile: Option<PathBuf>,
    /// This control plane's name among those sharing one etcd, unique
    /// among the live ones (default: `<hostname>-<port>` for a wildcard
    /// `--listen`, else `<hostname>-<ip>-<port>`, e.g.
    /// `myhost-127-0-0-2-7443`, so control planes of one host on
    /// different addresses differ).
    #[arg(long)]
    name: Option<String>,
    /// Key prefix in etcd, so several clusters can share one etcd.
    #[arg(long = "etcd-prefix", default_value = "/switchyard")]
    etcd_prefix: String,
    /// A node whose agent has not been heard from for this long turns
    /// NotReady and its pods' endpoints leave every data path (at least
    /// 5s; agents send a heartbeat every tenth of it, at most every 2s).
    #[arg(long = "node-monitor-grace-period", default_value = "20s", value_parser = parse_grace)]
    node_monitor_grace_period: Duration,
    /// Serve plaintext and check nobody: for development only.
    #[arg(long)]
    insecure: bool,
}

fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(s)
        .with_context(|| format!("invalid duration {s:?} (e.g. 24h, 20s)"))?;
    if d < Duration::from_secs(1) {
        bail!("must be at least 1s");
    }
    Ok(d)
}

fn parse_grace(s: &str) -> anyhow::Result<Duration> {
    let d = parse_duration(s)?;
    if d < node_lifecycle::MIN_GRACE {
        bail!("must be at least 5s");
    }
    Ok(d)
}

fn default_name(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|_| "control-plane".to_string());
    name_for(&host, listen)
}

/// `<host>-<port>` for a wildcard listener (one per host and port), else
/// `<host>-<ip>-<port>` with the IP's dots (or colons) as dashes, so the
/// name stays DNS-1123-like.
fn name_for(host: &str, listen: SocketAddr) -> String {
    match listen.ip() {
        ip if ip.is_unspecified() => format!("{host}-{}", listen.port()),
        ip => {
            let ip = ip.to_string().replace(['.', ':'], "-");
            format!("{host}-{ip}-{}", listen.port())
        }
    }
}

/// Kubernetes' convention: the cluster DNS Service takes the 10th address.
/// The tenth address of the IPv4 service range, as kubeadm picks the
/// cluster DNS address (agents answer DNS on IPv4).
fn tenth_address(cidrs: &ServiceCidrs) -> Ipv4Addr {
    let v4 = cidrs.ranges().find_map(|r| match r.cidr() {
        ipnet::IpNet::V4(v4) => Some(v4),
        ipnet::IpNet::V6(_) => None,
    });
    let network = v4.map_or(Ipv4Addr::new(10, 96, 0, 0), |net| net.network());
    Ipv4Addr::from(u32::from(network).saturating_add(10))
}

fn parse_port_range(s: &str) -> anyhow::Result<RangeInclusive<u16>> {
    let (a, b) = s
        .split_once('-')
        .context("expected FIRST-LAST, e.g. 30000-32767")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if a == 0 || a > b {
        bail!("invalid port range {s}: need 1 <= FIRST <= LAST <= 65535");
    }
    Ok(a..=b)
}

/// jemalloc rather than glibc's malloc, which keeps an arena per thread
/// and the memory freed in each: at 100,000 Pods the control plane's peak
/// RSS was ~40 MiB lower with jemalloc (see the agent's twin).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = switchyard_daemon::config_file::parse::<Args>();
    let service_manager = ServiceManager::from_env();
    service_manager.spawn_watchdog();
    let shutdown = shutdown_signal()?;
    let etcd = (!args.etcd_endpoints.is_empty()).then(|| EtcdConfig {
        endpoints: args.etcd_endpoints.clone(),
        ca_file: args.etcd_cafile.clone(),
        cert_file: args.etcd_certfile.clone(),
        key_file: args.etcd_keyfile.clone(),
        prefix: args.etcd_prefix.clone(),
    });
    let cfg = ServerConfig {
        data_dir: args.data_dir.clone(),
        etcd,
        name: args
            .name
            .clone()
            .unwrap_or_else(|| default_name(args.listen)),
        listen: args.listen,
        registry: RegistryConfig {
            service_cidrs: args.service_cidr.clone(),
            node_port_range: args.node_port_range,
            lb_pool: args.lb_pool,
            log_retention: args.log_retention,
        },
        cluster_domain: args.cluster_domain.trim_end_matches('.').to_string(),
        cluster_dns: args
            .cluster_dns
            .unwrap_or_else(|| tenth_address(&args.service_cidr)),
        listen_unix: args.listen_unix.clone(),
        security: if args.insecure {
            Security::Insecure
        } else {
            Security::Tls {
                advertise: args.advertise_addresses.clone(),
                node_cert_ttl: args.node_cert_ttl,
            }
        },
        audit_log: args.audit_log.clone(),
        node_grace: args.node_monitor_grace_period,
    };
    let server = match Server::bind(cfg).await {
        Ok(server) => server,
        // The sentence says what to do; nothing to add to it.
        Err(e @ ServerError::NameTaken { .. }) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        Err(e) => return Err(e).context("starting the control plane"),
    };
    let addr = server.local_addr().context("reading the bound address")?;
    if let Some(metrics_addr) = args.metrics_listen {
        let app =
            metrics::router(server.metrics.clone()).merge(health::router(server.health.clone()));
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(metrics_addr, app).await {
                tracing::error!(error = %e, addr = %metrics_addr, "metrics listener failed");
            }
        });
    }
    if args.insecure {
        tracing::info!(%addr, data_dir = %args.data_dir.display(), revision = server.registry.revision(), "serving gRPC (plaintext, --insecure)");
    } else {
        tracing::info!(%addr, data_dir = %args.data_dir.display(), revision = server.registry.revision(),
            admin_config = %args.data_dir.join("admin.conf").display(), "serving gRPC (mutual TLS)");
    }
    // The listeners are bound: connections queue from here on.
    service_manager.ready();
    let shutdown = async move {
        shutdown.await;
        service_manager.stopping();
    };
    server.serve(shutdown).await.context("serving")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, at
/// once, not when the future is first polled: a signal that arrives while
/// the store loads or the PKI is made must stop the server cleanly too.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use switchyard_daemon::{config_file, packaged};

    use super::*;

    /// The packaged example config names every key, each valid.
    #[test]
    fn the_example_config_documents_every_key() {
        let example = include_str!("../../deploy/config/control-plane.yaml");
        assert_eq!(config_file::check_example::<Args>(example), Ok(()));
    }

    #[test]
    fn the_committed_man_pages_are_current() {
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let checked = packaged::check_committed(
            config_file::with_keys(Args::command()),
            "switchyard-control-plane",
            false,
            &deploy,
        );
        assert_eq!(checked, Ok(()));
    }

    #[test]
    fn default_names_tell_addresses_of_one_host_apart() {
        let name = |listen: &str| name_for("myhost", listen.parse().unwrap());
        assert_eq!(name("0.0.0.0:7443"), "myhost-7443");
        assert_eq!(name("[::]:7443"), "myhost-7443");
        assert_eq!(name("127.0.0.2:7443"), "myhost-127-0-0-2-7443");
        assert_eq!(name("10.0.0.1:7443"), "myhost-10-0-0-1-7443");
        assert_eq!(name("[fd00::1]:7443"), "myhost-fd00--1-7443");
    }
}
