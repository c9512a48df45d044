//! High availability on etcd: real etcd members (Debian's `etcd`, data on
//! tmpfs, clients on mutual TLS) and several real control planes on one
//! etcd, on loopback. Allocation uniqueness under concurrent creates over
//! two control planes, writes across control-plane crashes, etcd member
//! loss, and a leader cut off from etcd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{binary, free_loopback_address, http_get, ControlPlane};
use swctl::client::{Client, Scope};
use swctl::login::Login;
use switchyard_api::resources::{Kind, Object};
use switchyard_lab::etcd::EtcdCluster;

fn flags(etcd: &EtcdCluster, name: &str, metrics: &str) -> Vec<String> {
    let mut flags = etcd.control_plane_flags();
    flags.extend([
        "--name".into(),
        name.into(),
        "--metrics-listen".into(),
        metrics.into(),
    ]);
    flags
}

/// Three etcd members and two control planes on them sharing one PKI.
fn two_control_planes() -> (EtcdCluster, ControlPlane, ControlPlane) {
    let (etcd, a, b, _) = two_control_planes_with_metrics();
    (etcd, a, b)
}

/// [`two_control_planes`] and the addresses of their `/metrics`.
fn two_control_planes_with_metrics() -> (EtcdCluster, ControlPlane, ControlPlane, [String; 2]) {
    let etcd = EtcdCluster::start(3).unwrap();
    let metrics = [free_loopback_address(), free_loopback_address()];
    let a = ControlPlane::start(&as_strs(&flags(&etcd, "cp-1", &metrics[0])));
    let b = ControlPlane::start_beside(&a, &as_strs(&flags(&etcd, "cp-2", &metrics[1])));
    (etcd, a, b, metrics)
}

/// A counter's value in a control plane's `/metrics` (0 when absent).
fn counter(metrics: &str, name: &str) -> u64 {
    let answer = http_get(metrics, "/metrics");
    answer
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn as_strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

fn service_json(name: &str, kind: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": 80}]},
    })
    .to_string()
}

/// The ClusterIP and NodePort (0 for none) a stored Service holds.
fn allocations(object: &Object) -> (String, i32) {
    let Object::Service(svc) = object else {
        panic!("not a Service: {object:?}");
    };
    (
        svc.spec.cluster_ip.clone().unwrap(),
        svc.spec.ports[0].node_port.unwrap_or(0),
    )
}

async fn services(login: &Login) -> Vec<Object> {
    let mut client = Client::connect(login).await.unwrap();
    let scope = Scope {
        namespace: "default".into(),
        ..Default::default()
    };
    client.list(Kind::Service, &scope).await.unwrap().0
}

/// Leader gauge a control plane exports on `--metrics-listen`.
fn leads(metrics: &str) -> Option<bool> {
    let answer = std::panic::catch_unwind(|| http_get(metrics, "/metrics")).ok()?;
    let line = answer
        .lines()
        .find(|l| l.starts_with("switchyard_leader "))?;
    Some(line.ends_with(" 1"))
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_over_two_control_planes_allocate_each_value_once() {
    if !switchyard_lab::require_etcd(
        "concurrent_creates_over_two_control_planes_allocate_each_value_once",
    ) {
        return;
    }
    let (_etcd, a, b) = two_control_planes();
    let logins = [a.login(), b.login()];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let login = logins[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&login).await.unwrap();
            for i in 0..25 {
                let name = format!("s-{task}-{i}");
                client
                    .apply(Kind::Service, service_json(&name, "NodePort"), true)
                    .await
                    .unwrap_or_else(|e| panic!("creating {name}: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let through_a = services(&logins[0]).await;
    // The other control plane may trail by the last few revisions.
    let mut through_b = services(&logins[1]).await;
    for _ in 0..100 {
        if through_b.len() == through_a.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        through_b = services(&logins[1]).await;
    }
    let ips: BTreeSet<String> = through_a.iter().map(|o| allocations(o).0).collect();
    let ports: BTreeSet<i32> = through_a.iter().map(|o| allocations(o).1).collect();
    println!(
        "400 creates over 2 control planes in {:.2}s ({:.0}/s)",
        elapsed.as_secs_f64(),
        400.0 / elapsed.as_secs_f64()
    );
    assert_eq!(through_a.len(), 400);
    assert_eq!(ips.len(), 400, "a ClusterIP was given twice");
    assert_eq!(ports.len(), 400, "a NodePort was given twice");
    // Both control planes serve the same objects, at the same versions.
    let versions = |objects: &[Object]| -> Vec<(String, Option<String>)> {
        objects
            .iter()
            .map(|o| (o.name().to_string(), o.meta().resource_version.clone()))
            .collect()
    };
    assert_eq!(versions(&through_a), versions(&through_b));
    let table = a.ok(&["get", "controlplanes"]);
    let rows = support::rows_without_age(&table);
    assert_eq!(rows[0], ["NAME", "ADDRESS", "LEADER", "REVISION", "AGENTS"]);
    assert_eq!(rows.len(), 3, "{table}");
    assert_eq!(rows[1][0], "cp-1");
    assert_eq!(rows[1][1], a.server);
    assert_eq!(rows[2][0], "cp-2");
    assert_eq!(rows[2][1], b.server);
    let leaders: Vec<&str> = rows[1..].iter().map(|r| r[2].as_str()).collect();
    assert!(
        leaders == ["true", "false"] || leaders == ["false", "true"],
        "{table}"
    );
}

/// What the writers were told.
#[derive(Default)]
struct Acknowledged {
    /// name → (ClusterIP, NodePort) as acknowledged.
    services: Vec<(String, (String, i32))>,
    failures: usize,
    /// The longest time any writer went without a successful write.
    longest_gap: Duration,
}

async fn write_until_stopped(
    id: usize,
    login: Login,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
) {
    let mut n = 0;
    let mut last_ok = Instant::now();
    let mut client: Option<Client> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Some(c) = client.as_mut() else {
            client = Client::connect(&login).await.ok();
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            continue;
        };
        let name = format!("w{id}-{n}");
        // Every tenth a NodePort: the range holds fewer than 2,768.
        let kind = if n % 10 == 0 { "NodePort" } else { "ClusterIP" };
        match c
            .apply(Kind::Service, service_json(&name, kind), true)
            .await
        {
            Ok((object, _)) => {
                let mut a = acked.lock().unwrap();
                a.longest_gap = a.longest_gap.max(last_ok.elapsed());
                a.services.push((name, allocations(&object)));
                last_ok = Instant::now();
                n += 1;
            }
            Err(e) if e.code() == Some(tonic::Code::AlreadyExists) => n += 1,
            Err(_) => {
                acked.lock().unwrap().failures += 1;
                // A fresh connection goes to the control plane that answers.
                client = None;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_go_on_through_the_other_control_plane_when_one_is_killed() {
    if !switchyard_lab::require_etcd(
        "writes_go_on_through_the_other_control_plane_when_one_is_killed",
    ) {
        return;
    }
    let etcd = EtcdCluster::start(3).unwrap();
    let mut a = ControlPlane::start(&as_strs(&flags(&etcd, "cp-1", &free_loopback_address())));
    let mut b = ControlPlane::start_beside(
        &a,
        &as_strs(&flags(&etcd, "cp-2", &free_loopback_address())),
    );
    let both = format!("{},{}", a.server, b.server);
    let login = Login::resolve(Some(&both), Some(&a.config())).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let writers: Vec<_> = (0..8)
        .map(|id| {
            tokio::spawn(write_until_stopped(
                id,
                login.clone(),
                stop.clone(),
                acked.clone(),
            ))
        })
        .collect();
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let victim = if round % 2 == 0 { &mut a } else { &mut b };
        victim.crash();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        victim.start_again();
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    println!(
        "4 kill -9s: {} writes acknowledged, {} failed, longest gap between a writer's acknowledged writes {:?}",
        acked.services.len(),
        acked.failures,
        acked.longest_gap
    );
    assert!(
        acked.longest_gap < Duration::from_secs(2),
        "writes stopped for {:?}",
        acked.longest_gap
    );
    let stored: std::collections::BTreeMap<String, (String, i32)> = services(&login)
        .await
        .iter()
        .map(|o| (o.name().to_string(), allocations(o)))
        .collect();
    for (name, held) in &acked.services {
        assert_eq!(stored.get(name), Some(held), "{name} as acknowledged");
    }
    let ips: BTreeSet<&String> = stored.values().map(|(ip, _)| ip).collect();
    let ports: Vec<i32> = stored
        .values()
        .map(|(_, port)| *port)
        .filter(|p| *p != 0)
        .collect();
    let distinct_ports: BTreeSet<&i32> = ports.iter().collect();
    assert_eq!(ips.len(), stored.len(), "a ClusterIP was given twice");
    assert_eq!(
        distinct_ports.len(),
        ports.len(),
        "a NodePort was given twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_etcd_quorum_stops_writes_with_a_clear_error_and_nothing_else() {
    if !switchyard_lab::require_etcd(
        "losing_etcd_quorum_stops_writes_with_a_clear_error_and_nothing_else",
    ) {
        return;
    }
    let mut etcd = EtcdCluster::start(3).unwrap();
    let cp = ControlPlane::start(&as_strs(&flags(&etcd, "cp-1", &free_loopback_address())));
    let create = |name: &str| cp.swctl_stdin(&["apply", "-f", "-"], Some(&service_yaml(name)));
    assert!(create("before").status.success());
    etcd.kill(0);
    let out = create("one-member-down");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    etcd.kill(1);
    let started = Instant::now();
    let out = create("no-quorum");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        took < Duration::from_secs(5),
        "the write took {took:?} to fail"
    );
    assert!(
        stderr.contains("etcd: a write got no answer within 4s (is a quorum of its members up?); the write may still be committed once etcd recovers"),
        "unclear error: {stderr}"
    );
    // Reads are served from the control plane's own state.
    let names = cp.ok(&["get", "svc", "-o", "name"]);
    assert_eq!(
        names, "service/before\nservice/one-member-down\n",
        "reads while etcd has no quorum"
    );
    etcd.restart(1).unwrap();
    wait_until("writes resume", Duration::from_secs(30), || {
        create("after").status.success()
    });
    // The write etcd never answered may have committed once it recovered,
    // as its error said; whole or not at all.
    let names = cp.ok(&["get", "svc", "-o", "name"]);
    let without = "service/after\nservice/before\nservice/one-member-down\n";
    let with = "service/after\nservice/before\nservice/no-quorum\nservice/one-member-down\n";
    assert!(names == without || names == with, "{names}");
}

/// `switchyard-lab relay` processes, killed when dropped.
struct Relays(Vec<std::process::Child>);

impl Drop for Relays {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A relay in front of each etcd member: dropping them cuts a control
/// plane that uses them off from etcd.
fn relays(etcd: &EtcdCluster, members: usize) -> (Relays, String) {
    let mut guards = Relays(Vec::new());
    let mut endpoints = Vec::new();
    for i in 0..members {
        let listen = free_loopback_address();
        let args = [
            binary("switchyard-lab").to_string_lossy().into_owned(),
            "relay".into(),
            "--listen".into(),
            listen.clone(),
            "--to".into(),
            etcd.client_address(i),
        ];
        let child = std::process::Command::new(&args[0])
            .args(&args[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        guards.0.push(child);
        endpoints.push(format!("https://{listen}"));
        wait_until("relay listens", Duration::from_secs(5), || {
            std::net::TcpStream::connect(&listen).is_ok()
        });
    }
    (guards, endpoints.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_etcd_steps_down_and_the_other_takes_over() {
    if !switchyard_lab::require_etcd(
        "a_leader_cut_off_from_etcd_steps_down_and_the_other_takes_over",
    ) {
        return;
    }
    let etcd = EtcdCluster::start(3).unwrap();
    let (relays, through_relays) = relays(&etcd, 3);
    let metrics_a = free_loopback_address();
    let metrics_b = free_loopback_address();
    let mut flags_a = etcd.control_plane_flags_for(&through_relays);
    flags_a.extend([
        "--name".into(),
        "cp-1".into(),
        "--metrics-listen".into(),
        metrics_a.clone(),
    ]);
    let a = ControlPlane::start(&as_strs(&flags_a));
    wait_until("cp-1 leads", Duration::from_secs(15), || {
        leads(&metrics_a) == Some(true)
    });
    let b = ControlPlane::start_beside(&a, &as_strs(&flags(&etcd, "cp-2", &metrics_b)));
    // cp-2 campaigns right after it first announces itself, then every 2 s:
    // from its first record on, through two campaigns, it never leads.
    wait_until("cp-2 announces itself", Duration::from_secs(10), || {
        a.ok(&["get", "controlplanes", "-o", "name"])
            .contains("cp-2")
    });
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(4) {
        assert_eq!(leads(&metrics_b), Some(false), "two leaders");
        assert_eq!(leads(&metrics_a), Some(true), "cp-1 lost the lead");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(relays);
    let stepped_down = wait_until("cp-1 steps down", Duration::from_secs(12), || {
        leads(&metrics_a) == Some(false)
    });
    let took_over = wait_until("cp-2 takes over", Duration::from_secs(15), || {
        leads(&metrics_b) == Some(true)
    });
    println!("cp-1 stepped down after {stepped_down:?}; cp-2 led {took_over:?} later");
    let table = b.ok(&["get", "controlplanes"]);
    let rows = support::rows_without_age(&table);
    let leader_rows: Vec<&Vec<String>> = rows[1..].iter().filter(|r| r[2] == "true").collect();
    assert_eq!(leader_rows.len(), 1, "{table}");
    assert_eq!(leader_rows[0][0], "cp-2", "{table}");
    // The cut-off control plane refuses writes rather than losing them.
    let out = a.swctl_stdin(&["apply", "-f", "-"], Some(&service_yaml("cut-off")));
    assert!(!out.status.success());
    // Refused at once, or no answer while the connection still hangs.
    let prefix =
        "Error from server (InternalError): error when creating \"STDIN\": storage: etcd: ";
    let known = [
        format!("{prefix}Connection refused (os error 111)\n"),
        format!("{prefix}a write got no answer within 4s (is a quorum of its members up?); the write may still be committed once etcd recovers\n"),
    ];
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(known.contains(&stderr), "{stderr}");
    assert!(b.ok(&["get", "svc", "-o", "name"]).is_empty());
}

fn service_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  ports:\n  - port: 80\n"
    )
}

/// `swctl port-forward` through one control plane to a pod whose agent's
/// tunnel ends at the other: the first passes the forward on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_a_pod_whose_agent_streams_from_the_other_control_plane() {
    if !switchyard_lab::require_etcd(
        "port_forward_reaches_a_pod_whose_agent_streams_from_the_other_control_plane",
    ) {
        return;
    }
    use std::io::{BufRead, BufReader};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_etcd, a, b) = two_control_planes();
    // The "pod": an HTTP answer on a loopback port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pod_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let body = "pod=web-1";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    b.apply_yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-1}}\nspec:\n  nodeName: node-1\n  containers:\n    - name: main\n      ports:\n        - {{name: http, containerPort: {pod_port}}}\nstatus:\n  podIP: 127.0.0.1\n"
    ));
    let channels = b.join("node-1").await;
    tokio::spawn(switchyard_agent::tunnel::run(
        channels,
        "node-1".to_string(),
    ));
    let local = free_loopback_address();
    let local_port = local.rsplit_once(':').unwrap().1.to_string();
    let pair = format!("{local_port}:{pod_port}");
    // cp-1 learns where node-1's tunnel ends from cp-2's record (every 2 s).
    let mut forwarder = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while forwarder.is_none() {
        assert!(Instant::now() < deadline, "cp-1 never forwarded to node-1");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swctl"))
            .args(["port-forward", "pod/web-1", &pair])
            .env("SWITCHYARD_SERVER", &a.server)
            .env("SWITCHYARD_CONFIG", a.config())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        if first.starts_with("Forwarding from") {
            forwarder = Some(child);
        } else {
            let _ = child.wait();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut s = tokio::net::TcpStream::connect(&local).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.ends_with("\r\n\r\npod=web-1"), "{answer}");
    let mut child = forwarder.unwrap();
    let _ = child.kill();
    let _ = child.wait();
}

/// A Service created through one control plane while its Pods are created
/// through the other: each write derives slices from what its control
/// plane has seen, and the leader repairs what either missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_and_their_pods_written_through_different_control_planes_get_every_endpoint() {
    if !switchyard_lab::require_etcd(
        "services_and_their_pods_written_through_different_control_planes_get_every_endpoint",
    ) {
        return;
    }
    let (_etcd, a, b, metrics) = two_control_planes_with_metrics();
    const SERVICES: usize = 20;
    const PODS: usize = 5;
    let services = {
        let login = a.login();
        tokio::spawn(async move {
            let mut client = Client::connect(&login).await.unwrap();
            for s in 0..SERVICES {
                let name = format!("s{s}");
                client
                    .apply(Kind::Service, service_json(&name, "ClusterIP"), true)
                    .await
                    .unwrap();
            }
        })
    };
    let pods: Vec<_> = (0..PODS)
        .map(|p| {
            let login = b.login();
            tokio::spawn(async move {
                let mut client = Client::connect(&login).await.unwrap();
                for s in 0..SERVICES {
                    let pod = serde_json::json!({
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": format!("s{s}-{p}"), "namespace": "default", "labels": {"app": format!("s{s}")}},
                        "spec": {"containers": [{"name": "main"}]},
                        "status": {"podIP": format!("10.244.{s}.{}", p + 1)},
                    });
                    client.apply(Kind::Pod, pod.to_string(), true).await.unwrap();
                }
            })
        })
        .collect();
    services.await.unwrap();
    for p in pods {
        p.await.unwrap();
    }
    let scope = Scope {
        namespace: "default".into(),
        ..Default::default()
    };
    let endpoints_per_service = |slices: &[Object]| {
        let mut counts = std::collections::BTreeMap::new();
        for s in slices {
            if let Object::EndpointSlice(slice) = s {
                *counts
                    .entry(slice.service_name().unwrap_or_default().to_string())
                    .or_insert(0) += slice.endpoints.len();
            }
        }
        counts
    };
    let expected: std::collections::BTreeMap<String, usize> =
        (0..SERVICES).map(|s| (format!("s{s}"), PODS)).collect();
    let mut last;
    let deadline = Instant::now() + Duration::from_secs(10);
    for login in [a.login(), b.login()] {
        let mut client = Client::connect(&login).await.unwrap();
        loop {
            let slices = client.list(Kind::EndpointSlice, &scope).await.unwrap().0;
            last = endpoints_per_service(&slices);
            if last == expected || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            last,
            expected,
            "endpoints per Service through {}",
            login.target.url()
        );
    }
    // The leader's repair went over the other control plane's writes:
    // without it this test could pass only because the race never came.
    // It runs every 500 ms over what piled up, so it may come just after
    // the slices already look right.
    let repairs = || -> u64 {
        metrics
            .iter()
            .map(|m| counter(m, "switchyard_endpoint_repairs_total"))
            .sum()
    };
    wait_until(
        "the leader's repair ran over the other's writes",
        Duration::from_secs(5),
        || repairs() > 0,
    );
    println!("the leader re-derived the slices of {} Services", repairs());
}

/// A later control plane given only `pki/` does not issue itself a new
/// admin certificate (which would revoke the first one's admin.conf).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_control_plane_without_admin_conf_leaves_the_first_ones_working() {
    if !switchyard_lab::require_etcd(
        "a_later_control_plane_without_admin_conf_leaves_the_first_ones_working",
    ) {
        return;
    }
    let etcd = EtcdCluster::start(3).unwrap();
    let a = ControlPlane::start(&as_strs(&flags(&etcd, "cp-1", &free_loopback_address())));
    let dir = tempfile::tempdir().unwrap();
    let data = copy_of_pki(&a, dir.path());
    let listen = free_loopback_address();
    let log = dir.path().join("cp-2.log");
    let mut child = std::process::Command::new(binary("switchyard-control-plane"))
        .args(["--listen", &listen, "--data-dir"])
        .arg(&data)
        .args(flags(&etcd, "cp-2", &free_loopback_address()))
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "cp-2 says why it wrote no admin.conf",
        Duration::from_secs(20),
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("admin.conf")),
    );
    let said = std::fs::read_to_string(&log).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.contains("the admin user's certificate was issued by another control plane of this store; copy its admin.conf here"),
        "{said}"
    );
    assert!(!data.join("admin.conf").exists());
    assert_eq!(a.ok(&["get", "ns", "-o", "name"]), "namespace/default\n");
}

/// Watches resume from a revision etcd still holds, and hear `too old
/// resource version` once the leader compacted it away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_from_etcd_history_until_the_leader_compacts_it() {
    if !switchyard_lab::require_etcd(
        "watches_resume_from_etcd_history_until_the_leader_compacts_it",
    ) {
        return;
    }
    let etcd = EtcdCluster::start(3).unwrap();
    let mut args = flags(&etcd, "cp-1", &free_loopback_address());
    args.extend(["--log-retention".into(), "100".into()]);
    let cp = ControlPlane::start(&as_strs(&args));
    let mut client = Client::connect(&cp.login()).await.unwrap();
    let scope = Scope {
        namespace: "default".into(),
        ..Default::default()
    };
    let (first, _) = client
        .apply(Kind::Service, service_json("first", "ClusterIP"), true)
        .await
        .unwrap();
    let first_rv: u64 = first
        .meta()
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let (second, _) = client
        .apply(Kind::Service, service_json("second", "ClusterIP"), true)
        .await
        .unwrap();
    // From just after `first`: the next event is `second`, from history.
    let mut resumed = client.watch(Kind::Service, &scope, first_rv).await.unwrap();
    let event = resumed.message().await.unwrap().unwrap();
    let seen = swctl::client::decode(event.resource.as_ref().unwrap()).unwrap();
    assert_eq!(seen.name(), "second");
    assert_eq!(seen.meta().resource_version, second.meta().resource_version);
    // Enough revisions for a compaction that drops `first`'s.
    for i in 0..400 {
        client
            .apply(
                Kind::Service,
                service_json(&format!("s{i}"), "ClusterIP"),
                true,
            )
            .await
            .unwrap();
    }
    let mut refused = None;
    for _ in 0..50 {
        match client.watch(Kind::Service, &scope, first_rv).await {
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
            Ok(mut w) => {
                if let Err(status) = w.message().await {
                    refused = Some(status.message().to_string());
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("the old revision was never compacted");
    assert!(refused.contains("too old resource version"), "{refused}");
}

/// Two control planes of one host on different addresses and the same port
/// get different default names (`<hostname>-<ip>-<port>`), so each has its
/// row; a third may not take a live one's name, while a restart of that one
/// (same name, same address, its old lease not yet expired) may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_planes_of_one_host_have_their_own_names() {
    if !switchyard_lab::require_etcd("control_planes_of_one_host_have_their_own_names") {
        return;
    }
    let etcd = EtcdCluster::start(1).unwrap();
    let etcd_flags = etcd.control_plane_flags();
    let mut a = ControlPlane::start(&as_strs(&etcd_flags));
    let port = a.port();
    let b = ControlPlane::start_beside_at(&a, "127.0.0.2", port, &as_strs(&etcd_flags));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let (name_a, name_b) = (
        format!("{host}-127-0-0-1-{port}"),
        format!("{host}-127-0-0-2-{port}"),
    );
    let names = |cp: &ControlPlane| -> Vec<(String, String)> {
        let table = cp.ok(&["get", "controlplanes"]);
        support::rows_without_age(&table)[1..]
            .iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect()
    };
    let both = vec![
        (name_a.clone(), a.server.clone()),
        (name_b.clone(), b.server.clone()),
    ];
    wait_until(
        "both control planes listed",
        Duration::from_secs(10),
        || names(&a) == both,
    );

    let dir = tempfile::tempdir().unwrap();
    let data = copy_of_pki(&a, dir.path());
    let mut third = std::process::Command::new(binary("switchyard-control-plane"))
        .args(["--listen", &format!("127.0.0.3:{port}"), "--name", &name_a])
        .arg("--data-dir")
        .arg(&data)
        .args(&etcd_flags)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    wait_until(
        "the third control plane refuses",
        Duration::from_secs(20),
        || {
            exited = third.try_wait().unwrap();
            exited.is_some()
        },
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut third.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(exited.unwrap().code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: another control plane named \"{name_a}\" is running at {}; give this one a different --name\n",
            a.server
        )
    );
    assert_eq!(names(&b), both);

    // A restart before its old record's lease expired.
    a.crash();
    a.start_again();
    assert_eq!(names(&a), both);
}

/// A data directory under `into` holding a copy of `cp`'s `pki/` only, as a
/// later control plane of the cluster starts with.
fn copy_of_pki(cp: &ControlPlane, into: &std::path::Path) -> std::path::PathBuf {
    let data = into.join("data");
    std::fs::create_dir_all(data.join("pki")).unwrap();
    for entry in std::fs::read_dir(cp.data_dir.join("pki")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join("pki").join(entry.file_name())).unwrap();
    }
    data
}
