//! Benchmark 2, full sync: a real agent starting (empty table, fresh lab
//! namespace) against the big cluster, timed from process start to its ACK
//! of the current version, i.e. until its table is complete. The floor is
//! `nft -f` of the very script the agent's first transaction runs, written
//! in native syntax by the same compiler and loaded into a fresh namespace
//! in the same run.

use std::time::{Duration, Instant};

use switchyard_agent::model::NodeContext;
use switchyard_agent::nft::DataPath;
use switchyard_agent::view::ClusterView;
use tonic::transport::Channel;

use crate::context::Ctx;
use crate::hollow::HollowRunner;
use crate::netns::Netns;
use crate::real_agents::RealAgents;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;
use crate::wire::Probe;

pub const BENCH: &str = "full-sync";
const TARGET_MS: f64 = 3000.0;
const TARGET_RATIO: f64 = 1.5;

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    if !report.has_root(ctx.root, BENCH) {
        return Ok(());
    }
    let shape = ctx.shape;
    let reps = if ctx.quick { 2 } else { 3 };
    report.setup(
        BENCH,
        format!(
            "control plane loaded with {} Services / {} endpoints; a real switchyard-agent starts in a fresh lab node \
             namespace (empty nftables) and is timed from spawn to its ACK; floor = `nft -f` of the agent's own first \
             transaction script (native syntax, same ruleset) into a fresh namespace; {reps} runs each.",
            shape.services,
            shape.pods()
        ),
    );
    let cp = ctx.loaded_control_plane(&shape).await?;
    let mut api = cp.api().await?;
    let rev = cp.served_version;
    let mut agent_ms = Vec::new();
    let mut floor_ms = Vec::new();
    let mut script_bytes = 0;
    for run in 0..reps {
        eprintln!("  {BENCH}: run {}/{reps}", run + 1);
        let mut real = RealAgents::lab(1, 1)?.tagged(&format!("fs{run}"));
        let t0 = Instant::now();
        real.start_agents(&ctx.bins, &cp)?;
        let done = real
            .wait_acked(&mut api, rev, Duration::from_secs(1800))
            .await?;
        agent_ms.push(done.duration_since(t0).as_secs_f64() * 1e3);
        let node = real.lab.node(1).clone();
        let node_ctx = NodeContext {
            zone: None,
            node_name: real.names()[0].clone(),
            node_ips: vec![node.ip],
            pod_cidr: node.pod_cidr,
        };
        drop(real);
        let script = agent_script(cp.identities()?.node("floor-probe").await?, &node_ctx).await?;
        script_bytes = script.len();
        floor_ms.push(nft_load_ms(ctx, &script)?);
    }
    cp.stop();
    let scale = format!("{} svc / {} endpoints", shape.services, shape.pods());
    let x = shape.services as f64;
    let (Some(agent), Some(floor)) = (Summary::of(&agent_ms), Summary::of(&floor_ms)) else {
        return Ok(());
    };
    report.push(Row::at(BENCH, "agent-start-to-ack", &scale, x).measured(
        "ms",
        agent,
        Some(Target::p99(TARGET_MS)),
    ));
    report.push(Row::at(BENCH, "nft-f-floor", &scale, x).measured("ms", floor, None));
    report.push(Row::at(BENCH, "agent-vs-floor", &scale, x).measured(
        "x",
        Summary::single(agent.median / floor.median),
        Some(Target::median(TARGET_RATIO)),
    ));
    report.note(
        BENCH,
        format!(
            "the first transaction script is {:.1} MiB",
            script_bytes as f64 / 1048576.0
        ),
    );
    Ok(())
}

/// The script the agent's first transaction runs for what the control
/// plane serves now, from the same view folding and compiler.
async fn agent_script(channel: Channel, node: &NodeContext) -> anyhow::Result<String> {
    let (probe, full) = Probe::connect(channel, "floor-probe").await?;
    drop(probe);
    let view = full
        .into_iter()
        .fold(ClusterView::default(), |view, part| view.fold(part));
    let snap = view.data_path_snapshot();
    let dp = DataPath::open("switchyard", HollowRunner::default()).await?;
    Ok(dp.full_load(node, &snap))
}

/// `nft -f` of `script` into a fresh namespace, in milliseconds.
fn nft_load_ms(ctx: &Ctx, script: &str) -> anyhow::Result<f64> {
    let path = ctx.work().join("floor.nft");
    std::fs::write(&path, script)?;
    let ns = Netns::new("floor")?;
    let path = path.to_string_lossy().into_owned();
    let t = Instant::now();
    ns.exec(&["nft", "-f", &path])?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}
