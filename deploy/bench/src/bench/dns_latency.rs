//! DNS answer latency while the agent does its heaviest work: a query every
//! 5 ms to a real agent's responder (from its node namespace) while the
//! agent is restarted hot three times (each new agent answers from its
//! first snapshot while it compiles and applies the whole table) and runs
//! its periodic full resync (list the table back, compile, diff) every 3 s.

use std::time::Duration;

use switchyard_lab::DnsTally;

use crate::context::Ctx;
use crate::fixture;
use crate::real_agents::RealAgents;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "dns-latency";
const TARGET_P99_MS: f64 = 10.0;
const RESTARTS: usize = 3;
const RESYNC_SECONDS: &str = "3";
const QUERY_SECONDS: u64 = 30;

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    if !ctx.root {
        report.skip(format!(
            "{BENCH}: needs root (a real agent in a lab namespace)"
        ));
        return Ok(());
    }
    let shape = ctx.shape;
    report.setup(
        BENCH,
        format!(
            "control plane loaded with {} Services / {} endpoints; one real switchyard-agent in a lab node namespace \
             (--full-resync-seconds {RESYNC_SECONDS}); `switchyard-lab dns-query` in that namespace asks the agent's \
             responder for a Service's A record every 5 ms (1 s timeout) for {QUERY_SECONDS} s, during which the agent \
             is restarted hot {RESTARTS} times (each successor answers from its first snapshot while it applies the \
             whole table) and resyncs every {RESYNC_SECONDS} s.",
            shape.services,
            shape.pods()
        ),
    );
    let cp = ctx.loaded_control_plane(&shape).await?;
    let mut api = cp.api().await?;
    let mut real = RealAgents::lab(1, 1)?
        .tagged("dns")
        .configured("info", &["--full-resync-seconds", RESYNC_SECONDS]);
    real.start_agents(&ctx.bins, &cp)?;
    real.wait_acked(&mut api, cp.served_version, Duration::from_secs(600))
        .await?;
    let node = real.lab.node(1).clone();
    let name = format!(
        "{}.{}.svc.cluster.local",
        fixture::service_name(0),
        fixture::namespace(0)
    );
    let queries = real.lab.spawn(
        &node.ns,
        &[
            ctx.bins
                .join("switchyard-lab")
                .to_string_lossy()
                .into_owned(),
            "dns-query".into(),
            "--server".into(),
            format!("{}:53", node.ip),
            "--name".into(),
            name,
            "--interval-ms".into(),
            "5".into(),
            "--duration-s".into(),
            QUERY_SECONDS.to_string(),
        ],
    )?;
    let pause = Duration::from_secs(QUERY_SECONDS) / (RESTARTS as u32 + 1);
    for _ in 0..RESTARTS {
        tokio::time::sleep(pause).await;
        real.hot_restart(&ctx.bins, &cp).await?;
    }
    queries.wait_for_log("queries ", Duration::from_secs(QUERY_SECONDS + 30))?;
    let log = queries.log();
    let tally = DnsTally::from_log(&log)
        .ok_or_else(|| anyhow::anyhow!("dns-query printed no summary:\n{log}"))?;
    cp.stop();
    let scale = format!("{} svc / {} endpoints", shape.services, shape.pods());
    let x = shape.services as f64;
    report.push(Row::at(BENCH, "answer-latency", &scale, x).measured(
        "ms",
        Summary::of_dns(&tally),
        Some(Target::p99(TARGET_P99_MS)),
    ));
    report.push(Row::at(BENCH, "unanswered", &scale, x).measured(
        "queries",
        Summary::single((tally.unanswered + tally.failed) as f64),
        Some(Target::median(0.0)),
    ));
    report.note(
        BENCH,
        format!(
            "{} queries, max {:.1} ms, {} unanswered, {} failed",
            tally.queries, tally.max_ms, tally.unanswered, tally.failed
        ),
    );
    Ok(())
}
