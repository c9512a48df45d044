//! Crash consistency: the control plane is SIGKILLed 20 times while 8
//! writers create, change and delete Services (NodePorts, LoadBalancer
//! IPs) and Pods. After each crash the store on disk is read directly:
//! its allocation table is exactly what its Services hold, no value twice,
//! none leaked. After each restart the API shows every acknowledged write
//! with the allocations it was acknowledged with, an unacknowledged write
//! either whole or not at all, and resourceVersions that never went back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::ControlPlane;
use swctl::client::{Client, Scope};
use swctl::login::Login;
use switchyard_api::resources::{Kind, Object, Service};
use switchyard_control_plane::allocator::service::held_by;
use switchyard_control_plane::allocator::AllocKey;
use switchyard_control_plane::store::SledStore;
use tokio::sync::RwLock;

const WRITERS: usize = 8;
const CRASHES: usize = 20;
const SERVICES_PER_WRITER: usize = 6;
const PODS_PER_WRITER: usize = 4;
const SEQ_LABEL: &str = "crash-test/seq";

/// What a Service holds, as the write that made it was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allocations {
    cluster_ip: Option<String>,
    node_ports: Vec<i32>,
    lb_ips: Vec<String>,
}

fn allocations(object: &Object) -> Option<Allocations> {
    let Object::Service(svc) = object else {
        return None;
    };
    Some(Allocations {
        cluster_ip: svc.spec.cluster_ip.clone(),
        node_ports: svc.spec.ports.iter().filter_map(|p| p.node_port).collect(),
        lb_ips: svc
            .status
            .load_balancer
            .iter()
            .flat_map(|lb| &lb.ingress)
            .filter_map(|i| i.ip.clone())
            .collect(),
    })
}

/// A key's state as far as the writers know it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Absent,
    Present {
        seq: u64,
        resource_version: u64,
        allocations: Option<Allocations>,
    },
}

fn state_of(object: &Object) -> State {
    let meta = object.meta();
    State::Present {
        seq: meta.labels.get(SEQ_LABEL).unwrap().parse().unwrap(),
        resource_version: meta.resource_version.as_deref().unwrap().parse().unwrap(),
        allocations: allocations(object),
    }
}

/// A write whose outcome nobody heard: it may or may not have happened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unheard {
    Apply(u64),
    Delete,
}

#[derive(Debug, Clone)]
struct KeyHistory {
    /// The last state the API confirmed.
    confirmed: State,
    /// Writes since, without an answer.
    unheard: Vec<Unheard>,
}

#[derive(Debug, Default)]
struct History {
    keys: BTreeMap<(Kind, String), KeyHistory>,
    acknowledged: u64,
    unheard: u64,
    refused: u64,
    /// The highest resourceVersion any answer carried.
    max_version: u64,
}

impl History {
    fn entry(&mut self, kind: Kind, name: &str) -> &mut KeyHistory {
        self.keys
            .entry((kind, name.to_string()))
            .or_insert(KeyHistory {
                confirmed: State::Absent,
                unheard: Vec::new(),
            })
    }

    /// Checks what the API shows against what was written, then takes it
    /// as confirmed.
    fn check(&mut self, shown: &BTreeMap<(Kind, String), State>, list_version: u64) {
        assert!(
            list_version >= self.max_version,
            "the store went back: revision {list_version} after {} was acknowledged",
            self.max_version
        );
        for (key, history) in &mut self.keys {
            let now = shown.get(key).cloned().unwrap_or(State::Absent);
            let as_confirmed = match (&history.confirmed, &now) {
                (State::Absent, State::Absent) => true,
                (
                    State::Present {
                        seq: s1,
                        resource_version: v1,
                        allocations: a1,
                    },
                    State::Present {
                        seq: s2,
                        resource_version: v2,
                        allocations: a2,
                    },
                ) if s1 == s2 => {
                    assert_eq!(a1, a2, "{key:?}: acknowledged allocations changed");
                    assert!(v2 >= v1, "{key:?}: resourceVersion went from {v1} to {v2}");
                    true
                }
                _ => false,
            };
            let as_unheard = history.unheard.iter().any(|w| match (w, &now) {
                (Unheard::Delete, State::Absent) => true,
                (Unheard::Apply(seq), State::Present { seq: s, .. }) => seq == s,
                _ => false,
            });
            assert!(
                as_confirmed || as_unheard,
                "{key:?}: shows {now:?}, but the last acknowledged state is {:?} and the unanswered writes since are {:?}",
                history.confirmed,
                history.unheard
            );
            history.confirmed = now;
            history.unheard.clear();
        }
    }
}

/// What is on disk right after a crash: every Service's allocations are in
/// the table under its name, and the table holds nothing else.
fn check_store_on_disk(cp: &ControlPlane) -> usize {
    let store = SledStore::open(&cp.data_dir).unwrap();
    let mut implied: BTreeMap<AllocKey, String> = BTreeMap::new();
    let loaded = store
        .load_blocking(&mut |kind, key, json, _| {
            if kind == Kind::Service {
                let svc: Service = serde_json::from_str(json).unwrap();
                for held in held_by(&svc) {
                    if let Some(other) = implied.insert(held, key.clone()) {
                        panic!("{held} is held by both {other} and {key}");
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let table: BTreeMap<AllocKey, String> = loaded.allocations.into_iter().collect();
    let leaked: BTreeSet<_> = table.keys().filter(|k| !implied.contains_key(k)).collect();
    assert!(leaked.is_empty(), "allocations nobody holds: {leaked:?}");
    assert_eq!(
        table, implied,
        "the allocation table disagrees with the Services"
    );
    table.len()
}

fn service_json(name: &str, seq: u64, rng: &mut StdRng) -> String {
    let type_ = ["ClusterIP", "NodePort", "LoadBalancer"][rng.random_range(0..3)];
    let ports: Vec<serde_json::Value> = (0..rng.random_range(1..3))
        .map(|i| {
            let mut port =
                serde_json::json!({"name": format!("p{i}"), "port": 80 + i, "targetPort": 8080});
            // Now and then a NodePort asked for by number: writers collide.
            if type_ != "ClusterIP" && rng.random_bool(0.1) {
                port["nodePort"] = serde_json::json!(rng.random_range(30000..30020));
            }
            port
        })
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {SEQ_LABEL: seq.to_string()}},
        "spec": {"type": type_, "selector": {"app": name}, "ports": ports},
    })
    .to_string()
}

fn pod_json(name: &str, seq: u64, rng: &mut StdRng) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {SEQ_LABEL: seq.to_string(), "app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": format!("10.244.1.{}", rng.random_range(2..250))},
    })
    .to_string()
}

/// Is this error an answer (the write certainly did not happen) or a
/// broken call (it may have)?
fn refused(e: &swctl::client::ClientError) -> bool {
    use tonic::Code;
    matches!(
        e.code(),
        Some(
            Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::ResourceExhausted
        )
    )
}

async fn writer(
    id: usize,
    login: Login,
    gate: Arc<RwLock<()>>,
    history: Arc<Mutex<History>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(id as u64);
    let mut client: Option<Client> = None;
    let mut seq = (id as u64) << 32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let _turn = gate.read().await;
        let Some(c) = client.as_mut() else {
            client = Client::connect(&login).await.ok();
            if client.is_none() {
                drop(_turn);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        let is_service = rng.random_bool(0.6);
        let (kind, name) = if is_service {
            (
                Kind::Service,
                format!("w{id}-svc-{}", rng.random_range(0..SERVICES_PER_WRITER)),
            )
        } else {
            (
                Kind::Pod,
                format!("w{id}-pod-{}", rng.random_range(0..PODS_PER_WRITER)),
            )
        };
        let delete = rng.random_bool(0.25);
        seq += 1;
        let result = if delete {
            c.delete(kind, "default", &name).await.map(|_| None)
        } else {
            let json = match kind {
                Kind::Service => service_json(&name, seq, &mut rng),
                _ => pod_json(&name, seq, &mut rng),
            };
            c.apply(kind, json, false)
                .await
                .map(|(object, _)| Some(object))
        };
        let mut h = history.lock().unwrap();
        match result {
            Ok(object) => {
                h.acknowledged += 1;
                let state = object.as_ref().map_or(State::Absent, state_of);
                if let State::Present {
                    resource_version, ..
                } = state
                {
                    h.max_version = h.max_version.max(resource_version);
                }
                let entry = h.entry(kind, &name);
                entry.confirmed = state;
                entry.unheard.clear();
            }
            Err(e) if refused(&e) => h.refused += 1,
            Err(_) => {
                h.unheard += 1;
                h.entry(kind, &name).unheard.push(if delete {
                    Unheard::Delete
                } else {
                    Unheard::Apply(seq)
                });
                client = None;
            }
        }
    }
}

async fn shown(login: &Login) -> (BTreeMap<(Kind, String), State>, u64) {
    let mut client = Client::connect(login).await.unwrap();
    let scope = Scope {
        namespace: "default".to_string(),
        all_namespaces: false,
        selector: String::new(),
    };
    let mut shown = BTreeMap::new();
    let mut version = 0;
    for kind in [Kind::Service, Kind::Pod] {
        let (objects, list_version) = client.list(kind, &scope).await.unwrap();
        version = list_version;
        for object in objects
            .iter()
            .filter(|o| o.meta().labels.contains_key(SEQ_LABEL))
        {
            shown.insert((kind, object.name().to_string()), state_of(object));
        }
    }
    (shown, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_twenty_kill_9s_and_allocations_stay_exact() {
    let mut cp = ControlPlane::start(&["--lb-pool", "172.18.0.128/25"]);
    let login = cp.login();
    let gate = Arc::new(RwLock::new(()));
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                id,
                login.clone(),
                gate.clone(),
                history.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(99);
    let mut held = 0;
    for _ in 1..=CRASHES {
        // Crash under load: once writes flow again, at a random moment.
        let since = history.lock().unwrap().acknowledged;
        while history.lock().unwrap().acknowledged < since + 10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        tokio::task::block_in_place(|| cp.crash());
        held = tokio::task::block_in_place(|| check_store_on_disk(&cp));
        tokio::task::block_in_place(|| cp.start_again());
        // Writers wait while the checker looks: what it lists is settled.
        let _all = gate.write().await;
        let (now, version) = shown(&login).await;
        history.lock().unwrap().check(&now, version);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let h = history.lock().unwrap();
    println!(
        "{CRASHES} kill -9s: {} writes acknowledged, {} refused, {} unanswered (each found whole or absent), {} allocations on disk after the last crash, all held once",
        h.acknowledged, h.refused, h.unheard, held
    );
    assert!(
        h.acknowledged >= 200,
        "too few writes to show anything: {}",
        h.acknowledged
    );
    assert!(h.unheard >= 1, "no write was cut by a crash");
}
