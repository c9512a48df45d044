//! Whole-agent push → ACK (issue 26, item 3): what one delta push costs the
//! agent from its bytes arriving to its ACK going out — decode, the view,
//! the data path's snapshot, the nftables apply, the ACK, with the health
//! check ports and the DNS responder following the views as in the agent —
//! at 100 and at 10,000 Services, split into the data path and the rest.
//!
//! The agent is the real [`Runtime`] over a real gRPC stream, with the real
//! nftables runner, in a throwaway network namespace, run from inside it as
//! `incremental` is. Its control plane is a stand-in serving the stream
//! (only the agent's side is timed, and a stand-in sends exactly the push
//! each case needs without loading 10,000 Services into a store first).
//! Times are read inside the agent, from the spans it already has: the
//! runtime's `handle_push` (folding the push to queueing its ACK) and the
//! data path's `apply_changes` within it. The decoding, which tonic does
//! inside the stream read where no span reaches, is timed apart on the
//! same bytes and added to the whole.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use prost::Message as _;
use rand::{Rng, SeedableRng};
use switchyard_agent::conntrack::Conntrack;
use switchyard_agent::metrics::Metrics;
use switchyard_agent::model::NodeContext;
use switchyard_agent::nft::{DataPath, NftCommand};
use switchyard_agent::runtime::{AgentConfig, Runtime, FULL_RESYNC};
use switchyard_agent::{dns, health};
use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::agent_sync_server::{AgentSync, AgentSyncServer};
use switchyard_api::v1::{
    Ack, AgentMessage, ClusterConfig, PodReadiness, PodReadinessAck, ProbeSet, Push, ServiceRef,
    ServiceState,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use crate::context::Ctx;
use crate::fixture::{self, Shape};
use crate::netns::Netns;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "whole-agent-push";
const TARGET_MS: f64 = 2.0;
const TARGET_RATIO: f64 = 1.5;
const SMALL: usize = 100;
const CASES: [&str; 3] = ["endpoint-change", "service-add", "service-delete"];
/// Each sample's parts: everything, the data path's apply, the difference.
const PARTS: [&str; 3] = ["whole-agent", "data-path", "rest"];
/// The runtime's span around one push, and the data path's spans in it.
const PUSH_SPAN: (&str, &str) = ("switchyard_agent::runtime", "handle_push");
const DATA_PATH_TARGET: &str = "switchyard_agent::nft::datapath";
const DATA_PATH_SPANS: [&str; 2] = ["apply_changes", "apply"];
/// The first push loads the whole table: seconds at 10,000 Services.
const FIRST_ACK: Duration = Duration::from_secs(600);
const ACK: Duration = Duration::from_secs(30);
/// The node's address in the namespace.
const NODE_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 11);

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    if !report.has_root(ctx.root, BENCH) {
        return Ok(());
    }
    let big = ctx.shape.services;
    // Pushes are cheap here (seconds for the lot): enough of them that a
    // p99 is not just the worst one.
    let reps = if ctx.quick { 20 } else { 100 };
    report.setup(
        BENCH,
        format!(
            "the agent's Runtime (release build) with real nftables in a fresh namespace, fed by a stand-in control plane \
             over gRPC on loopback; {SMALL} or {big} Services x {} endpoints loaded by a full push, then one delta per push: an \
             endpoint turning unready or ready again, a Service with {} endpoints added, then deleted; {reps} of each. \
             whole-agent = decoding the push (timed apart on the same bytes) + the runtime's handle_push span (view, \
             snapshot, data path, ACK queued); data-path = the DataPath::apply_changes span in it (compile, diff, netlink \
             batch, the kernel's commit); rest = whole-agent - data-path.",
            ctx.shape.endpoints, ctx.shape.endpoints
        ),
    );
    let small = measure(SMALL, reps)?;
    let large = measure(big, reps)?;
    for (services, samples) in [(SMALL, &small), (big, &large)] {
        let scale = format!("{services} services");
        for case in CASES {
            for part in PARTS {
                let Some(s) = samples.get(&key(case, part)).and_then(|v| Summary::of(v)) else {
                    continue;
                };
                let judged = services == big && part == "whole-agent";
                let target = judged.then_some(Target::p99(TARGET_MS));
                report.push(
                    Row::at(BENCH, &key(case, part), &scale, services as f64)
                        .measured("ms", s, target),
                );
            }
        }
    }
    for case in CASES {
        for part in ["whole-agent", "rest"] {
            let p99 = |m: &BTreeMap<String, Vec<f64>>| {
                m.get(&key(case, part))
                    .and_then(|v| Summary::of(v))
                    .map(|s| s.p99)
            };
            let (Some(a), Some(b)) = (p99(&large), p99(&small)) else {
                continue;
            };
            let target = (part == "whole-agent").then_some(Target::median(TARGET_RATIO));
            report.push(
                Row::at(
                    BENCH,
                    &format!("{}-ratio", key(case, part)),
                    format!("{big} vs {SMALL} services"),
                    big as f64,
                )
                .measured("x", Summary::single(a / b), target),
            );
        }
    }
    report.note(
        BENCH,
        "the data path's share at 10,000 Services is the kernel validating the per-Service-chain table on \
         every commit (see incremental-sync); the rest is what this benchmark watches grow, or not, with the cluster",
    );
    Ok(())
}

fn key(case: &str, part: &str) -> String {
    format!("{case}/{part}")
}

/// Runs [`inner`] in a fresh namespace and parses its samples.
fn measure(services: usize, reps: usize) -> anyhow::Result<BTreeMap<String, Vec<f64>>> {
    eprintln!("  {BENCH}: {services} services…");
    let ns = Netns::new("push")?;
    // The DNS responder listens on a node address, which the data path
    // DNATs the cluster DNS address to (never loopback: see `start_agent`).
    ns.exec(&["ip", "addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"])?;
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let out = ns.exec(&[
        &exe,
        "whole-agent-inner",
        "--services",
        &services.to_string(),
        "--reps",
        &reps.to_string(),
    ])?;
    serde_json::from_slice(&out.stdout).context("parsing the inner run's samples")
}

/// The measuring side, run inside the namespace: prints samples as JSON.
pub async fn inner(services: usize, reps: usize) -> anyhow::Result<()> {
    let timings = Timings::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Recorder(timings.clone())),
    )?;
    let shape = Shape {
        services,
        endpoints: 10,
    };
    let mut control_plane = StandIn::start().await?;
    let _dns = start_agent(control_plane.addr).await?;

    let mut version = 1;
    let full = Push {
        version,
        full: true,
        services: (0..services)
            .map(|i| fixture::service_state(&shape, i))
            .collect(),
        probes: Some(ProbeSet::default()),
        cluster: Some(ClusterConfig {
            cluster_domain: "cluster.local".into(),
            cluster_dns: "10.96.0.10".into(),
            heartbeat_interval_ms: 0,
        }),
        ..Default::default()
    };
    control_plane.push(full, FIRST_ACK).await?;
    timings.wait_for(1, ACK).await?;

    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let extra = services + 1;
    let mut measured = 1;
    for _ in 0..reps {
        let i = rng.random_range(0..services);
        let mut changing = fixture::service_state(&shape, i);
        let mut deltas = Vec::new();
        for ready in [false, true] {
            if let Some(e) = changing.endpoints.first_mut() {
                e.ready = ready;
                e.serving = ready;
            }
            deltas.push(("endpoint-change", delta(vec![changing.clone()], vec![])));
        }
        let added = fixture::service_state(&shape, extra);
        deltas.push(("service-add", delta(vec![added], vec![])));
        let gone = ServiceRef {
            namespace: fixture::namespace(extra),
            name: fixture::service_name(extra),
        };
        deltas.push(("service-delete", delta(vec![], vec![gone])));
        for (case, mut push) in deltas {
            version += 1;
            push.version = version;
            let (push, decoding) = decoded(&push)?;
            control_plane.push(push, ACK).await?;
            measured += 1;
            let t = timings.wait_for(measured, ACK).await?;
            let whole = ms(decoding + t.push);
            let data_path = ms(t.data_path);
            for (part, value) in [
                ("whole-agent", whole),
                ("data-path", data_path),
                ("rest", whole - data_path),
            ] {
                samples.entry(key(case, part)).or_default().push(value);
            }
        }
    }
    println!("{}", serde_json::to_string(&samples)?);
    Ok(())
}

fn delta(services: Vec<ServiceState>, removed: Vec<ServiceRef>) -> Push {
    Push {
        services,
        removed,
        ..Default::default()
    }
}

/// `push` through its wire form, and how long decoding it took.
fn decoded(push: &Push) -> anyhow::Result<(Push, Duration)> {
    let bytes = push.encode_to_vec();
    let t = Instant::now();
    let push = Push::decode(bytes.as_slice())?;
    Ok((push, t.elapsed()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// An agent as `switchyard-agent` wires one: runtime, health check ports
/// and DNS responder following its views (which serves until dropped).
async fn start_agent(control_plane: SocketAddr) -> anyhow::Result<dns::Serving> {
    let node_name = fixture::node_name(0, 0);
    // An endpoint on loopback would put 127.0.0.1 in the hairpin set and
    // masquerade the agent's own stream to the stand-in.
    let dns_listen = SocketAddr::from((NODE_IP, 5353));
    let cfg = AgentConfig {
        node: NodeContext {
            zone: None,
            node_name: node_name.clone(),
            node_ips: vec![NODE_IP],
            pod_cidr: "10.244.1.0/24".parse().ok(),
        },
        agent_version: "bench".into(),
        local_services: Vec::new(),
        dns_listen: Some(dns_listen),
        full_resync: FULL_RESYNC,
        health_timeout: health::DEFAULT_TIMEOUT,
        node_labels: Default::default(),
        registered: Default::default(),
    };
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{control_plane}"))?.connect_lazy();
    let datapath = DataPath::open("switchyard", NftCommand::new()).await?;
    let (runtime, views) = Runtime::new(
        cfg,
        switchyard_agent::connection::fixed(channel),
        datapath,
        Conntrack::new(),
        Metrics::new(),
    );
    tokio::spawn(health::node_port::run(
        views.clone(),
        node_name,
        runtime.health(),
    ));
    let dns = dns::bind(dns_listen, views, Vec::new()).await?.start();
    tokio::spawn(runtime.run());
    Ok(dns)
}

/// The control plane's side of one agent's stream: sends the pushes it is
/// given, hands back the ACKs.
struct StandIn {
    addr: SocketAddr,
    pushes: mpsc::Sender<Result<Push, Status>>,
    acks: mpsc::UnboundedReceiver<Ack>,
}

struct Stream {
    pushes: Mutex<Option<mpsc::Receiver<Result<Push, Status>>>>,
    acks: mpsc::UnboundedSender<Ack>,
}

impl StandIn {
    async fn start() -> anyhow::Result<StandIn> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (pushes, rx) = mpsc::channel(1);
        let (acks_tx, acks) = mpsc::unbounded_channel();
        let service = Stream {
            pushes: Mutex::new(Some(rx)),
            acks: acks_tx,
        };
        let server = tonic::transport::Server::builder()
            .add_service(AgentSyncServer::new(service))
            .serve_with_incoming(TcpListenerStream::new(listener));
        tokio::spawn(server);
        Ok(StandIn { addr, pushes, acks })
    }

    /// Sends `push` and waits for its ACK.
    async fn push(&mut self, push: Push, timeout: Duration) -> anyhow::Result<()> {
        let version = push.version;
        self.pushes
            .send(Ok(push))
            .await
            .context("the agent's stream is gone")?;
        loop {
            let ack = tokio::time::timeout(timeout, self.acks.recv())
                .await
                .with_context(|| format!("no ACK of version {version} after {timeout:?}"))?
                .context("the agent's stream is gone")?;
            if !ack.error.is_empty() {
                bail!("the agent NACKed version {}: {}", ack.version, ack.error);
            }
            if ack.version == version {
                return Ok(());
            }
        }
    }
}

#[tonic::async_trait]
impl AgentSync for Stream {
    type StreamStream = ReceiverStream<Result<Push, Status>>;

    /// One agent, once: a second stream would be a reconnect, which the
    /// measurement does not survive anyway.
    async fn stream(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let Some(pushes) = lock(&self.pushes).take() else {
            return Err(Status::unavailable("the agent's stream was lost"));
        };
        let mut inbound = request.into_inner();
        let acks = self.acks.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if let Some(AgentMsg::Ack(ack)) = message.message {
                    let _ = acks.send(ack);
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(pushes)))
    }

    async fn report_pod_readiness(
        &self,
        _request: Request<PodReadiness>,
    ) -> Result<Response<PodReadinessAck>, Status> {
        Ok(Response::new(PodReadinessAck {}))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One push as the agent's spans saw it.
#[derive(Debug, Clone, Copy)]
struct Timing {
    push: Duration,
    data_path: Duration,
}

/// The pushes handled so far, in order.
#[derive(Debug, Clone, Default)]
struct Timings(Arc<Mutex<Recorded>>);

#[derive(Debug, Default)]
struct Recorded {
    done: Vec<Timing>,
    /// Data path time within the push span still open.
    data_path: Duration,
}

impl Timings {
    /// The `n`th push's timing (1-based), once its span closed: that is
    /// just after the ACK went out, so it may come a moment after it.
    async fn wait_for(&self, n: usize, timeout: Duration) -> anyhow::Result<Timing> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = lock(&self.0).done.get(n - 1) {
                return Ok(*t);
            }
            if Instant::now() > deadline {
                bail!("push {n} was ACKed but its span never closed");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// A tracing layer timing the push and data path spans, from their
/// creation to their close; every other span and event is left disabled.
struct Recorder(Timings);

/// When a watched span was created.
struct Opened(Instant);

fn watched(meta: &Metadata<'_>) -> bool {
    meta.is_span()
        && ((meta.target(), meta.name()) == PUSH_SPAN
            || (meta.target() == DATA_PATH_TARGET && DATA_PATH_SPANS.contains(&meta.name())))
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        match watched(meta) {
            true => Interest::always(),
            false => Interest::never(),
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        watched(meta)
    }

    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened(Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(took) = span.extensions().get::<Opened>().map(|o| o.0.elapsed()) else {
            return;
        };
        let meta = span.metadata();
        let mut recorded = lock(&(self.0).0);
        if (meta.target(), meta.name()) == PUSH_SPAN {
            let data_path = std::mem::take(&mut recorded.data_path);
            recorded.done.push(Timing {
                push: took,
                data_path,
            });
        } else if span
            .parent()
            .is_some_and(|p| (p.metadata().target(), p.name()) == PUSH_SPAN)
        {
            // Only the outermost data path span: an incremental apply that
            // falls back to a full one holds the second inside the first.
            recorded.data_path += took;
        }
    }
}
