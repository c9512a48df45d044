//! Churn soak: endpoint changes as fast as the control plane takes them
//! (readiness flaps reported by the pods' nodes, pods deleted and created
//! again) against 1,000 Services, with 2 real agents on real nftables and
//! 100 hollow agents. At each tenth it prints changes/s, NACKs and the
//! resident memory of the control plane and the real agents; at the end
//! every agent must have ACKed the last revision without a NACK, and each
//! real agent, restarted, must find its table equal to a from-scratch
//! compile of the final snapshot (its first apply changes nothing).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::api::Api;
use crate::context::Ctx;
use crate::fixture::{self, Shape};
use crate::hollow::Fleet;
use crate::real_agents::RealAgents;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "churn-soak";
/// Concurrent writers: enough to keep the control plane's commit queue full.
const WRITERS: usize = 16;
/// Memory of the last tenth against the first after warm-up, at most.
const RSS_GROWTH_PCT: f64 = 5.0;
/// What an apply of the restarted agents logs when it changes nothing.
const NOTHING_CHANGED: &str =
    "chains_rewritten: 0, elements_added: 0, elements_deleted: 0, sets_created: 0, sets_deleted: 0";

/// How big a soak is.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub changes: u64,
    pub hollow: usize,
}

/// One tenth's reading.
struct Tenth {
    changes: u64,
    per_second: f64,
    nacks: u64,
    control_plane_mib: f64,
    agents_mib: Vec<f64>,
    revision: u64,
    store_mib: f64,
}

pub async fn run(ctx: &Ctx, report: &mut Report, size: Size) -> anyhow::Result<()> {
    let shape = Shape {
        services: if ctx.services_override {
            ctx.shape.services
        } else {
            1_000
        },
        endpoints: 10,
    };
    report.setup(
        BENCH,
        format!(
            "{} endpoint changes with {WRITERS} writers against {} Services / {} pods: 90% readiness flaps reported by the pod's \
             node, 10% a pod deleted and created again (two changes); {} hollow agents and {} real agents (real nftables in lab \
             namespaces). RSS from /proc at each tenth; at the end every agent must ACK the last revision, and each real agent, \
             restarted, must find nothing to change in its table.",
            size.changes,
            shape.services,
            shape.pods(),
            size.hollow,
            if ctx.root { 2 } else { 0 },
        ),
    );
    let cp = ctx.loaded_control_plane(&shape).await?;
    let ids = cp.identities()?;
    ids.join_fixture_nodes().await?;
    let mut fleet = Fleet::default();
    fleet.grow_to(size.hollow, &ids).await?;
    let mut real = match ctx.root {
        true => Some(
            RealAgents::lab(2, 1)?
                .tagged("soak")
                .configured("info", &[]),
        ),
        false => {
            report.skip(format!(
                "{BENCH}: not root, so no real agents (hollow ones only)"
            ));
            None
        }
    };
    if let Some(real) = real.as_mut() {
        real.start_agents(&ctx.bins, &cp)?;
    }
    let mut api = cp.api().await?;
    let start_rev = cp.served_version;
    fleet
        .wait_acked(start_rev, Duration::from_secs(120))
        .await?;
    if let Some(real) = &real {
        real.wait_acked(&mut api, start_rev, Duration::from_secs(300))
            .await?;
    }

    let done = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(start_rev));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (api, done, written) = (api.clone(), done.clone(), written.clone());
            tokio::spawn(churn(w, api, shape, size.changes, done, written))
        })
        .collect();
    let mut tenths: Vec<Tenth> = Vec::new();
    let mut last = (0u64, Instant::now());
    let started = Instant::now();
    for tenth in 1..=10u64 {
        let goal = size.changes * tenth / 10;
        while done.load(Ordering::Relaxed) < goal {
            if writers.iter().all(|w| w.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let now = (done.load(Ordering::Relaxed), Instant::now());
        let reading = Tenth {
            changes: now.0,
            per_second: (now.0 - last.0) as f64 / now.1.duration_since(last.1).as_secs_f64(),
            nacks: fleet.nacks(),
            control_plane_mib: cp.memory()?.rss_mib,
            agents_mib: match &real {
                Some(r) => r.memory()?.iter().map(|m| m.rss_mib).collect(),
                None => Vec::new(),
            },
            revision: api.revision().await?,
            store_mib: dir_mib(cp.data_dir()),
        };
        print_tenth(tenth, &reading);
        tenths.push(reading);
        last = now;
    }
    for w in writers {
        w.await??;
    }
    let elapsed = started.elapsed();
    // The last write's revision: the versions agents ACK are revisions of
    // writes that change what they serve (this one, or its EndpointSlice).
    let final_rev = written.load(Ordering::SeqCst);
    fleet
        .wait_acked(final_rev, Duration::from_secs(300))
        .await?;
    let mut real_nacks = 0;
    if let Some(real) = real.as_mut() {
        real.wait_acked(&mut api, final_rev, Duration::from_secs(300))
            .await?;
        real_nacks = real.count_logged("nftables apply failed");
        real.restart_agents(&ctx.bins, &cp)?;
        real.wait_logged("applied", 1, Duration::from_secs(300))
            .await?;
        for log in real.logs() {
            let first = log
                .lines()
                .find(|l| l.contains(" applied"))
                .unwrap_or_default();
            if !first.contains(NOTHING_CHANGED) {
                bail!("a restarted agent's table differed from a from-scratch compile: {first}");
            }
        }
    }
    let nacks = fleet.nacks() + real_nacks;
    let revisions = api.revision().await?.saturating_sub(start_rev);
    record(report, &tenths, size, elapsed, nacks, revisions);
    Ok(())
}

/// One writer's share of the changes; each writer owns every WRITERS-th
/// Service, so no two write the same pod.
async fn churn(
    w: usize,
    mut api: Api,
    shape: Shape,
    changes: u64,
    done: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(w as u64);
    let services: Vec<usize> = (w..shape.services).step_by(WRITERS).collect();
    let mut unready = std::collections::BTreeSet::new();
    while done.load(Ordering::Relaxed) < changes {
        let i = services[rng.random_range(0..services.len())];
        let j = rng.random_range(0..shape.endpoints);
        let (ns, pod, node) = (
            fixture::namespace(i),
            fixture::pod_name(i, j),
            fixture::node_name(i, j),
        );
        if rng.random_bool(0.9) {
            // Unready pods turn ready again, ready ones unready.
            let ready = unready.remove(&(i, j));
            if !ready {
                unready.insert((i, j));
            }
            let rev = api.set_ready(&ns, &pod, &node, ready).await?;
            written.fetch_max(rev, Ordering::SeqCst);
            done.fetch_add(1, Ordering::Relaxed);
        } else {
            api.delete("Pod", &ns, &pod).await?;
            let rev = api
                .apply(&fixture::pod_json(&shape, i, j, Some(true)))
                .await?;
            written.fetch_max(rev, Ordering::SeqCst);
            unready.remove(&(i, j));
            done.fetch_add(2, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn dir_mib(dir: &std::path::Path) -> f64 {
    fn size(p: &std::path::Path) -> u64 {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|entries| entries.flatten().map(|e| size(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    size(dir) as f64 / (1024.0 * 1024.0)
}

fn print_tenth(tenth: u64, t: &Tenth) {
    let agents: Vec<String> = t.agents_mib.iter().map(|m| format!("{m:.1}")).collect();
    let mut out = std::io::stderr();
    let _ = writeln!(
        out,
        "  {BENCH}: tenth {tenth:>2}: {:>9} changes  {:>7.0} changes/s  NACKs {}  control plane {:.1} MiB  real agents [{}] MiB  revision {}  store {:.1} MiB",
        t.changes,
        t.per_second,
        t.nacks,
        t.control_plane_mib,
        agents.join(", "),
        t.revision,
        t.store_mib
    );
}

fn record(
    report: &mut Report,
    tenths: &[Tenth],
    size: Size,
    elapsed: Duration,
    nacks: u64,
    revisions: u64,
) {
    let scale = format!("{} changes", size.changes);
    let x = size.changes as f64;
    let rates: Vec<f64> = tenths.iter().map(|t| t.per_second).collect();
    if let Some(s) = Summary::of(&rates) {
        report.push(
            Row::at(BENCH, "changes-per-second", scale.clone(), x).measured("changes/s", s, None),
        );
    }
    report.push(Row::at(BENCH, "nacks", scale.clone(), x).measured(
        "NACKs",
        Summary::single(nacks as f64),
        Some(Target::median(0.0)),
    ));
    // The first tenth warms caches and the allocator up.
    let growth = |first: f64, last: f64| (last - first) / first * 100.0;
    if let (Some(first), Some(last)) = (tenths.get(1), tenths.last()) {
        report.push(
            Row::at(BENCH, "control-plane-rss-growth", scale.clone(), x).measured(
                "%",
                Summary::single(growth(first.control_plane_mib, last.control_plane_mib)),
                Some(Target::median(RSS_GROWTH_PCT)),
            ),
        );
        for (k, (a, b)) in first.agents_mib.iter().zip(&last.agents_mib).enumerate() {
            report.push(
                Row::at(
                    BENCH,
                    &format!("agent-{}-rss-growth", k + 1),
                    scale.clone(),
                    x,
                )
                .measured(
                    "%",
                    Summary::single(growth(*a, *b)),
                    Some(Target::median(RSS_GROWTH_PCT)),
                ),
            );
        }
        report.push(Row::at(BENCH, "store-on-disk", scale.clone(), x).measured(
            "MiB",
            Summary::single(last.store_mib),
            None,
        ));
    }
    report.note(
        BENCH,
        format!(
            "{} changes in {:.0} s ({} revisions), {nacks} NACKs; every agent ACKed the last revision{}",
            size.changes,
            elapsed.as_secs_f64(),
            revisions,
            if tenths.first().is_some_and(|t| !t.agents_mib.is_empty()) {
                "; the restarted real agents found their tables equal to a from-scratch compile"
            } else {
                ""
            }
        ),
    );
}
