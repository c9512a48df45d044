//! Benchmark 3, incremental sync: the agent-side cost of one change
//! (`DataPath::apply_changes`, what the agent runs for a delta push:
//! recompile the changed Service, its element-only delta, one netlink
//! batch) with 10,000 Services loaded, against the same change with 100
//! Services loaded, and the table's chain and rule counts at both (the
//! constant layout's: equal). The measuring process runs inside a
//! throwaway network namespace, as an agent runs on its host, so no
//! `ip netns exec` is timed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{bail, Context as _};
use rand::{Rng, SeedableRng};
use switchyard_agent::model::{NodeContext, ServiceKey, Snapshot};
use switchyard_agent::nft::{DataPath, NftCommand};

use crate::context::Ctx;
use crate::fixture::{self, Shape};
use crate::netns::Netns;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "incremental-sync";
const TARGET_MS: f64 = 1.0;
const TARGET_RATIO: f64 = 1.5;
const SMALL: usize = 100;
const CASES: [&str; 3] = ["endpoint-change", "service-add", "service-delete"];
/// Table sizes.
const SIZES: [&str; 2] = ["chains", "rules"];

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    if !report.has_root(ctx.root, BENCH) {
        return Ok(());
    }
    let big = ctx.shape.services;
    let reps = if ctx.quick { 10 } else { 30 };
    report.setup(
        BENCH,
        format!(
            "agent data path alone (DataPath::apply_changes, as for a delta push; release build) in a fresh namespace, run from inside it; table \
             loaded with {SMALL} or {big} Services x {} endpoints; one change per apply: an endpoint turning unready \
             or ready again, a Service with {} endpoints added, then deleted; {reps} of each.",
            ctx.shape.endpoints, ctx.shape.endpoints
        ),
    );
    let small = measure(ctx, SMALL, reps)?;
    let large = measure(ctx, big, reps)?;
    for (services, samples) in [(SMALL, &small), (big, &large)] {
        let scale = format!("{services} services");
        for case in CASES {
            if let Some(s) = samples.get(case).and_then(|v| Summary::of(v)) {
                let target = (services == big).then_some(Target::p99(TARGET_MS));
                report
                    .push(Row::at(BENCH, case, &scale, services as f64).measured("ms", s, target));
            }
        }
        for size in SIZES {
            if let Some(s) = samples.get(size).and_then(|v| Summary::of(v)) {
                report
                    .push(Row::at(BENCH, size, &scale, services as f64).measured("count", s, None));
            }
        }
        if let Some(load) = samples.get("initial-load").and_then(|v| Summary::of(v)) {
            report.push(
                Row::at(BENCH, "initial-load", &scale, services as f64).measured("ms", load, None),
            );
        }
    }
    for case in CASES {
        let p99 = |m: &BTreeMap<String, Vec<f64>>| {
            m.get(case).and_then(|v| Summary::of(v)).map(|s| s.p99)
        };
        if let (Some(a), Some(b)) = (p99(&large), p99(&small)) {
            report.push(
                Row::at(
                    BENCH,
                    &format!("{case}-ratio"),
                    format!("{big} vs {SMALL} services"),
                    big as f64,
                )
                .measured(
                    "x",
                    Summary::single(a / b),
                    Some(Target::median(TARGET_RATIO)),
                ),
            );
        }
    }
    Ok(())
}

/// Runs [`inner`] in a fresh namespace and parses its samples.
fn measure(ctx: &Ctx, services: usize, reps: usize) -> anyhow::Result<BTreeMap<String, Vec<f64>>> {
    eprintln!("  {BENCH}: {services} services…");
    let ns = Netns::new("inc")?;
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let out = ns.exec(&[
        &exe,
        "incremental-inner",
        "--services",
        &services.to_string(),
        "--reps",
        &reps.to_string(),
    ])?;
    let _ = ctx;
    serde_json::from_slice(&out.stdout).context("parsing the inner run's samples")
}

/// The measuring side, run inside the namespace: prints samples as JSON.
pub async fn inner(services: usize, reps: usize) -> anyhow::Result<()> {
    let shape = Shape {
        services,
        endpoints: 10,
    };
    let node = NodeContext {
        zone: None,
        node_name: fixture::node_name(0, 0),
        node_ips: vec![std::net::Ipv4Addr::new(172, 18, 0, 11)],
        pod_cidr: "10.244.1.0/24".parse().ok(),
    };
    let mut snap = fixture::snapshot(&shape);
    let mut dp = DataPath::open("switchyard", NftCommand::new()).await?;
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let t = Instant::now();
    dp.apply(&node, &snap).await?;
    samples.insert("initial-load".into(), vec![ms(t)]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let extra = fixture::service_key(services + 1);
    for _ in 0..reps {
        let i = rng.random_range(0..services);
        let key = fixture::service_key(i);
        for ready in [false, true] {
            set_ready(&mut snap, &key, ready)?;
            let ms = timed(&mut dp, &node, &mut snap, &key).await?;
            samples
                .entry("endpoint-change".into())
                .or_default()
                .push(ms);
        }
        snap.services
            .insert(extra.clone(), fixture::service_entry(&shape, services + 1));
        let ms = timed(&mut dp, &node, &mut snap, &extra).await?;
        samples.entry("service-add".into()).or_default().push(ms);
        snap.services.remove(&extra);
        let ms = timed(&mut dp, &node, &mut snap, &extra).await?;
        samples.entry("service-delete".into()).or_default().push(ms);
    }
    let (chains, rules) = table_size("switchyard")?;
    samples.insert("chains".into(), vec![chains]);
    samples.insert("rules".into(), vec![rules]);
    println!("{}", serde_json::to_string(&samples)?);
    Ok(())
}

/// Chains and rules of `table`, as `nft -j list table` shows them.
fn table_size(table: &str) -> anyhow::Result<(f64, f64)> {
    let out = std::process::Command::new("nft")
        .args(["-j", "list", "table", "ip", table])
        .output()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let objects = json["nftables"].as_array().cloned().unwrap_or_default();
    let count = |kind: &str| objects.iter().filter(|o| o.get(kind).is_some()).count() as f64;
    Ok((count("chain"), count("rule")))
}

fn set_ready(snap: &mut Snapshot, key: &ServiceKey, ready: bool) -> anyhow::Result<()> {
    let Some(svc) = snap.services.get_mut(key) else {
        bail!("no service {key}");
    };
    if let Some(ep) = svc.endpoints.first_mut() {
        ep.ready = ready;
        ep.serving = ready;
    }
    Ok(())
}

/// One incremental apply, as the agent runs it for a delta naming `key`.
async fn timed(
    dp: &mut DataPath<NftCommand>,
    node: &NodeContext,
    snap: &mut Snapshot,
    key: &ServiceKey,
) -> anyhow::Result<f64> {
    snap.version += 1;
    let changed = BTreeSet::from([key.clone()]);
    let t = Instant::now();
    dp.apply_changes(node, snap, &changed).await?;
    Ok(ms(t))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
