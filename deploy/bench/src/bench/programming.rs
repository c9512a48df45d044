//! Benchmark 1, network programming latency: with the big cluster loaded,
//! one change at a time through the API (an endpoint turning unready or
//! ready through the agents' readiness RPC, a Service added or deleted),
//! timed from the API call to the moment every agent has ACKed the version
//! holding it. Agents: hollow ones at growing counts, plus two real agents
//! with real nftables in the lab when run as root.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::api::Api;
use crate::context::Ctx;
use crate::control_plane::ControlPlane;
use crate::fixture::{self, Shape};
use crate::hollow::Fleet;
use crate::identity::Identities;
use crate::light::LightFleet;
use crate::process::cpu_seconds;
use crate::real_agents::RealAgents;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "programming-latency";
/// CPU per agent and change, next to the latency it explains.
pub const CPU_BENCH: &str = "programming-cpu";
const TARGET_MS: f64 = 50.0;
/// Stop adding hollow agents when the machine has less memory than this left.
const MIN_AVAILABLE_MIB: f64 = 3072.0;
const CASES: [Case; 4] = [
    Case::EndpointUnready,
    Case::EndpointReady,
    Case::ServiceAdd,
    Case::ServiceDelete,
];

#[derive(Debug, Clone, Copy)]
enum Case {
    EndpointUnready,
    EndpointReady,
    ServiceAdd,
    ServiceDelete,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::EndpointUnready => "endpoint-unready",
            Case::EndpointReady => "endpoint-ready",
            Case::ServiceAdd => "service-add",
            Case::ServiceDelete => "service-delete",
        }
    }
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let shape = ctx.shape;
    let counts: Vec<usize> = match (ctx.agents.is_empty(), ctx.quick) {
        (false, _) => ctx.agents.clone(),
        (true, true) => vec![25, 50, 100],
        (true, false) => vec![100, 500, 1000],
    };
    let reps = if ctx.quick { 8 } else { 20 };
    report.setup(
        BENCH,
        format!(
            "{} Services x {} endpoints loaded; hollow agents = the real agent runtime (switchyard_agent::runtime::Runtime) \
             over real gRPC streams (one TCP connection each, in the suite's process) with only the kernel step replaced \
             (the netlink batch is encoded, then dropped) and conntrack off, each a node with its own pod CIDR hosting \
             none of the endpoints (as most nodes are for most Services); plus 2 real agents (real nftables, lab namespaces) when root; each change is one \
             API call, latency = call start -> the last agent's ACK of the version holding it; {reps} changes of each \
             kind per agent count, one at a time. A hollow agent holds the whole cluster, so the suite stops adding \
             agents before free memory would drop under 3 GiB and measures the agents that fit; the same counts also \
             run with {} Services (rows marked @1000svc), where 1,000 agents fit.",
            shape.services, shape.endpoints, SMALL.services
        ),
    );
    report.setup(
        CPU_BENCH,
        "CPU time over the same changes from /proc/<pid>/stat: the control plane's divided by changes x agents \
         (hollow and real), this process's (the hollow agents, plus the driver and the ACK watcher) by changes x \
         hollow agents. In a real cluster each agent spends its share on its own host; the control plane's share \
         is what every added agent costs the control plane's cores."
            .to_string(),
    );
    // The small cluster first, in a child process: memory freed by hollow
    // agents stays with the process that ran them (the allocator keeps it),
    // so each cluster gets a fresh process's worth of memory.
    if shape.services > SMALL.services && !ctx.services_override && !ctx.quick {
        small_cluster_run(ctx, report, &counts)?;
    }
    run_shape(ctx, report, &shape, &counts, reps, "").await?;
    let light = match ctx.quick {
        true => [100, 500],
        false => [1_000, 5_000],
    };
    run_light(ctx, report, &shape, &light, reps).await
}

/// The same changes with light agents (see [`crate::light`]): fan-out as
/// a fleet sees it, each agent on its own host; rows marked `@light`.
async fn run_light(
    ctx: &Ctx,
    report: &mut Report,
    shape: &Shape,
    counts: &[usize],
    reps: usize,
) -> anyhow::Result<()> {
    let cp = ctx.loaded_control_plane(shape).await?;
    let mut api = cp.api().await?;
    cp.identities()?.join_fixture_nodes().await?;
    let mut fleet = LightFleet::default();
    let mut driver = Driver::new(*shape);
    for &n in counts {
        eprintln!("  {BENCH}: {} services, {n} light agents…", shape.services);
        let started = Instant::now();
        let rev = driver.last_revision.max(cp.served_version);
        let ids = cp.identities()?;
        fleet.grow_to(n, &ids).await?;
        wait_all(&fleet, None, &mut api, rev, Duration::from_secs(900)).await?;
        eprintln!(
            "  {n} light agents in sync in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let cpu_before = CpuSpent::now(&cp)?;
        let samples = measure(&fleet, None, &mut api, &mut driver, reps).await?;
        let cpu = CpuSpent::now(&cp)?.since(&cpu_before);
        let scale = format!("{n} light agents, {} svc", shape.services);
        let changes = reps * CASES.len();
        for row in cpu.rows(changes, n, ("light-agent", n), &scale, "@light") {
            report.push(row);
        }
        let target_ms = if n >= 5_000 { 150.0 } else { TARGET_MS };
        for (case, ms) in CASES.iter().zip(samples) {
            if let Some(s) = Summary::of(&ms) {
                let target = (n >= 1_000).then_some(Target::p99(target_ms));
                let row = Row::at(BENCH, &format!("{}@light", case.name()), &scale, n as f64);
                report.push(row.measured("ms", s, target));
            }
        }
    }
    drop(fleet);
    cp.stop();
    Ok(())
}

/// Runs every agent count on the small cluster in a child process.
fn small_cluster_run(ctx: &Ctx, report: &mut Report, counts: &[usize]) -> anyhow::Result<()> {
    let out = ctx.work().join("small-cluster");
    let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
    let mut child = std::process::Command::new(std::env::current_exe()?);
    child
        .args(["programming", "--services", &SMALL.services.to_string()])
        .args(["--agents", &counts.join(",")])
        .arg("--out")
        .arg(&out);
    if ctx.transport == crate::control_plane::Transport::Plaintext {
        child.arg("--plaintext");
    }
    let status = child.status()?;
    anyhow::ensure!(status.success(), "the small-cluster run failed ({status})");
    let child: Report = serde_json::from_slice(&std::fs::read(out.join("results.json"))?)?;
    for mut row in child.rows {
        row.case = format!("{}@{}svc", row.case, SMALL.services);
        report.push(row);
    }
    for skipped in child.skipped {
        report.skip(skipped);
    }
    Ok(())
}

/// The cluster used when the big one does not fit as many hollow agents.
const SMALL: Shape = Shape {
    services: 1_000,
    endpoints: 10,
};

/// Measures every agent count it can on `shape`; returns how many it ran.
async fn run_shape(
    ctx: &Ctx,
    report: &mut Report,
    shape: &Shape,
    counts: &[usize],
    reps: usize,
    suffix: &str,
) -> anyhow::Result<usize> {
    let cp = ctx.loaded_control_plane(shape).await?;
    let mut api = cp.api().await?;
    // Readiness is reported as the pod's node: join the fixture's nodes
    // now, so no change waits for a join.
    cp.identities()?.join_fixture_nodes().await?;
    let real = match ctx.root {
        true => Some(RealAgents::start(&ctx.bins, &cp, 2).context("starting real agents")?),
        false => {
            report.skip(format!(
                "{BENCH}: the 2 real lab agents (needs root); hollow agents only"
            ));
            None
        }
    };
    let mut fleet = Fleet::default();
    let mut driver = Driver::new(*shape);
    let mut done = 0;
    // Hollow agents measured so far: when memory stops the fleet short of
    // a count, the agents that did fit are measured if they are more.
    let mut measured = 0;
    for &n in counts {
        if available_mib() < MIN_AVAILABLE_MIB {
            report.skip(format!(
                "{BENCH}: {} Services: stopped before {n} hollow agents, under {MIN_AVAILABLE_MIB} MiB of memory \
                 left with {} agents running",
                shape.services,
                fleet.len()
            ));
            break;
        }
        eprintln!("  {BENCH}: {} services, {n} hollow agents…", shape.services);
        let started = Instant::now();
        let rev = driver.last_revision.max(cp.served_version);
        let ids = cp.identities()?;
        let reached = grow(&mut fleet, n, &ids, real.as_ref(), &mut api, rev).await?;
        if !reached {
            report.skip(format!(
                "{BENCH}: {} Services: stopped at {} of {n} hollow agents, under {MIN_AVAILABLE_MIB} MiB of memory left{}",
                shape.services,
                fleet.len(),
                match fleet.len() > measured {
                    true => "; measured with the agents that fit",
                    false => "",
                }
            ));
            if fleet.len() <= measured {
                break;
            }
        }
        eprintln!(
            "  {} hollow agents in sync in {:.1}s ({:.0} MiB free)",
            fleet.len(),
            started.elapsed().as_secs_f64(),
            available_mib()
        );
        let cpu_before = CpuSpent::now(&cp)?;
        let samples = measure(&fleet, real.as_ref(), &mut api, &mut driver, reps).await?;
        let cpu = CpuSpent::now(&cp)?.since(&cpu_before);
        measured = fleet.len();
        let agents = measured + real.as_ref().map_or(0, |r| r.names().len());
        let scale = format!("{agents} agents, {} svc", shape.services);
        let changes = reps * CASES.len();
        for row in cpu.rows(changes, agents, ("hollow-agent", measured), &scale, suffix) {
            report.push(row);
        }
        for (case, ms) in CASES.iter().zip(samples) {
            if let Some(s) = Summary::of(&ms) {
                let target = (measured >= 1000).then_some(Target::p99(TARGET_MS));
                report.push(
                    Row::at(
                        BENCH,
                        &format!("{}{suffix}", case.name()),
                        &scale,
                        agents as f64,
                    )
                    .measured("ms", s, target),
                );
            }
        }
        done += 1;
        if !reached {
            break;
        }
    }
    drop(fleet);
    drop(real);
    cp.stop();
    Ok(done)
}

/// Every change's latency (ms, all cases) over `reps` rounds with `agents`
/// hollow agents on `cp`, whose store holds `shape`.
pub async fn hollow_latencies(
    cp: &ControlPlane,
    shape: &Shape,
    agents: usize,
    reps: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut api = cp.api().await?;
    // Joins and registrations write Nodes, which cut no snapshot version:
    // agents are in sync once they hold the store's revision of now.
    let rev = api.revision().await?;
    let ids = cp.identities()?;
    ids.join_fixture_nodes().await?;
    let mut fleet = Fleet::default();
    fleet.grow_to(agents, &ids).await?;
    wait_all(&fleet, None, &mut api, rev, Duration::from_secs(300)).await?;
    let mut driver = Driver::new(*shape);
    let samples = measure(&fleet, None, &mut api, &mut driver, reps).await?;
    Ok(samples.concat())
}

/// CPU seconds used so far by the control plane and by this process (the
/// hollow agents, plus the driver and the ACK watcher).
struct CpuSpent {
    control_plane: f64,
    suite: f64,
}

impl CpuSpent {
    fn now(cp: &ControlPlane) -> anyhow::Result<CpuSpent> {
        Ok(CpuSpent {
            control_plane: cpu_seconds(cp.pid())?,
            suite: cpu_seconds(std::process::id())?,
        })
    }

    fn since(&self, before: &CpuSpent) -> CpuSpent {
        CpuSpent {
            control_plane: self.control_plane - before.control_plane,
            suite: self.suite - before.suite,
        }
    }

    /// Microseconds per agent and change: the control plane's over every
    /// agent, this process's over its own (`kind`, hollow or light) ones.
    fn rows(
        &self,
        changes: usize,
        agents: usize,
        (kind, own): (&str, usize),
        scale: &str,
        suffix: &str,
    ) -> Vec<Row> {
        let per = |seconds: f64, count: usize| match changes * count {
            0 => None,
            n => Summary::of(&[seconds * 1e6 / n as f64]),
        };
        [
            ("control-plane-per-agent", per(self.control_plane, agents)),
            (kind, per(self.suite, own)),
        ]
        .into_iter()
        .filter_map(|(case, summary)| {
            let row = Row::at(CPU_BENCH, &format!("{case}{suffix}"), scale, agents as f64);
            Some(row.measured("us", summary?, None))
        })
        .collect()
    }
}

/// Adds hollow agents in steps, letting each step sync before the next so
/// memory is checked against what the agents really hold; `false` when
/// memory ran low before reaching `n`.
async fn grow(
    fleet: &mut Fleet,
    n: usize,
    ids: &Identities,
    real: Option<&RealAgents>,
    api: &mut Api,
    rev: u64,
) -> anyhow::Result<bool> {
    const STEP: usize = 25;
    // Until a step has been measured, assume the worst seen at 10,000 Services.
    let mut per_agent_mib = 200.0;
    while fleet.len() < n {
        let step = STEP.min(n - fleet.len());
        let before = available_mib();
        if before < MIN_AVAILABLE_MIB + per_agent_mib * step as f64 * 1.5 {
            return Ok(false);
        }
        fleet.grow_to(fleet.len() + step, ids).await?;
        wait_all(fleet, real, api, rev, Duration::from_secs(900)).await?;
        per_agent_mib = per_agent_mib.min(((before - available_mib()) / step as f64).max(1.0));
    }
    Ok(true)
}

/// Agents whose ACKs a change waits for: hollow or light ones.
trait Acks {
    fn wait_acked(
        &self,
        version: u64,
        timeout: Duration,
    ) -> impl std::future::Future<Output = anyhow::Result<Instant>>;
}

impl Acks for Fleet {
    async fn wait_acked(&self, version: u64, timeout: Duration) -> anyhow::Result<Instant> {
        Fleet::wait_acked(self, version, timeout).await
    }
}

impl Acks for LightFleet {
    async fn wait_acked(&self, version: u64, timeout: Duration) -> anyhow::Result<Instant> {
        LightFleet::wait_acked(self, version, timeout).await
    }
}

/// Runs `reps` rounds of every case; samples per case, in milliseconds.
async fn measure(
    fleet: &impl Acks,
    real: Option<&RealAgents>,
    api: &mut Api,
    driver: &mut Driver,
    reps: usize,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut samples = vec![Vec::new(); CASES.len()];
    for _ in 0..reps {
        for (k, case) in CASES.iter().enumerate() {
            let t0 = Instant::now();
            let rev = driver.change(api, *case).await?;
            let done = wait_all(fleet, real, api, rev, Duration::from_secs(120)).await?;
            samples[k].push(done.duration_since(t0).as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    Ok(samples)
}

async fn wait_all(
    fleet: &impl Acks,
    real: Option<&RealAgents>,
    api: &mut Api,
    rev: u64,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let hollow = fleet.wait_acked(rev, timeout);
    match real {
        Some(real) => {
            let mut api2 = api.clone();
            let (h, r) = tokio::join!(hollow, real.wait_acked(&mut api2, rev, timeout));
            Ok(h?.max(r?))
        }
        None => hollow.await,
    }
}

/// Makes the changes: picks a random Service, flips one of its endpoints,
/// adds and removes an extra Service selecting the same pods.
struct Driver {
    shape: Shape,
    rng: rand::rngs::StdRng,
    current: usize,
    extra: u32,
    /// Revision of the last change made.
    last_revision: u64,
}

impl Driver {
    fn new(shape: Shape) -> Self {
        Self {
            shape,
            rng: rand::rngs::StdRng::seed_from_u64(6),
            current: 0,
            extra: 0,
            last_revision: 0,
        }
    }

    async fn change(&mut self, api: &mut Api, case: Case) -> anyhow::Result<u64> {
        let rev = self.write(api, case).await?;
        self.last_revision = rev;
        Ok(rev)
    }

    async fn write(&mut self, api: &mut Api, case: Case) -> anyhow::Result<u64> {
        let i = self.current;
        match case {
            Case::EndpointUnready => {
                self.current = self.rng.random_range(0..self.shape.services);
                let i = self.current;
                let (ns, pod, node) = (
                    fixture::namespace(i),
                    fixture::pod_name(i, 0),
                    fixture::node_name(i, 0),
                );
                api.set_ready(&ns, &pod, &node, false).await
            }
            Case::EndpointReady => {
                let (ns, pod, node) = (
                    fixture::namespace(i),
                    fixture::pod_name(i, 0),
                    fixture::node_name(i, 0),
                );
                api.set_ready(&ns, &pod, &node, true).await
            }
            Case::ServiceAdd => {
                self.extra += 1;
                api.apply(&extra_service(i, self.extra)).await
            }
            Case::ServiceDelete => {
                api.delete("Service", &fixture::namespace(i), &extra_name(self.extra))
                    .await
            }
        }
    }
}

fn extra_name(k: u32) -> String {
    format!("extra-{k:05}")
}

/// A new Service selecting the pods of Service `i` (so it has endpoints).
fn extra_service(i: usize, k: u32) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": extra_name(k), "namespace": fixture::namespace(i)},
        "spec": {
            "selector": {"app": fixture::service_name(i)},
            "ports": [{"name": "http", "port": 80, "targetPort": fixture::TARGET_PORT}]
        }
    })
}

/// `MemAvailable` in MiB.
fn available_mib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::MAX)
}
