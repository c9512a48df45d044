//! The store backends side by side: the same writes and the same changes
//! through a control plane on its embedded sled store and one on a
//! three-member etcd (Debian's etcd, data on tmpfs, clients on mutual
//! TLS), in alternating rounds so the machine's drift falls on both alike.
//! Issue 17's bounds: etcd takes at least 1,000 writes/s, and programming
//! latency on etcd stays within 1.5x of sled's (p99).

use switchyard_lab::etcd::EtcdCluster;

use super::compare::{measure, Figures, Plan};
use crate::context::Ctx;
use crate::control_plane::Transport;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "store";
/// 1,000 writes/s as the time one write costs the pipeline.
const MAX_MS_PER_WRITE: f64 = 1.0;
const MAX_LATENCY_RATIO: f64 = 1.5;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sled,
    Etcd,
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    if switchyard_lab::find_tool("etcd").is_none() {
        report.skip("store: etcd is not installed (apt-get install etcd-server)");
        return Ok(());
    }
    let plan = Plan::for_ctx(ctx);
    let (shape, agents, reps, rounds) = (&plan.shape, plan.agents, plan.reps, plan.rounds);
    report.setup(
        BENCH,
        format!(
            "{rounds} rounds, each a fresh control plane on sled and one on a 3-member etcd on tmpfs \
             (a fresh --etcd-prefix each round; order alternating): {} Services and {} Pods written with \
             64 in flight (writes/s), then {agents} hollow agents and {reps} rounds of the programming \
             changes timed to the last ACK. ms-per-write = 1000 / etcd's Service writes/s; \
             latency-ratio = etcd's p99 / sled's p99.",
            shape.services,
            shape.pods(),
        ),
    );
    let etcd = EtcdCluster::start(3)?;
    let mut sled = Figures::default();
    let mut on_etcd = Figures::default();
    for round in 0..rounds {
        let order = match round % 2 {
            0 => [Backend::Sled, Backend::Etcd],
            _ => [Backend::Etcd, Backend::Sled],
        };
        for backend in order {
            eprintln!("  {BENCH}: round {}/{rounds}, {backend:?}", round + 1);
            let (figures, extra) = match backend {
                Backend::Sled => (&mut sled, Vec::new()),
                Backend::Etcd => {
                    let mut flags = etcd.control_plane_flags();
                    flags.extend(["--etcd-prefix".into(), format!("/bench-{round}")]);
                    (&mut on_etcd, flags)
                }
            };
            measure(ctx, &plan, Transport::Tls, &extra, figures).await?;
        }
    }
    let (scale, x) = plan.scale();
    sled.report(BENCH, "sled", &scale, x, report);
    on_etcd.report(BENCH, "etcd", &scale, x, report);
    let median = |v: &[f64]| Summary::of(v).map(|s| s.median).unwrap_or(f64::NAN);
    let p99 = |v: &[f64]| Summary::of(v).map(|s| s.p99).unwrap_or(f64::NAN);
    report.push(Row::at(BENCH, "ms-per-write@etcd", &scale, x).measured(
        "ms",
        Summary::single(1000.0 / median(&on_etcd.service_writes)),
        Some(Target::median(MAX_MS_PER_WRITE)),
    ));
    report.push(Row::at(BENCH, "latency-ratio", &scale, x).measured(
        "x",
        Summary::single(p99(&on_etcd.latencies_ms) / p99(&sled.latencies_ms)),
        Some(Target::median(MAX_LATENCY_RATIO)),
    ));
    Ok(())
}
