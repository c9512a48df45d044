//! Benchmark 5, memory and wire cost: resident memory of the real control
//! plane and agent processes with the big cluster loaded (peak `VmHWM` and
//! current `VmRSS` from `/proc`), and bytes sent to an agent for one endpoint
//! change with a small and the big cluster loaded.

use std::time::Duration;

use anyhow::Context as _;

use crate::context::Ctx;
use crate::fixture::{self, Shape};
use crate::real_agents::RealAgents;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;
use crate::wire::{wire_size, Probe};

pub const BENCH: &str = "memory-and-wire";
const AGENT_MIB: f64 = 100.0;
const CONTROL_PLANE_MIB: f64 = 300.0;
const CHANGE_BYTES: f64 = 1024.0;
/// The agent's periodic full resync (read the table back, repair drift) is
/// part of its life: it runs this often here, and twice before the reading.
const RESYNC_SECONDS: &str = "5";
const RESYNCS: usize = 2;
const RESYNC_LOGGED: &str = "periodic full resync";
const SMALL: Shape = Shape {
    services: 100,
    endpoints: 10,
};

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let shape = ctx.shape;
    report.setup(
        BENCH,
        format!(
            "RSS of the real processes from /proc/<pid>/status (VmHWM = peak, judged; VmRSS = now) with {} Services / {} endpoints \
             loaded, after serving a full snapshot; the agent is a real switchyard-agent with real nftables in a lab namespace, \
             read after its initial sync and {RESYNCS} periodic full resyncs (--full-resync-seconds {RESYNC_SECONDS}: each lists \
             the whole table with `nft -j` and repairs any drift). \
             Wire: a probe agent on the snapshot stream measures the full push it gets first (all its parts), then flips \
             one endpoint's readiness and measures the delta push (protobuf + 5-byte gRPC frame per message), with {} \
             and with {} Services loaded.",
            shape.services,
            shape.pods(),
            SMALL.services,
            shape.services
        ),
    );
    let reps = if ctx.quick { 10 } else { 30 };
    wire(ctx, report, &SMALL, reps).await?;
    wire(ctx, report, &shape, reps).await?;
    memory(ctx, report, &shape).await
}

async fn wire(ctx: &Ctx, report: &mut Report, shape: &Shape, reps: usize) -> anyhow::Result<()> {
    let cp = ctx.loaded_control_plane(shape).await?;
    let mut api = cp.api().await?;
    let (mut probe, full) =
        Probe::connect(cp.identities()?.node("wire-probe").await?, "wire-probe").await?;
    let scale = format!("{} services", shape.services);
    let x = shape.services as f64;
    report.push(Row::at(BENCH, "full-snapshot-bytes", &scale, x).measured(
        "B",
        Summary::single(wire_size(&full) as f64),
        None,
    ));
    let mut sizes = Vec::new();
    for k in 0..reps {
        let i = (k * 7919) % shape.services;
        let (ns, pod, node) = (
            fixture::namespace(i),
            fixture::pod_name(i, 0),
            fixture::node_name(i, 0),
        );
        let rev = api.set_ready(&ns, &pod, &node, false).await?;
        sizes.push(probe.bytes_until(rev).await? as f64);
        let rev = api.set_ready(&ns, &pod, &node, true).await?;
        sizes.push(probe.bytes_until(rev).await? as f64);
    }
    if let Some(s) = Summary::of(&sizes) {
        report.push(Row::at(BENCH, "endpoint-change-bytes", &scale, x).measured(
            "B",
            s,
            Some(Target::p99(CHANGE_BYTES)),
        ));
    }
    drop(probe);
    cp.stop();
    Ok(())
}

async fn memory(ctx: &Ctx, report: &mut Report, shape: &Shape) -> anyhow::Result<()> {
    let cp = ctx.loaded_control_plane(shape).await?;
    let (probe, _full) =
        Probe::connect(cp.identities()?.node("memory-probe").await?, "memory-probe").await?;
    let scale = format!("{} svc / {} endpoints", shape.services, shape.pods());
    let x = shape.services as f64;
    if ctx.root {
        let mut real = RealAgents::lab(1, 1)?.configured(
            "warn,switchyard_agent::runtime=info",
            &["--full-resync-seconds", RESYNC_SECONDS],
        );
        real.start_agents(&ctx.bins, &cp)
            .context("starting a real agent")?;
        let mut api = cp.api().await?;
        real.wait_acked(&mut api, cp.served_version, Duration::from_secs(900))
            .await?;
        real.wait_logged(RESYNC_LOGGED, RESYNCS, Duration::from_secs(300))
            .await?;
        for m in real.memory()? {
            report.push(Row::at(BENCH, "agent-peak-rss", &scale, x).measured(
                "MiB",
                Summary::single(m.peak_mib),
                Some(Target::median(AGENT_MIB)),
            ));
            report.push(Row::at(BENCH, "agent-rss", &scale, x).measured(
                "MiB",
                Summary::single(m.rss_mib),
                None,
            ));
        }
    } else {
        report.skip(format!(
            "{BENCH}: agent memory (a real agent needs root for nftables)"
        ));
    }
    let m = cp.memory()?;
    report.push(
        Row::at(BENCH, "control-plane-peak-rss", &scale, x).measured(
            "MiB",
            Summary::single(m.peak_mib),
            Some(Target::median(CONTROL_PLANE_MIB)),
        ),
    );
    report.push(Row::at(BENCH, "control-plane-rss", &scale, x).measured(
        "MiB",
        Summary::single(m.rss_mib),
        None,
    ));
    drop(probe);
    cp.stop();
    Ok(())
}
