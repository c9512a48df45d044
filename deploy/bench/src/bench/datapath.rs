//! Benchmark 4, data path: new-connection latency (TCP connect, one small
//! request, its reply) and new connections per second from a pod to a
//! ClusterIP whose endpoint is another pod, with 1 to 30,000 Services
//! programmed on the node by the agent's data path. For contrast the same
//! Services as an iptables-mode-style linear chain (one rule per Service,
//! the measured one last, as for the unluckiest Service under iptables),
//! in its own table instead of the agent's.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use switchyard_agent::model::{EndpointPortEntry, NodeContext, Snapshot};
use switchyard_agent::nft::{DataPath, NftCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

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

#[derive(Debug, Serialize, Deserialize)]
pub struct ClientResult {
    pub latencies_ms: Vec<f64>,
    pub per_second: f64,
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    if !ctx.root {
        report.skip(format!("{LATENCY}: needs root (lab namespaces, nftables)"));
        return Ok(());
    }
    let counts: &[usize] = match ctx.quick {
        true => &[1, 1_000, 5_000],
        false => &[1, 1_000, 30_000],
    };
    let rounds = if ctx.quick { 3 } else { 6 };
    let (connections, seconds) = if ctx.quick { (200, 0.5) } else { (500, 1.0) };
    report.setup(
        LATENCY,
        format!(
            "one lab node per N, each with a client pod and a backend pod, its table holding N ClusterIP Services \
             programmed by the agent's DataPath (1 endpoint each; the measured one points at the node's backend); \
             all tables loaded first, then {rounds} rounds, each visiting every node once in a rotated \
             order, so drift of this shared machine falls on every N alike; a visit: {connections} sequential \
             connect + 5-byte request + reply for latency, then 4 parallel clients for {seconds} s for the rate; \
             latency over all visits' samples, rate = median of the visits, rate ratio = median over rounds of \
             the ratio within a round (visits seconds apart); contrast: the same N Services as one \
             linear nat chain in table `{LINEAR_TABLE}` (measured Service last), loaded and visited the same way."
        ),
    );
    let lab = RealAgents::lab(counts.len(), 2)?;
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let sites: Vec<Site> = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| Site::start(&lab, i + 1, n, &exe))
        .collect::<anyhow::Result<_>>()?;
    let visit = Visit {
        exe: &exe,
        rounds,
        connections,
        seconds,
    };
    for site in &sites {
        site.load_maps().await?;
    }
    // Let the kernel settle after the big loads before timing.
    tokio::time::sleep(SETTLE).await;
    let mut runs = visit.all(&lab, &sites, NFT)?;
    for site in &sites {
        lab.lab.exec_ok(
            &site.node.ns,
            &["nft", "delete", "table", "ip", "switchyard"],
        )?;
        load_linear(&lab, site)?;
    }
    tokio::time::sleep(SETTLE).await;
    runs.extend(visit.all(&lab, &sites, LINEAR)?);
    let rate_ratios = [NFT, LINEAR].map(|mode| (mode, paired_rate_ratio(&runs, mode, counts)));
    let results = merge_rounds(runs, counts);
    record(report, &results, &rate_ratios, counts);
    Ok(())
}

/// The rate with the fewest Services over the rate with the most, taken
/// within each round (the two visits are seconds apart) and then the median
/// over rounds: the machine's speed drifts by more than the data path's
/// difference, so only visits close in time compare fairly.
fn paired_rate_ratio(
    runs: &[(&'static str, usize, ClientResult)],
    mode: &str,
    counts: &[usize],
) -> Option<f64> {
    let (first, last) = (*counts.first()?, *counts.last()?);
    let mine: Vec<_> = runs.iter().filter(|(m, _, _)| *m == mode).collect();
    let ratios: Vec<f64> = mine
        .chunks(counts.len())
        .filter_map(|round| {
            let rate = |n: usize| {
                round
                    .iter()
                    .find(|(_, k, _)| *k == n)
                    .map(|r| r.2.per_second)
            };
            Some(rate(first)? / rate(last)?.max(1e-9))
        })
        .collect();
    Summary::of(&ratios).map(|s| s.median)
}

/// A lab node measured with one N: its client and backend pods.
struct Site {
    n: usize,
    node: Host,
    client_ns: String,
    backend: Ipv4Addr,
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
        Ok(Site {
            n,
            node: lab.lab.node(i).clone(),
            client_ns: client.ns,
            backend: backend.ip,
            _server: server,
        })
    }

    /// The measured Service's ClusterIP.
    fn vip(&self) -> Ipv4Addr {
        fixture::cluster_ip(self.n - 1)
    }

    fn services(&self) -> Snapshot {
        services(self.n, self.backend, &self.node.name)
    }

    async fn load_maps(&self) -> anyhow::Result<()> {
        eprintln!("  {LATENCY}: loading {} services…", self.n);
        let node_ctx = NodeContext {
            node_name: self.node.name.clone(),
            node_ips: vec![self.node.ip],
            pod_cidr: self.node.pod_cidr,
        };
        let mut dp =
            DataPath::open("switchyard", NftCommand::in_netns(self.node.ns.clone())).await?;
        dp.apply(&node_ctx, &self.services()).await?;
        Ok(())
    }
}

/// How the client visits the sites.
struct Visit<'a> {
    exe: &'a str,
    rounds: usize,
    connections: usize,
    seconds: f64,
}

impl Visit<'_> {
    /// Every round visits every site once, starting one further along.
    fn all(
        &self,
        lab: &RealAgents,
        sites: &[Site],
        mode: &'static str,
    ) -> anyhow::Result<Vec<(&'static str, usize, ClientResult)>> {
        let mut runs = Vec::new();
        for round in 0..self.rounds {
            eprintln!("  {LATENCY}: {mode}, round {}/{}…", round + 1, self.rounds);
            for i in 0..sites.len() {
                let site = &sites[(i + round) % sites.len()];
                runs.push((mode, site.n, self.one(lab, site)?));
            }
        }
        Ok(runs)
    }

    /// Runs the load generator in the site's client pod, after clearing
    /// its node's conntrack table so every visit starts from the same state.
    fn one(&self, lab: &RealAgents, site: &Site) -> anyhow::Result<ClientResult> {
        let _ = lab.lab.exec(&site.node.ns, &["conntrack", "-F"]);
        std::thread::sleep(Duration::from_millis(200));
        let target = format!("{}:{}", site.vip(), fixture::SERVICE_PORT);
        let out = lab.lab.exec_ok(
            &site.client_ns,
            &[
                self.exe,
                "client",
                "--target",
                &target,
                "--connections",
                &self.connections.to_string(),
                "--seconds",
                &self.seconds.to_string(),
            ],
        )?;
        serde_json::from_str(&out).context("parsing the client's result")
    }
}

/// One result per mode and N: every round's latency samples, and the
/// median of the visits' rates.
fn merge_rounds(
    runs: Vec<(&'static str, usize, ClientResult)>,
    counts: &[usize],
) -> Vec<(&'static str, usize, ClientResult)> {
    let mut merged = Vec::new();
    for &n in counts {
        for mode in [NFT, LINEAR] {
            let mine: Vec<&ClientResult> = runs
                .iter()
                .filter(|(m, k, _)| *m == mode && *k == n)
                .map(|(_, _, r)| r)
                .collect();
            let rates: Vec<f64> = mine.iter().map(|r| r.per_second).collect();
            let Some(rate) = Summary::of(&rates) else {
                continue;
            };
            let latencies_ms = mine
                .iter()
                .flat_map(|r| r.latencies_ms.iter().copied())
                .collect();
            merged.push((
                mode,
                n,
                ClientResult {
                    latencies_ms,
                    per_second: rate.median,
                },
            ));
        }
    }
    merged
}

fn record(
    report: &mut Report,
    results: &[(&str, usize, ClientResult)],
    rate_ratios: &[(&str, Option<f64>)],
    counts: &[usize],
) {
    for (mode, n, r) in results {
        let scale = format!("{n} services");
        if let Some(s) = Summary::of(&r.latencies_ms) {
            report.push(Row::at(LATENCY, mode, &scale, *n as f64).measured("ms", s, None));
        }
        report.push(Row::at(RATE, mode, &scale, *n as f64).measured(
            "1/s",
            Summary::single(r.per_second),
            None,
        ));
    }
    let find = |mode: &str, n: usize| results.iter().find(|(m, k, _)| *m == mode && *k == n);
    let (Some(&first), Some(&last)) = (counts.first(), counts.last()) else {
        return;
    };
    for mode in [NFT, LINEAR] {
        let (Some(a), Some(b)) = (find(mode, last), find(mode, first)) else {
            continue;
        };
        let (Some(sa), Some(sb)) = (
            Summary::of(&a.2.latencies_ms),
            Summary::of(&b.2.latencies_ms),
        ) else {
            continue;
        };
        let target = (mode == NFT).then_some(Target::median(TARGET_RATIO));
        let scale = format!("{last} vs {first} services");
        report.push(
            Row::at(
                LATENCY,
                &format!("{mode}-latency-ratio"),
                &scale,
                last as f64,
            )
            .measured("x", Summary::single(sa.median / sb.median), target.clone()),
        );
        let Some(rate_ratio) = rate_ratios
            .iter()
            .find(|(m, _)| *m == mode)
            .and_then(|(_, r)| *r)
        else {
            continue;
        };
        report.push(
            Row::at(RATE, &format!("{mode}-rate-ratio"), &scale, last as f64).measured(
                "x",
                Summary::single(rate_ratio),
                target,
            ),
        );
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

/// The load generator: sequential timed connections, then a rate.
pub async fn client(target: &str, connections: usize, seconds: f64) -> anyhow::Result<()> {
    let addr: SocketAddr = target.parse()?;
    for _ in 0..20 {
        one_request(addr).await?; // warm-up: ARP, routes, caches
    }
    let mut latencies_ms = Vec::with_capacity(connections);
    for _ in 0..connections {
        let t = Instant::now();
        one_request(addr).await?;
        latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                one_request(addr).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let started = Instant::now();
    for w in workers {
        w.await??;
    }
    let per_second = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::to_string(&ClientResult {
            latencies_ms,
            per_second
        })?
    );
    Ok(())
}

/// Connect, send a request, read the reply. The backend closes first, so
/// TIME_WAIT stays on its side and the client never runs out of ports.
async fn one_request(addr: SocketAddr) -> anyhow::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_nodelay(true)?;
    let mut s = tokio::time::timeout(Duration::from_secs(2), socket.connect(addr))
        .await
        .context("connect timed out")??;
    s.write_all(b"ping\n").await?;
    let mut reply = Vec::with_capacity(8);
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut reply))
        .await
        .context("reply timed out")??;
    if reply.is_empty() {
        bail!("connection closed without a reply");
    }
    Ok(())
}
