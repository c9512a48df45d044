//! `switchyard-agent`: one per host; programs this host's nftables from the
//! control plane's snapshot stream.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::Parser;
use ipnet::IpNet;
use switchyard_agent::connection::{self, Channels};
use switchyard_agent::conntrack::Conntrack;
use switchyard_agent::handover::{self, Sockets};
use switchyard_agent::identity::{self, NodeCredentials};
use switchyard_agent::metrics::{self, Metrics};
use switchyard_agent::model::{NodeContext, ZONE_LABEL};
use switchyard_agent::nft::{DataPath, NftCommand, DEFAULT_TABLE};
use switchyard_agent::probe::{Prober, Reporter};
use switchyard_agent::runtime::{AgentConfig, NodeAddresses, Refused, Runtime, FULL_RESYNC};
use switchyard_agent::view::ClusterView;
use switchyard_agent::{dns, health, mirror, systemd, tunnel};
use switchyard_daemon::per_family::ipv4_of;
use switchyard_daemon::systemd::ServiceManager;
use switchyard_tls::client::Target;
use tokio::sync::{mpsc, watch};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard-agent",
    version,
    about = "Switchyard node agent: Service data path in nftables"
)]
struct Args {
    /// A YAML file of settings, one key per flag in Kubernetes' camelCase
    /// (`--node-ip` is `nodeIP`, `--data-dir` is `dataDir`); a flag given
    /// on the command line wins over the file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Control plane address: https://HOST:PORT, or unix:///PATH for a
    /// control plane's socket on this machine (both mutual TLS). Repeat it
    /// (or separate with commas) for several control planes of one
    /// cluster: the agent uses the one that answers, and fails over to the
    /// next when it goes away, resuming from the version it holds.
    #[arg(
        long = "control-plane",
        default_value = "https://127.0.0.1:7443",
        value_delimiter = ','
    )]
    control_planes: Vec<String>,
    /// Bootstrap token (`swctl create token`) to join the cluster with,
    /// when the state directory holds no certificate for this node yet.
    #[arg(long)]
    join_token: Option<String>,
    /// sha256:<hex> of the CA's public key, as `swctl create token`
    /// prints it: the joining agent trusts only a control plane with that CA.
    #[arg(long)]
    ca_cert_hash: Option<String>,
    /// Where this node's certificate, key and the cluster CA are kept.
    #[arg(long, default_value = "/var/lib/switchyard-agent")]
    state_dir: PathBuf,
    /// Talk plaintext, without a certificate, to a control plane started
    /// with --insecure (implied by an http:// --control-plane).
    #[arg(long)]
    insecure: bool,
    /// This node's name, as pods' spec.nodeName refers to it.
    #[arg(long)]
    node_name: String,
    /// An address of this node (repeatable: one per family on a
    /// dual-stack node, the first being its primary address).
    #[arg(long = "node-ip", required = true)]
    node_ips: Vec<IpAddr>,
    /// The pod CIDR of this node, or one per family, comma-separated
    /// (`10.244.1.0/24,fd00:10:244:1::/64`); traffic from outside it is
    /// masqueraded.
    #[arg(long, value_parser = parse_pod_cidrs)]
    pod_cidr: Option<PodCidrs>,
    /// Labels registered with this node, KEY=VALUE, comma-separated or
    /// repeated; `topology.kubernetes.io/zone` is the node's zone, which
    /// `trafficDistribution` keeps traffic in.
    #[arg(long = "node-labels", value_parser = parse_label, value_delimiter = ',')]
    node_labels: Vec<(String, String)>,
    /// The nftables table (family ip) this agent owns.
    #[arg(long, default_value = DEFAULT_TABLE)]
    table: String,
    /// Address to serve Prometheus metrics on (`/metrics`); off when unset.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Address to serve kube-proxy's `/healthz` and `/livez` on.
    #[arg(long, default_value = "0.0.0.0:10256")]
    healthz_listen: SocketAddr,
    /// Seconds a change may wait to reach the data path before `/healthz`
    /// and the health check node ports answer 503.
    #[arg(long, default_value_t = health::DEFAULT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    healthz_timeout_seconds: u64,
    /// Where this node answers DNS for the cluster domain (UDP and TCP); the
    /// cluster DNS address (`--cluster-dns` of the control plane) is
    /// redirected here. Default: the first --node-ip, port 53.
    #[arg(long)]
    dns_listen: Option<SocketAddr>,
    /// Resolver for names outside the cluster domain (repeatable, IP or
    /// IP:PORT); without one such queries are REFUSED.
    #[arg(long = "dns-upstream", value_parser = parse_upstream)]
    dns_upstreams: Vec<SocketAddr>,
    /// Questions that may wait on the upstreams at once (dnsmasq's
    /// dns-forward-max, CoreDNS's max_concurrent); more are REFUSED at
    /// once and counted, so a flood of outside names cannot hold the
    /// agent's memory or slow cluster names.
    #[arg(long, default_value_t = dns::DEFAULT_FORWARD_MAX as u32, value_parser = clap::value_parser!(u32).range(1..))]
    dns_forward_max: u32,
    /// Seconds between full resyncs, which read the whole table back and
    /// repair any hand edit (a deleted table or `flush ruleset` is caught
    /// within seconds by a cheaper check).
    #[arg(long, default_value_t = FULL_RESYNC.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    full_resync_seconds: u64,
    /// A directory of Pod manifests (.yaml, .yml, .json) this host runs:
    /// each Pod becomes a mirror pod `<name>-<node>` bound to this node
    /// (hostNetwork pods take the first --node-ip), kept in step with the
    /// files.
    #[arg(long, value_name = "DIR")]
    pod_manifests: Option<PathBuf>,
}

/// `--pod-cidr`: one CIDR, or one per family (a type of its own, so clap
/// takes the list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodCidrs(Vec<IpNet>);

fn parse_pod_cidrs(s: &str) -> Result<PodCidrs, String> {
    switchyard_daemon::per_family::cidrs(s)
        .map(PodCidrs)
        .map_err(|e| e.to_string())
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("expected IP or IP:PORT, got {s:?}"))
}

/// jemalloc rather than glibc's malloc, which keeps an arena per thread
/// and the memory freed in each: at 10,000 Services the agent's peak RSS
/// was ~5 MiB lower with jemalloc, the control plane's ~40 MiB.
/// How long a starting agent waits for its first snapshot before it
/// answers DNS from what it has.
const FIRST_VIEW_WAIT: Duration = Duration::from_secs(10);

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run(switchyard_daemon::config_file::parse::<Args>()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.node_name.is_empty() {
        bail!("--node-name must not be empty");
    }
    let dns_listen = args.dns_listen.unwrap_or_else(|| {
        // The cluster DNS address (IPv4) is DNATed here: an IPv4 one.
        let ip = ipv4_of(&args.node_ips)
            .next()
            .map_or(args.node_ips[0], IpAddr::V4);
        SocketAddr::new(ip, 53)
    });
    let service_manager = ServiceManager::from_env();
    let listening = systemd::Listening {
        dns: dns_listen,
        healthz: args.healthz_listen,
        metrics: args.metrics_listen,
    };
    // First: taking them unsets LISTEN_FDS, best before other threads run.
    let passed = systemd::passed_sockets(&service_manager, &listening);
    service_manager.spawn_watchdog();
    let channels = connect(&args).await?;
    let metrics = Metrics::new();
    let runner = NftCommand::new().counting_fallbacks(metrics.nft_fallbacks.clone());
    let datapath = DataPath::open(&args.table, runner)
        .await
        .context("opening the nftables table")?;
    let (inherited, predecessor) = take_over(&args.state_dir, passed).await;
    let mut held = Sockets {
        metrics: args.metrics_listen.and_then(|addr| {
            let (held, listener) = listen(addr, inherited.metrics, "metrics")?;
            spawn_http("metrics", addr, metrics::serve(listener, metrics.clone()));
            Some(held)
        }),
        ..Sockets::default()
    };
    let node_labels: BTreeMap<String, String> = args.node_labels.iter().cloned().collect();
    let pod_cidrs = args.pod_cidr.clone().map(|c| c.0).unwrap_or_default();
    let cfg = AgentConfig {
        node: NodeContext {
            zone: node_labels.get(ZONE_LABEL).cloned(),
            node_name: args.node_name.clone(),
            // The data path serves IPv4: it takes the IPv4 ones.
            node_ips: ipv4_of(&args.node_ips).collect(),
            pod_cidr: pod_cidrs.iter().find_map(|c| match c {
                IpNet::V4(v4) => Some(*v4),
                IpNet::V6(_) => None,
            }),
        },
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        local_services: Vec::new(),
        dns_listen: Some(dns_listen),
        full_resync: Duration::from_secs(args.full_resync_seconds),
        health_timeout: Duration::from_secs(args.healthz_timeout_seconds),
        node_labels,
        registered: NodeAddresses {
            node_ips: args.node_ips.clone(),
            pod_cidrs: pod_cidrs.clone(),
        },
    };
    if let Some(dir) = &args.pod_manifests {
        tokio::spawn(mirror::run(
            dir.clone(),
            args.node_name.clone(),
            args.node_ips[0],
            channels.clone(),
            metrics.clone(),
        ));
    }
    let dns_metrics = metrics.dns_forward.clone();
    let (mut runtime, views) =
        Runtime::new(cfg, channels.clone(), datapath, Conntrack::new(), metrics);
    let health = runtime.health();
    let addr = args.healthz_listen;
    held.healthz = listen(addr, inherited.healthz, "/healthz").map(|(held, listener)| {
        spawn_http(
            "/healthz",
            addr,
            health::server::serve(listener, health.clone()),
        );
        held
    });
    tokio::spawn(health::node_port::run(
        views.clone(),
        args.node_name.clone(),
        health,
    ));
    let inherited_dns = inherited.dns_udp.zip(inherited.dns_tcp);
    let dns = match open_dns(dns_listen, inherited_dns, &views, &args.dns_upstreams).await {
        Ok(dns) => {
            let (udp, tcp) = dns.sockets().context("duplicating the DNS sockets")?;
            (held.dns_udp, held.dns_tcp) = (Some(udp), Some(tcp));
            Some(
                dns.forward_max(args.dns_forward_max as usize)
                    .counting(dns_metrics),
            )
        }
        // DNS is a convenience next to the data path: if its port is
        // taken, say so loudly and keep serving Services.
        Err(e) => {
            tracing::error!(error = %e, %dns_listen, "cannot start the DNS responder; cluster DNS is off on this node");
            runtime.disable_dns();
            None
        }
    };
    tokio::spawn(tunnel::run(channels.clone(), args.node_name.clone()));
    spawn_probes(args.node_name.clone(), channels, views.clone());
    tracing::info!(node = %args.node_name, control_plane = %args.control_planes.join(", "), table = %args.table, "agent starting");
    let serving = serve_when_synced(dns, views, predecessor);
    supervise(
        runtime.run(),
        serving,
        held,
        &args.state_dir,
        &service_manager,
    )
    .await
}

/// Runs the agent until the control plane refuses it, a signal, or a new
/// agent on this node takes over from it. Under systemd, once DNS serves,
/// the sockets go to its store and it hears `READY=1`.
async fn supervise(
    run: impl Future<Output = Refused>,
    serving: impl Future<Output = Option<dns::Serving>>,
    held: Sockets,
    state_dir: &Path,
    service_manager: &ServiceManager,
) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    tokio::pin!(run, serving, shutdown);
    let mut listener = None;
    let mut answering: Option<dns::Serving> = None;
    let mut served = false;
    loop {
        tokio::select! {
            refused = &mut run => {
                return Err(anyhow::Error::new(refused).context("the control plane refused this agent"));
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down; the nftables table stays in place");
                service_manager.stopping();
                // Answer what was read; the rest stays queued in the
                // sockets (no shutdown(2)), for the next agent when the
                // service manager keeps them.
                if let Some(dns) = answering.take() {
                    dns.stop().await;
                }
                return Ok(());
            }
            dns = &mut serving, if !served => {
                served = true;
                answering = dns;
                listener = handover::Listener::bind(state_dir)
                    .inspect_err(|e| tracing::warn!(error = %e, "hot restart is off: a new agent on this node will bind its sockets anew"))
                    .ok();
                systemd::keep(service_manager, &held);
                service_manager.ready();
            }
            // While a successor takes over, `run` is not polled: the data
            // path is left to it, DNS answers on in its own task.
            successor = accept(listener.as_ref()) => {
                if hand_over(successor, &held).await {
                    if let Some(dns) = answering.take() {
                        dns.stop().await;
                    }
                    tracing::info!("the new agent serves this node; exiting");
                    return Ok(());
                }
            }
        }
    }
}

/// Hands the sockets to a successor; false when it failed (this agent
/// resumes).
async fn hand_over(
    successor: Result<handover::Successor, handover::HandoverError>,
    held: &Sockets,
) -> bool {
    let handed = match successor {
        Ok(s) => s.hand_over(held, handover::SERVE_WAIT).await,
        Err(e) => Err(e),
    };
    handed
        .inspect_err(|e| tracing::warn!(error = %e, "handover failed; resuming"))
        .is_ok()
}

/// Asks an agent already running on this node for its sockets; those it
/// does not hand over come from what systemd `passed`.
async fn take_over(state_dir: &Path, passed: Sockets) -> (Sockets, Option<handover::Predecessor>) {
    match handover::take_over(state_dir).await {
        Ok(Some((sockets, predecessor))) => {
            tracing::info!(?sockets, "taking over from the agent running on this node");
            (sockets.or(passed), Some(predecessor))
        }
        Ok(None) => (passed, None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot take over from the agent running on this node; using what systemd passed, else binding anew");
            (passed, None)
        }
    }
}

/// The next successor's request; pending while hot restart is off.
async fn accept(
    listener: Option<&handover::Listener>,
) -> Result<handover::Successor, handover::HandoverError> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The inherited listener when it is for `addr`, else a new one, and a
/// second handle to it for a successor. A port that is taken is logged:
/// the data path matters more than what `what` serves.
fn listen(
    addr: SocketAddr,
    inherited: Option<std::net::TcpListener>,
    what: &str,
) -> Option<(std::net::TcpListener, std::net::TcpListener)> {
    let bound = match inherited.filter(|l| l.local_addr().is_ok_and(|a| a == addr)) {
        Some(listener) => Ok(listener),
        None => std::net::TcpListener::bind(addr),
    };
    bound
        .and_then(|l| Ok((l.try_clone()?, l)))
        .inspect_err(|e| tracing::error!(error = %e, %addr, "cannot listen for {what}"))
        .ok()
}

fn spawn_http(
    what: &'static str,
    addr: SocketAddr,
    serving: impl Future<Output = std::io::Result<()>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, %addr, "{what} listener failed");
        }
    });
}

/// The responder on the sockets passed to this agent (a predecessor's or
/// systemd's) when they are for `listen`, else on new ones.
async fn open_dns(
    listen: SocketAddr,
    inherited: Option<(std::net::UdpSocket, std::net::TcpListener)>,
    views: &watch::Receiver<Arc<ClusterView>>,
    upstreams: &[SocketAddr],
) -> Result<dns::DnsServer, dns::DnsError> {
    let matching = inherited.filter(|(udp, _)| udp.local_addr().is_ok_and(|a| a == listen));
    match matching {
        Some((udp, tcp)) => {
            tracing::info!(%listen, "answering DNS on the sockets passed to this agent");
            dns::from_std(udp, tcp, views.clone(), upstreams.to_vec())
        }
        None => dns::bind(listen, views.clone(), upstreams.to_vec()).await,
    }
}

/// Starts answering DNS once the first snapshot is in (an empty view
/// would deny every cluster name; queries wait in the socket meanwhile,
/// or are answered by the predecessor), then lets the predecessor go.
async fn serve_when_synced(
    dns: Option<dns::DnsServer>,
    mut views: watch::Receiver<Arc<ClusterView>>,
    predecessor: Option<handover::Predecessor>,
) -> Option<dns::Serving> {
    if tokio::time::timeout(FIRST_VIEW_WAIT, views.changed())
        .await
        .is_err()
    {
        tracing::warn!(wait = ?FIRST_VIEW_WAIT, "no snapshot yet; answering DNS from an empty view");
    }
    let serving = dns.map(dns::DnsServer::start);
    if let Some(predecessor) = predecessor {
        match predecessor.release().await {
            Ok(()) => tracing::info!("took over from the previous agent"),
            Err(e) => tracing::warn!(error = %e, "the previous agent is gone"),
        }
    }
    serving
}

/// The channel to the control plane: plaintext for an `--insecure` one,
/// else mutual TLS with this node's certificate (joining first if there is
/// none), renewed in the background.
async fn connect(args: &Args) -> anyhow::Result<Channels> {
    let target = Target::parse_all(&args.control_planes).context("--control-plane")?;
    let target = if args.insecure {
        target.into_plaintext()
    } else {
        target
    };
    if target.is_plaintext() {
        tracing::warn!(control_plane = %target.urls(), "talking plaintext to the control plane, without a certificate (--insecure)");
        return Ok(connection::fixed(connection::channel(&target, None)?));
    }
    let creds = node_credentials(args, &target).await?;
    let channel = connection::channel(&target, Some(creds.client_config()?))?;
    let (tx, channels) = watch::channel(channel);
    tokio::spawn(identity::renew::run(
        target,
        args.state_dir.clone(),
        creds,
        tx,
    ));
    Ok(channels)
}

/// This node's stored certificate, or a new one from a join. Without a
/// join token a stored certificate is used as it is (the control plane
/// judges it). With one, a stored certificate for this node is renewed
/// at once, which also proves it was not revoked; one that was, expired
/// or names another node is replaced by joining.
async fn node_credentials(args: &Args, target: &Target) -> anyhow::Result<NodeCredentials> {
    let dir = &args.state_dir;
    let stored = NodeCredentials::load(dir)
        .with_context(|| format!("reading the node certificate in {}", dir.display()))?;
    let usable = |c: &NodeCredentials| {
        !c.info.is_expired(SystemTime::now()) && c.node_name() == Some(args.node_name.as_str())
    };
    match (stored, &args.join_token) {
        (Some(c), Some(token)) if usable(&c) => {
            let channel = connection::channel(target, Some(c.client_config()?))?;
            match identity::renew::renew(&c, &channel).await {
                Ok(renewed) => {
                    renewed.save(dir).with_context(|| format!("storing the node certificate in {}", dir.display()))?;
                    Ok(renewed)
                }
                Err(identity::renew::RenewError::Revoked(why)) => {
                    tracing::warn!(%why, "the stored node certificate is refused; joining with the token");
                    join(args, target, token, dir).await
                }
                Err(identity::renew::RenewError::Failed(why)) => {
                    tracing::warn!(%why, "cannot renew the stored node certificate now; using it");
                    Ok(c)
                }
            }
        }
        (Some(c), None) => Ok(c),
        (_, Some(token)) => join(args, target, token, dir).await,
        (None, None) => bail!(
            "no node certificate in {}: start once with --join-token and --ca-cert-hash (`swctl create token` prints the command)",
            dir.display()
        ),
    }
}

async fn join(
    args: &Args,
    target: &Target,
    token: &str,
    dir: &Path,
) -> anyhow::Result<NodeCredentials> {
    let pin = args.ca_cert_hash.as_deref().context(
        "--join-token needs --ca-cert-hash sha256:<hex> (`swctl create token` prints it)",
    )?;
    let creds = identity::join(target, token, pin, &args.node_name).await?;
    creds
        .save(dir)
        .with_context(|| format!("storing the node certificate in {}", dir.display()))?;
    tracing::info!(node = %args.node_name, serial = %creds.info.serial, state_dir = %dir.display(), "joined the cluster");
    Ok(creds)
}

/// Keeps the prober in line with the probe list of every new view.
fn spawn_probes(node: String, channels: Channels, mut views: watch::Receiver<Arc<ClusterView>>) {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(Reporter::new(node.clone(), channels).run(rx));
    tokio::spawn(async move {
        let mut prober = Prober::new(node, tx);
        let mut current = Arc::default();
        while views.changed().await.is_ok() {
            let probes = views.borrow_and_update().probes.clone();
            if !Arc::ptr_eq(&probes, &current) {
                prober.update(&probes);
                current = probes;
            }
        }
    });
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use switchyard_daemon::{config_file, packaged};

    use super::*;

    /// The packaged example config names every key, each valid.
    #[test]
    fn the_example_config_documents_every_key() {
        let example = include_str!("../../deploy/config/agent.yaml");
        assert_eq!(config_file::check_example::<Args>(example), Ok(()));
    }

    #[test]
    fn the_committed_man_pages_are_current() {
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let checked = packaged::check_committed(
            config_file::with_keys(Args::command()),
            "switchyard-agent",
            false,
            &deploy,
        );
        assert_eq!(checked, Ok(()));
    }
}
