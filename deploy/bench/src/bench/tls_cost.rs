//! What mutual TLS costs: the same writes and the same changes through a
//! control plane serving TLS (as in production) and one started with
//! `--insecure`, in alternating rounds so the machine's drift falls on
//! both alike. Issue 14's bound: TLS costs at most 15%.

use std::time::Duration;

use crate::context::Ctx;
use crate::control_plane::{ControlPlane, Transport};
use crate::fixture::Shape;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "tls-cost";
const MAX_COST: f64 = 1.15;

/// One transport's figures over the rounds.
#[derive(Default)]
struct Figures {
    service_writes: Vec<f64>,
    pod_writes: Vec<f64>,
    latencies_ms: Vec<f64>,
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (shape, agents, reps, rounds) = match ctx.quick {
        true => (
            Shape {
                services: 300,
                endpoints: 10,
            },
            25,
            5,
            2,
        ),
        false => (
            Shape {
                services: 1_000,
                endpoints: 10,
            },
            100,
            10,
            3,
        ),
    };
    report.setup(
        BENCH,
        format!(
            "{rounds} rounds, each a fresh control plane with TLS and one with --insecure (order alternating): \
             {} Services and {} Pods written with 64 in flight (writes/s), then {agents} hollow agents (each \
             its own connection and, with TLS, its own node certificate) and {reps} rounds of the programming \
             changes (endpoint unready/ready, Service add/delete) timed to the last ACK. cost = plaintext \
             writes/s / TLS writes/s, and TLS latency / plaintext latency (medians).",
            shape.services,
            shape.pods(),
        ),
    );
    let mut tls = Figures::default();
    let mut plain = Figures::default();
    for round in 0..rounds {
        let order = match round % 2 {
            0 => [Transport::Tls, Transport::Plaintext],
            _ => [Transport::Plaintext, Transport::Tls],
        };
        for transport in order {
            eprintln!("  {BENCH}: round {}/{rounds}, {transport:?}", round + 1);
            let figures = match transport {
                Transport::Tls => &mut tls,
                Transport::Plaintext => &mut plain,
            };
            measure(ctx, &shape, transport, agents, reps, figures).await?;
        }
    }
    let scale = format!("{} svc, {agents} agents", shape.services);
    let x = shape.services as f64;
    let median = |v: &[f64]| Summary::of(v).map(|s| s.median).unwrap_or(f64::NAN);
    for (name, f) in [("tls", &tls), ("plaintext", &plain)] {
        for (case, values, unit) in [
            ("service-writes-per-second", &f.service_writes, "1/s"),
            ("pod-writes-per-second", &f.pod_writes, "1/s"),
            ("programming-latency", &f.latencies_ms, "ms"),
        ] {
            if let Some(s) = Summary::of(values) {
                report.push(
                    Row::at(BENCH, &format!("{case}@{name}"), &scale, x).measured(unit, s, None),
                );
            }
        }
    }
    let costs = [
        (
            "service-writes-cost",
            median(&plain.service_writes) / median(&tls.service_writes),
        ),
        (
            "pod-writes-cost",
            median(&plain.pod_writes) / median(&tls.pod_writes),
        ),
        (
            "programming-latency-cost",
            median(&tls.latencies_ms) / median(&plain.latencies_ms),
        ),
    ];
    for (case, cost) in costs {
        report.push(Row::at(BENCH, case, &scale, x).measured(
            "x",
            Summary::single(cost),
            Some(Target::median(MAX_COST)),
        ));
    }
    Ok(())
}

async fn measure(
    ctx: &Ctx,
    shape: &Shape,
    transport: Transport,
    agents: usize,
    reps: usize,
    into: &mut Figures,
) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("tls-cost-")
        .tempdir_in(ctx.work())?;
    let cp = ControlPlane::start_with(&ctx.bins, dir.path(), ctx.work(), transport).await?;
    let stats = super::api::load(&cp, shape).await?;
    into.service_writes.push(stats.services.per_second());
    into.pod_writes.push(stats.pods.per_second());
    let latencies = super::programming::hollow_latencies(&cp, shape, agents, reps).await?;
    into.latencies_ms.extend(latencies);
    cp.stop();
    // Let the stopped control plane's sockets and pages go before the next.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
