//! `switchyard-lab dns-query`: one DNS question at a steady pace, each
//! waited for, with a tally of what went unanswered and the latency
//! percentiles, so tests and benchmarks can show that DNS kept answering
//! across a restart or a full sync.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use switchyard_lab::DnsTally;

#[derive(Debug, Args)]
pub struct DnsQueryArgs {
    /// The DNS server, e.g. the cluster DNS address 10.96.0.10:53.
    #[arg(long)]
    server: SocketAddr,
    /// The name to ask for (type A); the answer must be NOERROR with at
    /// least one record to count as answered.
    #[arg(long)]
    name: String,
    /// Pause between a reply (or a timeout) and the next query.
    #[arg(long, default_value_t = 5)]
    interval_ms: u64,
    /// How long to wait for each reply.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Stop after this long.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Stop as soon as this file exists (before --duration-s).
    #[arg(long)]
    until_file: Option<PathBuf>,
    /// Print `answered N` each time N is a multiple of this (0: never), so
    /// a test can wait for answers between the disturbances it makes.
    #[arg(long, default_value_t = 0)]
    progress_every: u64,
}

/// What came of the queries so far.
#[derive(Debug, Default)]
struct Tally {
    answered: u64,
    unanswered: u64,
    failed: u64,
    latencies: Vec<Duration>,
}

/// Prints one line per query that failed, then the tally; returns false
/// when any query went unanswered or failed.
pub fn run(args: &DnsQueryArgs) -> Result<bool> {
    let name = Name::from_str(&args.name).with_context(|| format!("--name {}", args.name))?;
    let socket = UdpSocket::bind("0.0.0.0:0").context("binding a UDP socket")?;
    socket.connect(args.server)?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let end = Instant::now() + Duration::from_secs(args.duration_s);
    let mut tally = Tally::default();
    let mut id: u16 = rand::random();
    while Instant::now() < end && !args.until_file.as_ref().is_some_and(|f| f.exists()) {
        id = id.wrapping_add(1);
        let before = tally.answered;
        ask(&socket, &name, id, timeout, &mut tally)?;
        if before == 0 && tally.answered == 1 {
            println!("{}", DnsTally::FIRST_ANSWER);
        }
        if tally.answered > before
            && args.progress_every > 0
            && tally.answered % args.progress_every == 0
        {
            println!("{}", DnsTally::progress_line(tally.answered));
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms));
    }
    print(&tally);
    Ok(tally.unanswered == 0 && tally.failed == 0)
}

fn ask(
    socket: &UdpSocket,
    name: &Name,
    id: u16,
    timeout: Duration,
    tally: &mut Tally,
) -> Result<()> {
    let mut query = Message::query();
    query.metadata.id = id;
    query.add_query(Query::query(name.clone(), RecordType::A));
    let bytes = query.to_vec().context("encoding the query")?;
    let sent = Instant::now();
    // A refused port (no socket bound) reads as no reply, as for a client.
    if socket.send(&bytes).is_err() {
        std::thread::sleep(timeout);
        tally.unanswered += 1;
        println!("query {id}: unanswered (send failed)");
        return Ok(());
    }
    let mut buf = [0u8; 4096];
    loop {
        let left = timeout.saturating_sub(sent.elapsed());
        if left.is_zero() {
            tally.unanswered += 1;
            println!("query {id}: unanswered");
            return Ok(());
        }
        socket.set_read_timeout(Some(left))?;
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if reply.metadata.id != id {
            continue;
        }
        let rcode = reply.metadata.response_code;
        if rcode == ResponseCode::NoError && !reply.answers.is_empty() {
            tally.answered += 1;
            tally.latencies.push(sent.elapsed());
        } else {
            tally.failed += 1;
            println!("query {id}: {rcode} with {} answers", reply.answers.len());
        }
        return Ok(());
    }
}

fn print(tally: &Tally) {
    let mut sorted = tally.latencies.clone();
    sorted.sort();
    let pick = |q: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted[i].as_secs_f64() * 1000.0
    };
    let summary = DnsTally {
        queries: tally.answered + tally.unanswered + tally.failed,
        answered: tally.answered,
        unanswered: tally.unanswered,
        failed: tally.failed,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
    };
    println!("{summary}");
}
