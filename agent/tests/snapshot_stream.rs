//! The snapshot stream between a real control plane (in-process, real gRPC
//! over mutual TLS on loopback, real sled) and the real agent runtime whose
//! nft step is a recorder: registration, full push, deltas, ACK/NACK as
//! `swctl get nodes` reports them, and resync after a control-plane restart
//! (the node's certificate survives it). Needs no root, but for the kernel
//! refusals injected into real nftables in a namespace of the test's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_agent::conntrack::Conntrack;
use switchyard_agent::metrics::Metrics;
use switchyard_agent::model::NodeContext;
use switchyard_agent::nft::{DataPath, NftError, NftRunner, RecordingRunner, Transaction};
use switchyard_agent::runtime::{AgentConfig, Runtime, FULL_RESYNC};
use switchyard_api::resources::{Kind, Node, Object};
use switchyard_api::v1::agent_message::Message as AgentMsg;
use switchyard_api::v1::agent_sync_client::AgentSyncClient;
use switchyard_api::v1::identity_client::IdentityClient;
use switchyard_api::v1::resources_client::ResourcesClient;
use switchyard_api::v1::CreateTokenRequest;
use switchyard_api::v1::{AgentMessage, ObjectRef, Push, Register};
use switchyard_control_plane::registry::{Registry, RegistryConfig};
use switchyard_control_plane::server::{Security, Server, ServerConfig};
use switchyard_tls::client::Target;
use switchyard_tls::credentials::Credentials;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

struct ControlPlane {
    registry: Arc<Registry>,
    addr: SocketAddr,
    dir: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

async fn control_plane(dir: &Path, port: u16) -> ControlPlane {
    control_plane_with_grace(dir, port, Duration::from_secs(20)).await
}

async fn control_plane_with_grace(dir: &Path, port: u16, node_grace: Duration) -> ControlPlane {
    let cfg = ServerConfig {
        etcd: None,
        name: "test".into(),
        data_dir: dir.to_path_buf(),
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        registry: RegistryConfig {
            service_cidrs: "10.96.0.0/12".parse().unwrap(),
            node_port_range: 30000..=32767,
            lb_pool: None,
            log_retention: 1000,
        },
        cluster_domain: "cluster.local".into(),
        cluster_dns: "10.96.0.10".parse().unwrap(),
        listen_unix: None,
        node_grace,
        security: Security::Tls {
            advertise: Vec::new(),
            node_cert_ttl: Duration::from_secs(3600),
        },
        audit_log: None,
    };
    // A control plane just shut down may still hold sled's lock on the
    // directory for a moment: bind once it is free.
    let deadline = Instant::now() + Duration::from_secs(10);
    let server = loop {
        match Server::bind(cfg.clone()).await {
            Ok(server) => break server,
            Err(e) if Instant::now() < deadline => {
                retry_pause(&e).await;
            }
            Err(e) => panic!("the control plane cannot start: {e}"),
        }
    };
    let addr = server.local_addr().unwrap();
    let registry = server.registry.clone();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    ControlPlane {
        registry,
        addr,
        dir: dir.to_path_buf(),
        stop: Some(stop),
        task,
    }
}

/// Waits a moment after a failed start (sled's directory still locked).
async fn retry_pause(e: &switchyard_control_plane::server::ServerError) {
    assert!(
        matches!(
            e,
            switchyard_control_plane::server::ServerError::Store { .. }
        ),
        "the control plane cannot start: {e}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
}

impl ControlPlane {
    fn target(&self) -> Target {
        Target::parse(&format!("https://{}", self.addr)).unwrap()
    }

    /// A channel as the admin of the admin.conf the control plane wrote.
    async fn admin(&self) -> Option<Channel> {
        let creds = Credentials::read(&self.dir.join("admin.conf")).ok()?;
        let target = self.target();
        let connector = target.connector(Some(creds.client_config().ok()?)).ok()?;
        target
            .endpoint()
            .ok()?
            .connect_with_connector(connector)
            .await
            .ok()
    }

    /// A channel as `node`, which joins with a token as an agent does.
    async fn join(&self, node: &str) -> Channel {
        let created = IdentityClient::new(self.admin().await.unwrap())
            .create_token(CreateTokenRequest {
                node_name: node.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let target = self.target();
        let creds =
            switchyard_agent::identity::join(&target, &created.token, &created.ca_cert_hash, node)
                .await
                .unwrap();
        switchyard_agent::connection::channel(&target, Some(creds.client_config().unwrap()))
            .unwrap()
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        // Streams hold the server open; abort the serving task after the signal.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.task.abort();
        let _ = self.task.await;
        drop(self.registry);
    }

    /// Applies an object; returns its revision and, for Services, the ClusterIP.
    async fn apply(&self, yaml_json: serde_json::Value) -> (u64, String) {
        let kind: Kind = yaml_json["kind"].as_str().unwrap().parse().unwrap();
        let obj = Object::from_value(kind, yaml_json).unwrap();
        let (stored, _) = self.registry.apply(obj, false).await.unwrap();
        let rev = stored
            .meta()
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        let ip = match &stored {
            Object::Service(s) => s.spec.cluster_ip.clone().unwrap_or_default(),
            _ => String::new(),
        };
        (rev, ip)
    }

    /// node-1 as the API shows it, with its live sync state.
    async fn node(&self) -> Option<Node> {
        let mut client = ResourcesClient::new(self.admin().await?);
        let r = client
            .get(ObjectRef {
                kind: "Node".into(),
                namespace: String::new(),
                name: "node-1".into(),
            })
            .await
            .ok()?
            .into_inner();
        serde_json::from_str(&r.json).ok()
    }

    /// Polls node-1 until `ready` holds.
    async fn node_when(&self, what: &str, ready: impl Fn(&Node) -> bool) -> Node {
        self.node_within(what, Duration::from_secs(10), ready).await
    }

    async fn node_within(
        &self,
        what: &str,
        patience: Duration,
        ready: impl Fn(&Node) -> bool,
    ) -> Node {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(n) = self.node().await.filter(|n| ready(n)) {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.node().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn agent<R: NftRunner + Clone + 'static>(
    channel: Channel,
    runner: R,
) -> JoinHandle<switchyard_agent::runtime::Refused> {
    let datapath = DataPath::open("switchyard", runner).await.unwrap();
    let cfg = AgentConfig {
        node: NodeContext {
            zone: None,
            node_name: "node-1".into(),
            node_ips: vec!["172.18.0.11".parse().unwrap()],
            pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
        },
        agent_version: "test".into(),
        local_services: Vec::new(),
        dns_listen: None,
        full_resync: FULL_RESYNC,
        health_timeout: switchyard_agent::health::DEFAULT_TIMEOUT,
        node_labels: Default::default(),
        registered: Default::default(),
    };
    let (runtime, _views) = Runtime::new(
        cfg,
        switchyard_agent::connection::fixed(channel),
        datapath,
        Conntrack::disabled(),
        Metrics::new(),
    );
    tokio::spawn(runtime.run())
}

fn service(name: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": 8080}]}
    })
}

fn pod(name: &str, app: &str, ip: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]},
        "status": {"podIP": ip}
    })
}

fn synced_at(n: &Node, rev: u64) -> bool {
    n.status.sync_state.as_deref() == Some("SYNCED") && n.status.applied_version >= Some(rev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_syncs_acks_nacks_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path(), 0).await;
    let addr = cp.addr;
    let (rev, web_ip) = cp.apply(service("web", 80)).await;
    let runner = RecordingRunner::new();
    let agent_task = agent(cp.join("node-1").await, runner.clone()).await;

    // Registration and the first (full) push, ACKed.
    let node = cp
        .node_when("node registered and synced", |n| synced_at(n, rev))
        .await;
    assert_eq!(node.status.addresses[0].address, "172.18.0.11");
    assert!(node.status.applied_version.unwrap() >= rev);
    assert!(
        runner.scripts().concat().contains(&web_ip),
        "the service was programmed"
    );

    // A delta: one pod becomes an endpoint.
    let scripts_before = runner.scripts().len();
    let (rev, _) = cp.apply(pod("web-1", "web", "10.244.1.20")).await;
    cp.node_when("endpoint change applied", |n| synced_at(n, rev))
        .await;
    let delta = runner.scripts()[scripts_before..].concat();
    assert!(delta.contains("10.244.1.20"), "{delta}");

    // A failing nft transaction is NACKed with nft's words; the node shows it.
    runner.fail_next("Error: Could not process rule: No such file or directory");
    let (rev_fail, api_ip) = cp.apply(service("api", 81)).await;
    let node = cp
        .node_when("NACK recorded", |n| {
            n.status.sync_state.as_deref() == Some("NACKED")
        })
        .await;
    assert_eq!(
        node.status.last_error.as_deref(),
        Some("Error: Could not process rule: No such file or directory")
    );
    assert!(node.status.applied_version < Some(rev_fail));
    // The next push carries the failed change too, and heals the node.
    let (rev, _) = cp.apply(pod("api-1", "api", "10.244.1.21")).await;
    cp.node_when("recovered after the next push", |n| synced_at(n, rev))
        .await;
    let all = runner.scripts().concat();
    assert!(
        all.contains("10.244.1.21") && all.contains(&api_ip),
        "{all}"
    );

    // Control plane restart on the same store: the agent reconnects and
    // gets only what changed (nothing) plus later changes.
    let port = addr.port();
    cp.shutdown().await;
    let cp = control_plane(dir.path(), port).await;
    let (rev, after_ip) = cp.apply(service("after-restart", 82)).await;
    cp.node_when("resynced after restart", |n| synced_at(n, rev))
        .await;
    assert!(runner.scripts().concat().contains(&after_ip));
    agent_task.abort();
    cp.shutdown().await;
}

/// A Service with `ports` ports: a few hundred bytes on the wire.
fn wide_service(name: &str, ports: u16) -> serde_json::Value {
    let ports: Vec<_> = (0..ports)
        .map(|i| serde_json::json!({"name": format!("p{i}"), "port": 1000 + i, "targetPort": 8080}))
        .collect();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": ports}
    })
}

/// Reads the first push's parts as a bare client registered as `node`.
async fn first_push_parts(channel: Channel, node: &str) -> Vec<Push> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(AgentMessage {
        message: Some(AgentMsg::Register(Register {
            node_name: node.into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut client = AgentSyncClient::new(channel);
    let mut stream = client
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut parts = vec![stream.message().await.unwrap().unwrap()];
    while parts.last().unwrap().more {
        parts.push(stream.message().await.unwrap().unwrap());
    }
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_snapshot_goes_in_parts_and_the_agent_applies_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path(), 0).await;
    let mut ips = Vec::new();
    let mut rev = 0;
    for i in 0..400 {
        let (r, ip) = cp.apply(wide_service(&format!("wide-{i:03}"), 10)).await;
        rev = r;
        ips.push(ip);
    }

    // The control plane cuts a version a few ms after the last write.
    let deadline = Instant::now() + Duration::from_secs(10);
    let probe = cp.join("probe-1").await;
    let parts = loop {
        let parts = first_push_parts(probe.clone(), "probe-1").await;
        if parts[0].version >= rev || Instant::now() > deadline {
            break parts;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(parts.len() >= 2, "{} part(s)", parts.len());
    let flags: Vec<(u64, bool, bool)> = parts.iter().map(|p| (p.version, p.full, p.more)).collect();
    // Versions are store revisions: the probe's own Node write may count.
    let version = parts[0].version;
    assert!(version >= rev, "{version} < {rev}");
    let mut want = vec![(version, false, true); parts.len()];
    want[0].1 = true;
    want[parts.len() - 1].2 = false;
    assert_eq!(flags, want);
    let names: std::collections::BTreeSet<&str> = parts
        .iter()
        .flat_map(|p| p.services.iter().map(|s| s.name.as_str()))
        .collect();
    assert_eq!(names.len(), 400);

    let runner = RecordingRunner::new();
    let agent_task = agent(cp.join("node-1").await, runner.clone()).await;
    cp.node_when("the big snapshot applied", |n| synced_at(n, rev))
        .await;
    // The table is made (its fixed chains), then every element of the
    // push goes in one transaction.
    let scripts = runner.scripts();
    assert_eq!(scripts.len(), 2, "one transaction for the whole push");
    assert!(!scripts[0].contains("elements"), "{}", scripts[0]);
    assert!(ips.iter().all(|ip| scripts[1].contains(ip.as_str())));
    agent_task.abort();
    cp.shutdown().await;
}

/// What the kernel is made to answer every transaction with.
#[derive(Debug, Clone)]
enum Fault {
    /// The netlink socket fails with this errno (ENOBUFS: its buffer overran).
    Socket(i32),
    /// nf_tables refuses the batch, as nft reports it.
    Refused(&'static str),
}

/// Real nftables in a namespace, behind a switch that makes the kernel
/// refuse transactions until it is turned off.
#[derive(Clone)]
struct Faulty {
    inner: switchyard_agent::nft::NftCommand,
    fault: Arc<std::sync::Mutex<Option<Fault>>>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl Faulty {
    fn set(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap() = fault;
    }

    fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn injected(&self) -> Option<NftError> {
        let fault = self.fault.lock().unwrap().clone()?;
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(match fault {
            Fault::Socket(errno) => NftError::Netlink(std::io::Error::from_raw_os_error(errno)),
            Fault::Refused(stderr) => NftError::Rejected {
                status: "netlink".into(),
                stderr: stderr.into(),
            },
        })
    }
}

impl NftRunner for Faulty {
    async fn run_script(&self, script: &str) -> switchyard_agent::nft::Result<()> {
        match self.injected() {
            Some(e) => Err(e),
            None => self.inner.run_script(script).await,
        }
    }

    async fn apply(&self, tx: &Transaction) -> switchyard_agent::nft::Result<()> {
        match self.injected() {
            Some(e) => Err(e),
            None => self.inner.apply(tx).await,
        }
    }

    async fn list_json(&self, object: &str) -> switchyard_agent::nft::Result<Option<String>> {
        self.inner.list_json(object).await
    }
}

/// The kernel refusing batches (a full netlink buffer, then EPERM): each
/// push is NACKed with the kernel's words, the last good ruleset stays,
/// the apply is retried with backoff, and the node is SYNCED once the
/// kernel takes batches again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_refusals_are_nacked_retried_and_heal() {
    let Some(ns) = support::Netns::create("kernel_refusals_are_nacked_retried_and_heal") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path(), 0).await;
    let (rev, web_ip) = cp.apply(service("web", 80)).await;
    let runner = Faulty {
        inner: ns.runner(),
        fault: Arc::default(),
        refused: Arc::default(),
    };
    let agent_task = agent(cp.join("node-1").await, runner.clone()).await;
    cp.node_when("synced", |n| synced_at(n, rev)).await;
    let table = || ns.nft("list table ip switchyard").unwrap();
    assert!(table().contains(&web_ip));

    runner.set(Some(Fault::Socket(105)));
    let (rev_api, api_ip) = cp.apply(service("api", 81)).await;
    let node = cp
        .node_when("NACKed", |n| {
            n.status.sync_state.as_deref() == Some("NACKED")
        })
        .await;
    assert_eq!(
        node.status.last_error.as_deref(),
        Some("nf_tables netlink socket failed: No buffer space available (os error 105)")
    );
    let table_now = table();
    assert!(
        table_now.contains(&web_ip) && !table_now.contains(&api_ip),
        "{table_now}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while runner.refused() < 3 {
        assert!(
            Instant::now() < deadline,
            "not retried: {} attempts",
            runner.refused()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    runner.set(Some(Fault::Refused(
        "Error: Could not process rule: Operation not permitted",
    )));
    cp.node_when("NACKed with EPERM", |n| {
        n.status.last_error.as_deref()
            == Some("Error: Could not process rule: Operation not permitted")
    })
    .await;
    assert!(!table().contains(&api_ip));

    runner.set(None);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if cp.node().await.is_some_and(|n| synced_at(&n, rev_api)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not SYNCED after the kernel healed: {:?}",
            cp.node().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(table().contains(&api_ip));
    agent_task.abort();
    cp.shutdown().await;
}

/// A pod's Ready condition: (status, reason).
fn pod_ready(cp: &ControlPlane, name: &str) -> (String, Option<String>) {
    let Ok(Object::Pod(pod)) = cp.registry.get(Kind::Pod, "default", name) else {
        panic!("{name} is gone");
    };
    let c = pod
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
        .unwrap();
    (c.status, c.reason)
}

/// web-1's Ready condition (status, reason) and whether web's endpoints
/// are ready.
fn readiness(cp: &ControlPlane) -> (String, Option<String>, Vec<Option<bool>>) {
    let (status, reason) = pod_ready(cp, "web-1");
    let (slices, _) = cp
        .registry
        .list(Kind::EndpointSlice, Some("default"), &Default::default());
    let ready = slices
        .iter()
        .filter_map(|o| match o {
            Object::EndpointSlice(s) if s.service_name() == Some("web") => Some(s),
            _ => None,
        })
        .flat_map(|s| s.endpoints.iter().map(|e| e.conditions.ready))
        .collect();
    (status, reason, ready)
}

fn node_ready(n: &Node) -> Option<bool> {
    n.is_ready()
}

/// A node whose agent falls silent turns NotReady after the grace period
/// (not before), its pod unready and its endpoint `ready: false`; heard
/// again, it is Ready and its pod (without a probe) ready at once. A
/// control-plane restart with the agent alive never turns it NotReady.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_turns_not_ready_after_the_grace_period_and_back_when_heard() {
    let grace = Duration::from_secs(5);
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane_with_grace(dir.path(), 0, grace).await;
    cp.apply(service("web", 80)).await;
    cp.apply(pod("web-1", "web", "10.244.1.20")).await;
    let channel = cp.join("node-1").await;
    let agent_task = agent(channel.clone(), RecordingRunner::new()).await;
    cp.node_when("node-1 Ready", |n| node_ready(n) == Some(true))
        .await;
    assert_eq!(readiness(&cp), ("True".into(), None, vec![Some(true)]));

    // A hung host: its stream stays open, nothing comes over it.
    agent_task.abort();
    let (_hung_tx, hung_rx) = tokio::sync::mpsc::channel::<AgentMessage>(1);
    let _ = _hung_tx
        .send(AgentMessage {
            message: Some(AgentMsg::Register(Register {
                node_name: "node-1".into(),
                node_ips: vec!["172.18.0.11".into()],
                ..Default::default()
            })),
        })
        .await;
    let _hung = AgentSyncClient::new(channel.clone())
        .stream(tokio_stream::wrappers::ReceiverStream::new(hung_rx))
        .await
        .unwrap();
    let silent = Instant::now();
    let node = cp
        .node_within("node-1 NotReady", grace * 3, |n| {
            node_ready(n) == Some(false)
        })
        .await;
    let took = silent.elapsed();
    println!("node-1 NotReady {took:?} after its agent fell silent (grace {grace:?})");
    assert!(took >= grace - Duration::from_millis(500), "{took:?}");
    let c = node.ready_condition().unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("Unknown", Some("NodeStatusUnknown"))
    );
    assert_eq!(
        readiness(&cp),
        (
            "False".into(),
            Some("NodeNotReady".into()),
            vec![Some(false)]
        )
    );

    // A pod written for the NotReady node is not ready either.
    cp.apply(pod("web-2", "other", "10.244.1.21")).await;
    assert_eq!(
        pod_ready(&cp, "web-2"),
        ("False".into(), Some("NodeNotReady".into()))
    );

    // The agent is back.
    let agent_task = agent(channel, RecordingRunner::new()).await;
    cp.node_when("node-1 Ready again", |n| node_ready(n) == Some(true))
        .await;
    assert_eq!(readiness(&cp), ("True".into(), None, vec![Some(true)]));
    assert_eq!(pod_ready(&cp, "web-2"), ("True".into(), None));

    // A control-plane restart (the agent reconnects): never NotReady, for
    // longer than a grace period.
    let port = cp.addr.port();
    cp.shutdown().await;
    let cp = control_plane_with_grace(dir.path(), port, grace).await;
    let watched = Instant::now();
    while watched.elapsed() < grace + Duration::from_secs(2) {
        if let Some(n) = cp.node().await {
            assert_eq!(node_ready(&n), Some(true), "flapped after a restart: {n:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(readiness(&cp), ("True".into(), None, vec![Some(true)]));
    agent_task.abort();
    cp.shutdown().await;
}
