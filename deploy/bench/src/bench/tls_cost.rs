//! What mutual TLS costs: the same writes and the same changes through a
//! control plane serving TLS (as in production) and one started with
//! `--insecure`, in alternating rounds so the machine's drift falls on
//! both alike. Issue 14's bound: TLS costs at most 15%.

use super::compare::{measure, Figures, Plan};
use crate::context::Ctx;
use crate::control_plane::Transport;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "tls-cost";
const MAX_COST: f64 = 1.15;

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let plan = Plan::for_ctx(ctx);
    let (shape, agents, reps, rounds) = (&plan.shape, plan.agents, plan.reps, plan.rounds);
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
            measure(ctx, &plan, transport, &[], figures).await?;
        }
    }
    let (scale, x) = plan.scale();
    let median = |v: &[f64]| Summary::of(v).map(|s| s.median).unwrap_or(f64::NAN);
    tls.report(BENCH, "tls", &scale, x, report);
    plain.report(BENCH, "plaintext", &scale, x, report);
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
