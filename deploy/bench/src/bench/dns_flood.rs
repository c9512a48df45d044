//! DNS under a flood of outside names (issue 24, defect 3): a real agent in
//! a lab node namespace forwards to an upstream that reads every question
//! and never answers; 20,000 questions a second for distinct outside names
//! hit its responder for 30 s while `switchyard-lab dns-query` asks a
//! cluster name every 5 ms. Measured: the agent's RSS (peak and during the
//! flood), the cluster name's latency and unanswered count, and what the
//! flood got back (REFUSED at the cap, SERVFAIL after the upstream timeout).
//!
//! The flood runs as `switchyard-bench dns-flood-inner` in the node
//! namespace, next to the agent, so every packet stays in that namespace.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use switchyard_lab::DnsTally;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::context::Ctx;
use crate::fixture::{self, Shape};
use crate::process::cpu_seconds;
use crate::real_agents::RealAgents;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "dns-flood";
/// The target for the cluster name under the flood.
const TARGET_P99_MS: f64 = 5.0;
const RATE: u64 = 20_000;
const SECONDS: u64 = 30;
/// Flooding sockets (each its own source port, as several pods).
const CLIENTS: usize = 4;
/// The silent upstream, on the node's own address.
const SINK_PORT: u16 = 5300;
const METRICS_PORT: u16 = 9153;
/// How long the flood waits for late answers (the upstream timeout is 2 s).
const LINGER: Duration = Duration::from_secs(3);
/// A small cluster: the flood, not the table, is what is measured.
const SHAPE: Shape = Shape {
    services: 100,
    endpoints: 10,
};

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    if !ctx.root {
        report.skip(format!(
            "{BENCH}: needs root (a real agent in a lab namespace)"
        ));
        return Ok(());
    }
    report.setup(
        BENCH,
        format!(
            "control plane loaded with {} Services / {} endpoints; one real switchyard-agent in a lab node namespace \
             with --dns-upstream on a socket in that namespace that reads and never answers (default \
             --dns-forward-max {}); `switchyard-bench dns-flood-inner` sends {RATE} questions/s for distinct \
             outside names from {CLIENTS} sockets for {SECONDS} s while `switchyard-lab dns-query` asks a Service's \
             A record every 5 ms (1 s timeout). RSS from /proc: VmHWM (peak over the agent's life) and VmRSS \
             sampled every 250 ms.",
            SHAPE.services,
            SHAPE.pods(),
            switchyard_agent::dns::DEFAULT_FORWARD_MAX,
        ),
    );
    let cp = ctx.loaded_control_plane(&SHAPE).await?;
    let mut api = cp.api().await?;
    let lab = RealAgents::lab(1, 1)?;
    let node = lab.lab.node(1).clone();
    let sink = SocketAddr::from((node.ip, SINK_PORT));
    let metrics = SocketAddr::from((node.ip, METRICS_PORT));
    let mut real = lab.tagged("dnsflood").configured(
        "warn",
        &[
            "--dns-upstream",
            &sink.to_string(),
            "--metrics-listen",
            &metrics.to_string(),
        ],
    );
    real.start_agents(&ctx.bins, &cp)?;
    real.wait_acked(&mut api, cp.served_version, Duration::from_secs(120))
        .await?;
    let memory = |real: &RealAgents| -> anyhow::Result<(f64, f64)> {
        let m = real.memory()?;
        let m = m.first().context("no agent running")?;
        Ok((m.rss_mib, m.peak_mib))
    };
    let (rss_before, peak_before) = memory(&real)?;
    let pid = *real.pids().first().context("no agent running")?;
    let load_before = load_average();

    let server = format!("{}:53", node.ip);
    let name = format!(
        "{}.{}.svc.cluster.local",
        fixture::service_name(0),
        fixture::namespace(0)
    );
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let flood = real.lab.spawn(
        &node.ns,
        &[
            exe,
            "dns-flood-inner".into(),
            "--server".into(),
            server.clone(),
            "--sink".into(),
            sink.to_string(),
            "--metrics".into(),
            metrics.to_string(),
            "--rate".into(),
            RATE.to_string(),
            "--seconds".into(),
            SECONDS.to_string(),
        ],
    )?;
    // The sink is bound before the first question goes out.
    flood.wait_for_log("flooding", Duration::from_secs(10))?;
    let queries = real.lab.spawn(
        &node.ns,
        &[
            ctx.bins
                .join("switchyard-lab")
                .to_string_lossy()
                .into_owned(),
            "dns-query".into(),
            "--server".into(),
            server,
            "--name".into(),
            name,
            "--interval-ms".into(),
            "5".into(),
            "--duration-s".into(),
            SECONDS.to_string(),
        ],
    )?;
    let cpu_before = cpu_seconds(pid)?;
    let flood_started = Instant::now();
    let mut rss_during: f64 = rss_before;
    let end = Instant::now() + Duration::from_secs(SECONDS) + LINGER;
    while Instant::now() < end {
        rss_during = rss_during.max(memory(&real)?.0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    queries.wait_for_log("queries ", Duration::from_secs(30))?;
    flood.wait_for_log("flood sent", Duration::from_secs(30))?;
    let cpu = (cpu_seconds(pid)? - cpu_before) / flood_started.elapsed().as_secs_f64();
    let load_after = load_average();
    let (rss_after, peak_after) = memory(&real)?;
    let log = queries.log();
    let tally = DnsTally::from_log(&log)
        .ok_or_else(|| anyhow::anyhow!("dns-query printed no summary:\n{log}"))?;
    let flood_log = flood.log();
    let flood_summary = flood_log
        .lines()
        .filter(|l| {
            ["flood sent", "socket drops", "switchyard_agent_dns"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("; ");
    cp.stop();

    let scale = format!("{RATE}/s outside names");
    let x = RATE as f64;
    report.push(Row::at(BENCH, "cluster-name-latency", &scale, x).measured(
        "ms",
        Summary::of_dns(&tally),
        Some(Target::p99(TARGET_P99_MS)),
    ));
    report.push(
        Row::at(BENCH, "cluster-name-unanswered", &scale, x).measured(
            "queries",
            Summary::single((tally.unanswered + tally.failed) as f64),
            Some(Target::median(0.0)),
        ),
    );
    report.push(Row::at(BENCH, "agent-peak-rss", &scale, x).measured(
        "MiB",
        Summary::single(peak_after),
        None,
    ));
    report.push(
        Row::at(BENCH, "agent-rss-during-flood", &scale, x).measured(
            "MiB",
            Summary::single(rss_during),
            None,
        ),
    );
    report.note(
        BENCH,
        format!(
            "cluster name: {} queries, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} unanswered, {} failed; \
             agent RSS {rss_before:.1} MiB before (VmHWM {peak_before:.1}), at most {rss_during:.1} MiB during, \
             {rss_after:.1} MiB after (VmHWM {peak_after:.1}); agent CPU {:.0}% of a core over the flood; \
             load average {load_before} before, {load_after} after; {flood_summary}",
            tally.queries,
            tally.p50_ms,
            tally.p99_ms,
            tally.max_ms,
            tally.unanswered,
            tally.failed,
            cpu * 100.0
        ),
    );
    println!(
        "{BENCH}: agent RSS {rss_before:.1} MiB before, max {rss_during:.1} MiB during, peak (VmHWM) {peak_after:.1} MiB; \
         cluster name {} queries p50 {:.2} ms p99 {:.2} ms max {:.2} ms, {} unanswered, {} failed; \
         agent CPU {:.0}% of a core; load average {load_before} before, {load_after} after",
        tally.queries,
        tally.p50_ms,
        tally.p99_ms,
        tally.max_ms,
        tally.unanswered,
        tally.failed,
        cpu * 100.0
    );
    println!("{BENCH}: {flood_summary}");
    Ok(())
}

/// The 1-minute load average, for reading the latencies: the machine's
/// other work competes with the agent for its cores.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Datagrams the kernel dropped (receive buffer full) at this namespace's
/// UDP sockets bound to `port`, from the last column of `/proc/net/udp`.
fn socket_drops(port: u16) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    let local_port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            local
                .ends_with(&local_port)
                .then(|| fields.last()?.parse::<u64>().ok())?
        })
        .sum()
}

/// What the flood's answers said.
#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    refused: AtomicU64,
    servfail: AtomicU64,
    other: AtomicU64,
}

impl Counts {
    fn answered(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
            + self.servfail.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }
}

/// The flooding side, in the node namespace: binds the silent upstream,
/// sends `rate` questions a second for `seconds` from [`CLIENTS`] sockets,
/// tallies the answers, and prints one `flood sent …` line and the agent's
/// DNS metrics.
pub async fn inner(
    server: SocketAddr,
    sink: SocketAddr,
    metrics: Option<SocketAddr>,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    let sink = UdpSocket::bind(sink)
        .await
        .with_context(|| format!("binding the silent upstream {sink}"))?;
    let heard = Arc::new(AtomicU64::new(0));
    let hearing = heard.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while sink.recv_from(&mut buf).await.is_ok() {
            hearing.fetch_add(1, Ordering::Relaxed);
        }
    });
    let server_drops = socket_drops(server.port());
    let counts = Arc::new(Counts::default());
    let duration = Duration::from_secs(seconds);
    let per_client = rate as f64 / CLIENTS as f64;
    println!("flooding {server} at {rate}/s for {seconds} s");
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    let mut ports = Vec::new();
    for client in 0..CLIENTS {
        let socket = Arc::new(UdpSocket::bind("0.0.0.0:0").await?);
        socket.connect(server).await?;
        ports.push(socket.local_addr()?.port());
        tokio::spawn(tally(socket.clone(), counts.clone()));
        senders.spawn(send(socket, client, per_client, duration, counts.clone()));
    }
    while let Some(sent) = senders.join_next().await {
        sent??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + LINGER;
    while counts.answered() < counts.sent.load(Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = counts.sent.load(Ordering::Relaxed);
    println!(
        "flood sent {sent} ({:.0}/s) refused {} servfail {} other {} unanswered {} upstream_heard {}",
        sent as f64 / elapsed,
        counts.refused.load(Ordering::Relaxed),
        counts.servfail.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed),
        sent.saturating_sub(counts.answered()),
        heard.load(Ordering::Relaxed),
    );
    println!(
        "socket drops: responder {} flood clients {}",
        socket_drops(server.port()) - server_drops,
        ports.iter().map(|p| socket_drops(*p)).sum::<u64>()
    );
    if let Some(addr) = metrics {
        match scrape(addr).await {
            Ok(text) => {
                for line in text
                    .lines()
                    .filter(|l| l.starts_with("switchyard_agent_dns"))
                {
                    println!("{line}");
                }
            }
            Err(e) => println!("cannot read the agent's metrics at {addr}: {e:#}"),
        }
    }
    Ok(())
}

/// Paced sends: as many as are due by now (`per_second` since the start),
/// at most a few milliseconds' worth at once after a stall.
async fn send(
    socket: Arc<UdpSocket>,
    client: usize,
    per_second: f64,
    duration: Duration,
    counts: Arc<Counts>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let burst = (per_second / 200.0).ceil() as u64;
    let mut sent: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while started.elapsed() < duration {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * per_second) as u64;
        let behind = due.saturating_sub(sent).min(burst);
        for _ in 0..behind {
            let name = format!("f{client}-{sent}.flood.example.");
            let question = question(&name, sent as u16)?;
            // Only questions that left count as sent.
            if socket.send(&question).await.is_ok() {
                counts.sent.fetch_add(1, Ordering::Relaxed);
            }
            sent += 1;
        }
    }
    Ok(())
}

fn question(name: &str, id: u16) -> anyhow::Result<Vec<u8>> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    Ok(m.to_vec()?)
}

async fn tally(socket: Arc<UdpSocket>, counts: Arc<Counts>) {
    let mut buf = vec![0u8; 4096];
    // The header's RCODE (RFC 1035 §4.1.1) is all the tally needs; a full
    // decode would take CPU from the agent on a small machine.
    while let Ok(n) = socket.recv(&mut buf).await {
        if n < 12 {
            continue;
        }
        let counter = match ResponseCode::from_low(buf[3] & 0x0f) {
            ResponseCode::Refused => &counts.refused,
            ResponseCode::ServFail => &counts.servfail,
            _ => &counts.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// `GET /metrics` over a plain HTTP/1.1 connection the server closes.
async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body)).await??;
    Ok(body)
}
