//! Benchmark 4, data path: new-connection latency (TCP connect, one small
//! request, its reply) and new connections per second from a pod to a
//! ClusterIP whose endpoint is another pod, with 1 to 30,000 Services
//! programmed on the node by the agent's data path. For contrast the same
//! Services as an iptables-mode-style linear chain (one rule per Service,
//! the measured one last, as for the unluckiest Service under iptables),
//! in its own table instead of the agent's.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use switchyard_agent::model::{EndpointPortEntry, NodeContext, Snapshot};
use switchyard_agent::nft::{DataPath, NftCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::context::Ctx;
use crate::fixture::{self, Shape};
use crate::real_agents::RealAgents;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;
use switchyard_lab::{ChildGuard, Host};

pub const LATENCY: &str = "datapath-connect-latency";
pub const RATE: &str = "datapath-connection-rate";
const TARGET_RATIO: f64 = 1.05;
const BACKEND_PORT: u16 = 8080;
const SETTLE: Duration = Duration::from_secs(3);
const LINEAR_TABLE: &str = "bench-linear";
const NFT: &str = "nftables-maps";
const LINEAR: &str = "iptables-style-linear";

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    if !ctx.root {
        report.skip(format!("{LATENCY}: needs root (lab namespaces, nftables)"));
        return Ok(());
    }
    let counts: &[usize] = match ctx.quick {
        true => &[1, 1_000, 5_000],
        false => &[1, 1_000, 30_000],
    };
    let plan = Plan {
        connections: if ctx.quick { 600 } else { 3_000 },
        rounds: if ctx.quick { 5 } else { 15 },
        slice: Duration::from_millis(if ctx.quick { 200 } else { 400 }),
    };
    report.setup(
        LATENCY,
        format!(
            "one lab node per N, each with a client pod and a backend pod, its table holding N ClusterIP Services \
             programmed by the agent's DataPath (1 endpoint each; the measured one points at the node's backend); \
             all tables loaded first, then measured with clients in every client pod in turn, so noise on this \
             shared machine falls on every N alike. Latency: {} connections per N (connect + 5-byte request + \
             reply), one at a time, taking turns across the N. Rate: {} rounds, each a {} ms slice of {RATE_CLIENTS} \
             parallel clients on every node in a rotated order; rate = median of the slices, rate ratio = median \
             over rounds of the ratio within a round. Contrast: the same N Services as one linear nat chain in table \
             `{LINEAR_TABLE}` (measured Service last), measured the same way.",
            plan.connections,
            plan.rounds,
            plan.slice.as_millis()
        ),
    );
    let lab = RealAgents::lab(counts.len(), 2)?;
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let sites: Vec<Site> = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| Site::start(&lab, i + 1, n, &exe))
        .collect::<anyhow::Result<_>>()?;
    for site in &sites {
        site.load_maps().await?;
    }
    // Let the kernel settle after the big loads before timing.
    tokio::time::sleep(SETTLE).await;
    let maps = plan.measure(&lab, &sites, NFT)?;
    for site in &sites {
        lab.lab.exec_ok(
            &site.node.ns,
            &["nft", "delete", "table", "ip", "switchyard"],
        )?;
        load_linear(&lab, site)?;
    }
    tokio::time::sleep(SETTLE).await;
    let linear = plan.measure(&lab, &sites, LINEAR)?;
    for measured in [maps, linear] {
        measured.record(report, counts);
    }
    Ok(())
}

/// A lab node measured with one N: its client and backend pods.
struct Site {
    n: usize,
    node: Host,
    backend: Ipv4Addr,
    /// Clients inside the client pod.
    probes: Vec<Probe>,
    /// Keeps the backend server running until the site is dropped.
    _server: ChildGuard,
}

impl Site {
    fn start(lab: &RealAgents, i: usize, n: usize, exe: &str) -> anyhow::Result<Site> {
        let (client, backend) = (lab.lab.pod(i, 1).clone(), lab.lab.pod(i, 2).clone());
        // Tens of thousands of short connections per run: keep no TIME_WAIT
        // sockets around, or later runs slow down on port reuse whatever the
        // ruleset (a measurement artifact, not the data path).
        for ns in [&client.ns, &backend.ns] {
            lab.lab
                .exec_ok(ns, &["sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=0"])?;
        }
        let listen = format!("0.0.0.0:{BACKEND_PORT}");
        let server = lab
            .lab
            .spawn(&backend.ns, &[exe, "backend", "--listen", &listen])?;
        std::thread::sleep(Duration::from_millis(300));
        let target = SocketAddr::from((fixture::cluster_ip(n - 1), fixture::SERVICE_PORT));
        Ok(Site {
            n,
            node: lab.lab.node(i).clone(),
            probes: (0..RATE_CLIENTS)
                .map(|_| Probe::start(&client.ns, target))
                .collect(),
            backend: backend.ip,
            _server: server,
        })
    }

    fn services(&self) -> Snapshot {
        services(self.n, self.backend, &self.node.name)
    }

    async fn load_maps(&self) -> anyhow::Result<()> {
        eprintln!("  {LATENCY}: loading {} services…", self.n);
        let node_ctx = NodeContext {
            zone: None,
            node_name: self.node.name.clone(),
            node_ips: vec![self.node.ip],
            pod_cidr: self.node.pod_cidr,
        };
        let mut dp =
            DataPath::open("switchyard", NftCommand::in_netns(self.node.ns.clone())).await?;
        dp.apply(&node_ctx, &self.services()).await?;
        Ok(())
    }

    /// Clears the node's conntrack table so every measurement starts from
    /// the same state.
    fn flush_conntrack(&self, lab: &RealAgents) {
        let _ = lab.lab.exec(&self.node.ns, &["conntrack", "-F"]);
    }
}

/// How much each mode is measured.
struct Plan {
    connections: usize,
    rounds: usize,
    slice: Duration,
}

impl Plan {
    fn measure(
        &self,
        lab: &RealAgents,
        sites: &[Site],
        mode: &'static str,
    ) -> anyhow::Result<Measured> {
        eprintln!(
            "  {LATENCY}: {mode}, {} connections per N…",
            self.connections
        );
        for site in sites {
            site.flush_conntrack(lab);
        }
        for site in sites {
            for _ in 0..WARM_UP {
                site.probes[0].ask(Job::Once)?;
            }
        }
        let mut latencies: Vec<(usize, Vec<f64>)> = sites
            .iter()
            .map(|s| (s.n, Vec::with_capacity(self.connections)))
            .collect();
        for _ in 0..self.connections {
            for (site, (_, out)) in sites.iter().zip(&mut latencies) {
                out.push(site.probes[0].ask(Job::Once)?);
            }
        }
        eprintln!("  {RATE}: {mode}, {} rounds…", self.rounds);
        let mut rates = Vec::new();
        for round in 0..self.rounds {
            let mut this_round = Vec::new();
            for i in 0..sites.len() {
                let site = &sites[(i + round) % sites.len()];
                this_round.push((site.n, self.rate(lab, site)?));
            }
            rates.push(this_round);
        }
        Ok(Measured {
            mode,
            latencies,
            rates,
        })
    }

    /// New connections per second from all of the site's probes at once
    /// for one slice.
    fn rate(&self, lab: &RealAgents, site: &Site) -> anyhow::Result<f64> {
        site.flush_conntrack(lab);
        let started = Instant::now();
        let until = started + self.slice;
        for probe in &site.probes {
            probe.send(Job::Until(until))?;
        }
        let mut done = 0.0;
        for probe in &site.probes {
            done += probe.answer()?;
        }
        Ok(done / started.elapsed().as_secs_f64())
    }
}

/// Requests before timing starts: ARP, routes, caches.
const WARM_UP: usize = 20;
/// Parallel clients per site for the rate.
const RATE_CLIENTS: usize = 4;

/// What a probe does when told.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// One timed request; answers its milliseconds.
    Once,
    /// Requests back to back until then; answers how many completed.
    Until(Instant),
}

/// A thread inside one client pod's network namespace (a socket belongs to
/// the namespace its thread was in) that runs the jobs it is given.
struct Probe {
    jobs: mpsc::Sender<Job>,
    answers: mpsc::Receiver<anyhow::Result<f64>>,
}

impl Probe {
    fn start(netns: &str, target: SocketAddr) -> Probe {
        let path = Path::new("/run/netns").join(netns);
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (answer_tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            let entered = File::open(&path).and_then(|ns| {
                move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(std::io::Error::from)
            });
            if let Err(e) = entered {
                let _ = answer_tx.send(Err(anyhow::anyhow!("entering {}: {e}", path.display())));
                return;
            }
            while let Ok(job) = job_rx.recv() {
                if answer_tx.send(run_job(job, target)).is_err() {
                    return;
                }
            }
        });
        Probe { jobs, answers }
    }

    fn send(&self, job: Job) -> anyhow::Result<()> {
        if self.jobs.send(job).is_ok() {
            return Ok(());
        }
        // The thread ended; it left its reason if it had one (a namespace
        // it could not enter).
        match self.answers.try_recv() {
            Ok(Err(e)) => Err(e),
            _ => Err(anyhow::anyhow!("a probe thread ended")),
        }
    }

    fn answer(&self) -> anyhow::Result<f64> {
        self.answers
            .recv()
            .map_err(|_| anyhow::anyhow!("a probe thread ended"))?
    }

    fn ask(&self, job: Job) -> anyhow::Result<f64> {
        self.send(job)?;
        self.answer()
    }
}

fn run_job(job: Job, target: SocketAddr) -> anyhow::Result<f64> {
    match job {
        Job::Once => timed_request(target),
        Job::Until(until) => {
            let mut done = 0u32;
            while Instant::now() < until {
                timed_request(target)?;
                done += 1;
            }
            Ok(f64::from(done))
        }
    }
}

/// Connect, send a request, read the reply; milliseconds taken. The
/// backend closes first, so TIME_WAIT stays on its side.
fn timed_request(addr: SocketAddr) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"ping\n")?;
    let mut reply = Vec::with_capacity(8);
    s.read_to_end(&mut reply)?;
    if reply.is_empty() {
        bail!("connection to {addr} closed without a reply");
    }
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// What one mode measured.
struct Measured {
    mode: &'static str,
    /// Each N's latency samples.
    latencies: Vec<(usize, Vec<f64>)>,
    /// Each round's rate for every N.
    rates: Vec<Vec<(usize, f64)>>,
}

impl Measured {
    fn latency(&self, n: usize) -> Option<Summary> {
        let (_, samples) = self.latencies.iter().find(|(k, _)| *k == n)?;
        Summary::of(samples)
    }

    fn rates(&self, n: usize) -> Vec<f64> {
        self.rates
            .iter()
            .flat_map(|round| round.iter().filter(|(k, _)| *k == n).map(|(_, r)| *r))
            .collect()
    }

    /// The rate with the fewest Services over the rate with the most,
    /// within each round, then the median over rounds: the machine's speed
    /// drifts by more than the data path's difference, so only visits
    /// seconds apart compare fairly.
    fn rate_ratio(&self, fewest: usize, most: usize) -> Option<f64> {
        let ratios: Vec<f64> = self
            .rates
            .iter()
            .filter_map(|round| {
                let of = |n: usize| round.iter().find(|(k, _)| *k == n).map(|(_, r)| *r);
                Some(of(fewest)? / of(most)?.max(1e-9))
            })
            .collect();
        Summary::of(&ratios).map(|s| s.median)
    }

    fn record(&self, report: &mut Report, counts: &[usize]) {
        for &n in counts {
            let scale = format!("{n} services");
            if let Some(s) = self.latency(n) {
                report.push(Row::at(LATENCY, self.mode, &scale, n as f64).measured("ms", s, None));
            }
            if let Some(s) = Summary::of(&self.rates(n)) {
                report.push(Row::at(RATE, self.mode, &scale, n as f64).measured(
                    "1/s",
                    Summary::single(s.median),
                    None,
                ));
            }
        }
        let (Some(&fewest), Some(&most)) = (counts.first(), counts.last()) else {
            return;
        };
        let scale = format!("{most} vs {fewest} services");
        let target = (self.mode == NFT).then_some(Target::median(TARGET_RATIO));
        let latency_ratio = match (self.latency(most), self.latency(fewest)) {
            (Some(m), Some(f)) => Some(m.median / f.median),
            _ => None,
        };
        let rows = [
            (LATENCY, "latency", latency_ratio),
            (RATE, "rate", self.rate_ratio(fewest, most)),
        ];
        for (bench, what, ratio) in rows {
            let Some(ratio) = ratio else { continue };
            let case = format!("{}-{what}-ratio", self.mode);
            report.push(Row::at(bench, &case, &scale, most as f64).measured(
                "x",
                Summary::single(ratio),
                target.clone(),
            ));
        }
    }
}

/// N Services, the last one (the measured one) pointing at the backend
/// pod on `node`.
fn services(n: usize, backend: Ipv4Addr, node: &str) -> Snapshot {
    let shape = Shape {
        services: n,
        endpoints: 1,
    };
    let mut snap = fixture::snapshot(&shape);
    let last = fixture::service_key(n - 1);
    if let Some(svc) = snap.services.get_mut(&last) {
        let mut endpoint = fixture::endpoint(backend, node);
        endpoint.ports = vec![EndpointPortEntry {
            port: BACKEND_PORT,
            ..endpoint.ports[0].clone()
        }]
        .into();
        svc.endpoints = vec![endpoint];
    }
    snap
}

/// The iptables-mode shape: every Service one rule in one linear chain.
fn load_linear(lab: &RealAgents, site: &Site) -> anyhow::Result<()> {
    let (n, backend) = (site.n, site.backend);
    let t = LINEAR_TABLE;
    let mut script = format!(
        "add table ip {t}\nadd chain ip {t} prerouting {{ type nat hook prerouting priority -100; policy accept; }}\n"
    );
    for (k, svc) in site.services().services.values().enumerate() {
        let (Some(vip), Some(ep)) = (svc.cluster_ip, svc.endpoints.first()) else {
            continue;
        };
        let (ip, port) = match k + 1 == n {
            true => (backend, BACKEND_PORT),
            false => (ep.ip, fixture::TARGET_PORT),
        };
        let _ = writeln!(
            script,
            "add rule ip {t} prerouting ip daddr {vip} tcp dport {} dnat to {ip}:{port}",
            fixture::SERVICE_PORT
        );
    }
    let path = lab.lab.log_dir().join(format!("linear-{n}.nft"));
    std::fs::write(&path, script)?;
    lab.lab
        .exec_ok(&site.node.ns, &["nft", "-f", &path.to_string_lossy()])
        .context("loading the linear table")?;
    Ok(())
}

/// The backend: answers every connection's request with one line.
pub async fn backend(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!("ready on {listen}");
    loop {
        let (mut s, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            if s.read(&mut buf).await.unwrap_or(0) > 0 {
                let _ = s.write_all(b"pong\n").await;
            }
        });
    }
}
