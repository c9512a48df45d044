//! Real packets through the compiled ruleset, in three throwaway namespaces:
//!
//! ```text
//!  client 192.168.1.20 ──veth── 192.168.1.10 node 10.244.1.1 ──veth── 10.244.1.5 pod
//!                                (table switchyard)                   (server :8080)
//! ```
//!
//! The server answers every connection with the source address it sees, so
//! each check asserts both reachability and who was masqueraded. Clients and
//! the server are this test binary re-executed inside a namespace (role in
//! `SYTEST_ROLE`), so no extra tools are needed. Needs root; see `support`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::Netns;
use switchyard_agent::model::*;
use switchyard_agent::nft::{layout, DataPath, NftRunner};

const ROLE: &str = "SYTEST_ROLE";
const MARK: &str = "SYTEST ";

// === helper roles (run inside a namespace) ===

/// The server or client role of a re-executed test binary: ignored, so it
/// never counts as a passing test; the traffic tests run it with
/// `--ignored --exact traffic_helper`.
#[test]
#[ignore = "a child-process entry point of the traffic tests, not a test"]
fn traffic_helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.split_once('=') {
        Some(("serve", addr)) => serve(addr.parse().unwrap(), false),
        Some(("serve-local", addr)) => serve(addr.parse().unwrap(), true),
        Some(("serve-udp", addr)) => serve_udp(addr.parse().unwrap()),
        Some(("ask-udp", addr)) => println!("{MARK}{}", ask_udp(addr.parse().unwrap())),
        Some(("connect", addr)) => println!("{MARK}{}", connect(addr.parse().unwrap())),
        _ => panic!("unknown role {role}"),
    }
}

/// Answers each connection with the client's address, or with the
/// address it was made to (`local`: which backend answered).
fn serve(addr: SocketAddr, local: bool) {
    let listener = TcpListener::bind(addr).unwrap();
    println!("{MARK}listening");
    std::io::stdout().flush().unwrap();
    for stream in listener.incoming().flatten() {
        let mut stream = stream;
        let seen = match local {
            true => stream.local_addr(),
            false => stream.peer_addr(),
        };
        if let Ok(seen) = seen {
            let _ = stream.write_all(seen.ip().to_string().as_bytes());
        }
    }
}

/// Answers each datagram with the address it came from.
fn serve_udp(addr: SocketAddr) {
    let socket = UdpSocket::bind(addr).unwrap();
    println!("{MARK}listening");
    std::io::stdout().flush().unwrap();
    let mut buf = [0u8; 64];
    while let Ok((_, peer)) = socket.recv_from(&mut buf) {
        let _ = socket.send_to(peer.ip().to_string().as_bytes(), peer);
    }
}

/// `ok <address the server saw>` or `timeout`.
fn ask_udp(addr: SocketAddr) -> String {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    socket.send_to(b"?", addr).unwrap();
    let mut buf = [0u8; 64];
    match socket.recv(&mut buf) {
        Ok(n) => format!("ok {}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => "timeout".into(),
    }
}

/// `ok <address the server saw>`, `refused`, `timeout` or `error …`.
fn connect(addr: SocketAddr) -> String {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(1500)) {
        Ok(mut stream) => {
            let mut seen = String::new();
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            match stream.read_to_string(&mut seen) {
                Ok(_) => format!("ok {seen}"),
                Err(e) => format!("error reading: {e}"),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused".into(),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => "timeout".into(),
        Err(e) => format!("error {e}"),
    }
}

fn helper_command(ns: &Netns, role: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name])
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            "traffic_helper",
            "--nocapture",
            "--quiet",
        ])
        .env(ROLE, role);
    cmd
}

/// Connects from inside `ns` and returns the client's verdict.
fn connect_from(ns: &Netns, addr: &str) -> String {
    ask_from(ns, "connect", addr)
}

/// Runs the client `role` against `addr` inside `ns`: its verdict.
fn ask_from(ns: &Netns, role: &str, addr: &str) -> String {
    let out = helper_command(ns, &format!("{role}={addr}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(MARK))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "no answer: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// The server process, killed on drop.
struct Server(Child);

impl Server {
    fn start(ns: &Netns, addr: &str) -> Self {
        Self::start_role(ns, "serve", addr)
    }

    fn start_role(ns: &Netns, role: &str, addr: &str) -> Self {
        let mut child = helper_command(ns, &format!("{role}={addr}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.any(|l| l.is_ok_and(|l| l == format!("{MARK}listening")));
        assert!(ready, "server did not start");
        Self(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// === topology ===

fn wire(node: &Netns, peer: &Netns, node_if: &str, node_addr: &str, peer_addr: &str) {
    let (n, p) = (&node.name, &peer.name);
    let cmds = [
        format!("ip -n {n} link add {node_if} type veth peer name eth0 netns {p}"),
        format!("ip -n {n} addr add {node_addr} dev {node_if}"),
        format!("ip -n {n} link set {node_if} up"),
        format!("ip -n {p} addr add {peer_addr} dev eth0"),
        format!("ip -n {p} link set eth0 up"),
        format!("ip -n {p} link set lo up"),
        format!(
            "ip -n {p} route add default via {}",
            node_addr.split('/').next().unwrap()
        ),
    ];
    for cmd in cmds {
        support::sh(&cmd.split_whitespace().collect::<Vec<_>>()).unwrap();
    }
}

fn endpoint(ip: [u8; 4], node: &str) -> EndpointEntry {
    EndpointEntry {
        hints: None,
        ip: ip.into(),
        node_name: Some(node.into()),
        ready: true,
        serving: true,
        terminating: false,
        ports: vec![EndpointPortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 8080,
        }]
        .into(),
    }
}

fn service(
    vip: u8,
    node_port: u16,
    external_local: bool,
    endpoints: Vec<EndpointEntry>,
) -> ServiceEntry {
    ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, vip)),
        ports: vec![ServicePortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            node_port: Some(node_port),
        }],
        external_traffic_local: external_local,
        endpoints,
        ..Default::default()
    }
}

fn snapshot() -> Snapshot {
    let pod = || vec![endpoint([10, 244, 1, 5], "node-a")];
    let mut web = service(10, 30080, false, pod());
    web.external_ips = vec![Ipv4Addr::new(203, 0, 113, 7)];
    // Same pod, but it claims another node: no local endpoint for node-a.
    let mut remote_local = service(13, 30083, true, vec![endpoint([10, 244, 1, 5], "node-b")]);
    remote_local.external_ips = vec![Ipv4Addr::new(203, 0, 113, 8)];
    // ClientIP affinity over two addresses of the pod, port 8081.
    let mut sticky = service(
        14,
        30084,
        false,
        [[10, 244, 1, 5], [10, 244, 1, 6]]
            .map(|ip| endpoint(ip, "node-a"))
            .into(),
    );
    for e in &mut sticky.endpoints {
        e.ports = vec![EndpointPortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 8081,
        }]
        .into();
    }
    sticky.session_affinity_timeout = Some(10800);
    // UDP, port 53 to the pod's 5353.
    let mut dns = service(15, 30085, false, vec![endpoint([10, 244, 1, 5], "node-a")]);
    dns.ports[0].protocol = Protocol::Udp;
    dns.ports[0].port = 53;
    dns.endpoints[0].ports = vec![EndpointPortEntry {
        name: "http".into(),
        protocol: Protocol::Udp,
        port: 5353,
    }]
    .into();
    let services = [
        ("dns", dns),
        ("sticky", sticky),
        ("web", web),
        ("web-local", service(11, 30081, true, pod())),
        ("empty", service(12, 30082, false, vec![])),
        ("remote-local", remote_local),
    ];
    Snapshot {
        version: 1,
        services: services
            .into_iter()
            .map(|(n, s)| (ServiceKey::new("default", n), s))
            .collect(),
    }
}

// === the tests ===

/// client ── node ── pod, the node forwarding; `None` when skipped.
fn topology(test: &str) -> Option<(Netns, Netns, Netns)> {
    let (Some(node), Some(pod), Some(client)) = (
        Netns::create(test),
        Netns::create(test),
        Netns::create(test),
    ) else {
        return None;
    };
    wire(&node, &pod, "pods0", "10.244.1.1/24", "10.244.1.5/24");
    pod.exec("ip addr add 10.244.1.6/24 dev eth0").unwrap();
    wire(
        &node,
        &client,
        "uplink0",
        "192.168.1.10/24",
        "192.168.1.20/24",
    );
    node.exec("ip link set lo up").unwrap();
    node.exec("sysctl -qw net.ipv4.ip_forward=1").unwrap();
    // The host needs a route to the service range before nat/output runs.
    node.exec("ip route add 10.96.0.0/12 dev uplink0").unwrap();
    Some((node, pod, client))
}

fn node_context() -> NodeContext {
    NodeContext {
        zone: None,
        node_name: "node-a".into(),
        node_ips: vec![Ipv4Addr::new(192, 168, 1, 10)],
        pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
    }
}

#[tokio::test]
async fn service_traffic_is_dnatted_masqueraded_and_rejected_as_kube_proxy_does() {
    let Some((node, pod, client)) = topology("service_traffic") else {
        return;
    };
    let mut dp = DataPath::open("switchyard", node.runner()).await.unwrap();
    dp.apply(&node_context(), &snapshot()).await.unwrap();
    check_traffic(&node, &pod, &client);
}

/// The table as `layout::render` writes it serves the same traffic, and a
/// change reaches packets as element deletes and adds over netlink.
#[tokio::test]
async fn changes_reach_traffic_as_element_deltas_over_netlink() {
    let Some((node, pod, client)) = topology("changes_reach_traffic_as_element_deltas") else {
        return;
    };
    let ctx = node_context();
    let mut index = layout::Index::build(&ctx, &snapshot());
    let script = layout::render("switchyard", &index.table(), ctx.pod_cidr);
    let path = std::env::temp_dir().join(format!("{}-layout.nft", node.name));
    std::fs::write(&path, script).unwrap();
    node.nft(&format!("-f {}", path.display())).unwrap();
    let _ = std::fs::remove_file(&path);
    check_traffic(&node, &pod, &client);

    // `empty` gains the pod, `web` loses it.
    let mut changed = snapshot();
    let key = |name: &str| ServiceKey::new("default", name);
    let moved = std::mem::take(&mut changed.services.get_mut(&key("web")).unwrap().endpoints);
    changed.services.get_mut(&key("empty")).unwrap().endpoints = moved;
    let touched = [key("web"), key("empty")].into();
    let change = index.update(&ctx, &changed, &touched);
    let tx = layout::delta("switchyard", &change.before, &change.after);
    let script = tx.script();
    assert!(
        !script.contains("chain") && !script.contains("rule"),
        "{script}"
    );
    let fallbacks = prometheus_client::metrics::counter::Counter::default();
    let runner = node.runner().counting_fallbacks(fallbacks.clone());
    runner.apply(&tx).await.unwrap();
    assert_eq!(fallbacks.get(), 0, "sent over netlink: {script}");
    let _server = Server::start(&pod, "0.0.0.0:8080");
    assert_eq!(connect_from(&node, "10.96.0.12:80"), "ok 10.244.1.1");
    assert_eq!(connect_from(&node, "10.96.0.10:80"), "refused");
    assert_eq!(connect_from(&client, "192.168.1.10:30082"), "ok 10.244.1.1");
    assert_eq!(
        layout::render("switchyard", &index.table(), ctx.pod_cidr),
        layout::render("switchyard", &layout::compile(&ctx, &changed), ctx.pod_cidr),
        "the index after the change is the table compiled at once"
    );

    // A new affinity timeout declares its sets and rewrites the record
    // chain; the sets of the one no Service has any more go.
    let mut retimed = changed.clone();
    retimed
        .services
        .get_mut(&key("sticky"))
        .unwrap()
        .session_affinity_timeout = Some(60);
    let change = index.update(&ctx, &retimed, &[key("sticky")].into());
    let tx = layout::delta("switchyard", &change.before, &change.after);
    node.runner().apply(&tx).await.unwrap();
    let listing = node.nft("list table ip switchyard").unwrap();
    assert!(
        listing.contains("set affinity-60 {") && !listing.contains("affinity-10800"),
        "{listing}"
    );
    assert!(
        listing.contains("timeout 1m : ip daddr . tcp dport }"),
        "{listing}"
    );
    check_affinity(&node, &pod, &client);
}

/// Every connection of one client to an affinity Service lands on the
/// backend its first one got (two backends: 1 in 128 to pass by chance
/// without affinity, per client).
fn check_affinity(node: &Netns, pod: &Netns, client: &Netns) {
    let _server = Server::start_role(pod, "serve-local", "0.0.0.0:8081");
    for (from, to) in [(client, "192.168.1.10:30084"), (node, "10.96.0.14:80")] {
        let answers: BTreeSet<String> = (0..8).map(|_| connect_from(from, to)).collect();
        assert_eq!(answers.len(), 1, "{to} from {}: {answers:?}", from.name);
        let answer = answers.first().unwrap();
        assert!(
            ["ok 10.244.1.5", "ok 10.244.1.6"].contains(&answer.as_str()),
            "{answer}"
        );
    }
}

/// UDP takes the same path: a ClusterIP from the pod itself (hairpin) and
/// from the host, both masqueraded, and a NodePort.
fn check_udp(node: &Netns, pod: &Netns, client: &Netns) {
    let _server = Server::start_role(pod, "serve-udp", "0.0.0.0:5353");
    assert_eq!(ask_from(pod, "ask-udp", "10.96.0.15:53"), "ok 10.244.1.1");
    assert_eq!(ask_from(node, "ask-udp", "10.96.0.15:53"), "ok 10.244.1.1");
    assert_eq!(
        ask_from(client, "ask-udp", "192.168.1.10:30085"),
        "ok 10.244.1.1"
    );
}

fn check_traffic(node: &Netns, pod: &Netns, client: &Netns) {
    let _server = Server::start(pod, "0.0.0.0:8080");
    let masq = "ok 10.244.1.1";
    let checks = [
        (
            node,
            "10.96.0.10:80",
            masq,
            "ClusterIP from the host (masqueraded)",
        ),
        (
            pod,
            "10.96.0.10:80",
            masq,
            "hairpin: a pod through its own service",
        ),
        (
            client,
            "192.168.1.10:30080",
            masq,
            "NodePort, Cluster policy",
        ),
        (client, "203.0.113.7:80", masq, "external IP"),
        (
            node,
            "192.168.1.10:30080",
            masq,
            "NodePort from the node itself",
        ),
        (
            client,
            "192.168.1.10:30081",
            "ok 192.168.1.20",
            "NodePort, Local policy keeps the client IP",
        ),
        (
            node,
            "10.96.0.12:80",
            "refused",
            "no endpoints: rejected at once (host)",
        ),
        (
            pod,
            "10.96.0.12:80",
            "refused",
            "no endpoints: rejected at once (pod)",
        ),
        (
            client,
            "192.168.1.10:30082",
            "refused",
            "no endpoints: NodePort rejected",
        ),
        (
            client,
            "192.168.1.10:30083",
            "timeout",
            "Local policy, no local endpoint: dropped",
        ),
        (
            pod,
            "203.0.113.8:80",
            masq,
            "…but this node's pods still reach the cluster set",
        ),
        (
            node,
            "192.168.1.10:30083",
            masq,
            "…and so does the node itself",
        ),
    ];
    let mut failures = Vec::new();
    for (from, addr, want, what) in checks {
        let got = connect_from(from, addr);
        if got != want {
            failures.push(format!(
                "{what}: {addr} from {} gave {got:?}, want {want:?}",
                from.name
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    check_affinity(node, pod, client);
    check_udp(node, pod, client);
}
