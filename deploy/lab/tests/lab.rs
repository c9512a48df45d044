//! End-to-end checks of the lab itself: wiring, reachability rules and that
//! nothing leaks, even when a test panics. Needs root (see `require_root`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use switchyard_lab::{namespaces_with_prefix, require_root, ChildGuard, Lab, LabConfig};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard-lab");
const READY: Duration = Duration::from_secs(10);

fn lab(nodes: usize, pods_per_node: usize) -> Lab {
    Lab::new(LabConfig {
        nodes,
        pods_per_node,
    })
    .expect("building lab")
}

/// Starts the test backend in `ns` and waits until it has bound its sockets.
fn backend(lab: &Lab, ns: &str, name: &str, args: &[&str]) -> ChildGuard {
    let mut full = vec![BIN, "backend", "--name", name];
    full.extend_from_slice(args);
    let child = lab.spawn(ns, &full).expect("spawning backend");
    child.wait_for_log("ready", READY).expect("backend ready");
    child
}

/// GETs `url` from `ns` with a pinned source port, so the body is exact.
fn curl(lab: &Lab, ns: &str, url: &str, local_port: u16) -> String {
    let port = local_port.to_string();
    let args = ["curl", "-sS", "--max-time", "5", "--local-port", &port, url];
    lab.exec_ok(ns, &args)
        .unwrap_or_else(|e| panic!("curl {url} from {ns}: {e}"))
}

fn assert_gone(prefix: &str) {
    let left = namespaces_with_prefix(&format!("{prefix}-")).unwrap();
    assert!(left.is_empty(), "namespaces leaked: {left:?}");
}

fn assert_process_gone(pid: u32) {
    let proc_dir = format!("/proc/{pid}");
    assert!(
        !Path::new(&proc_dir).exists(),
        "process {pid} still running"
    );
}

#[test]
fn pods_nodes_and_client_reach_what_they_should() {
    if !require_root("pods_nodes_and_client_reach_what_they_should") {
        return;
    }
    let lab = lab(2, 2);
    let prefix = lab.prefix().to_string();
    let target = lab.pod(2, 1).clone();
    let b = backend(
        &lab,
        &target.ns,
        "b21",
        &["--listen", "0.0.0.0:8080", "--udp-listen", "0.0.0.0:5353"],
    );
    let url = format!("http://{}:8080/", target.ip);

    // Pod on another node: routed by both nodes, source IP kept.
    let body = curl(&lab, &lab.pod(1, 1).ns, &url, 40001);
    assert_eq!(body, "b21 10.244.1.11:40001\n", "backend log:\n{}", b.log());
    // Another node's own processes: they leave from the node IP.
    assert_eq!(
        curl(&lab, &lab.node(1).ns, &url, 40002),
        "b21 172.18.0.11:40002\n"
    );
    // The pod's own node: it talks from the pod gateway address.
    assert_eq!(
        curl(&lab, &lab.node(2).ns, &url, 40003),
        "b21 10.244.2.1:40003\n"
    );
    // Control plane routes pod CIDRs too.
    assert_eq!(
        curl(&lab, &lab.control_plane().ns, &url, 40004),
        "b21 172.18.0.2:40004\n"
    );

    check_client(&lab, &url);
    check_udp(&lab, &target.ip.to_string());

    let foreign = lab.exec("definitely-not-ours", &["true"]);
    assert!(
        foreign.is_err(),
        "exec must refuse namespaces of other labs"
    );

    let pid = b.pid();
    drop(b);
    assert_process_gone(pid);
    drop(lab);
    assert_gone(&prefix);
}

#[test]
fn pods_and_nodes_reach_each_other_over_ipv6_too() {
    if !require_root("pods_and_nodes_reach_each_other_over_ipv6_too") {
        return;
    }
    let lab = lab(2, 1);
    let target = lab.pod(2, 1).clone();
    let _b = backend(&lab, &target.ns, "b21", &["--listen", "[::]:8080"]);
    let url = format!("http://[{}]:8080/", target.ip6);
    assert_eq!(url, "http://[fd00:10:244:2::11]:8080/");
    assert_eq!(
        curl(&lab, &lab.pod(1, 1).ns, &url, 40021),
        "b21 [fd00:10:244:1::11]:40021\n"
    );
    assert_eq!(
        curl(&lab, &lab.node(1).ns, &url, 40022),
        "b21 [fd00:172:18::11]:40022\n"
    );
    assert_eq!(
        curl(&lab, &lab.control_plane().ns, &url, 40023),
        "b21 [fd00:172:18::2]:40023\n"
    );
}

/// The client reaches node IPs (NodePorts) but no pod until a route is added.
fn check_client(lab: &Lab, pod_url: &str) {
    let client = lab.client().ns.clone();
    let node1 = lab.node(1).clone();
    let _nb = backend(lab, &node1.ns, "node1", &["--listen", "0.0.0.0:9090"]);
    let node_url = format!("http://{}:9090/", node1.ip);
    assert_eq!(
        curl(lab, &client, &node_url, 40010),
        "node1 172.18.0.100:40010\n"
    );

    let out = lab
        .exec(&client, &["curl", "-sS", "--max-time", "2", pod_url])
        .unwrap();
    assert!(
        !out.status.success(),
        "client reached a pod without a route: {out:?}"
    );

    lab.add_route_via(&client, "10.244.0.0/16", node1.ip)
        .unwrap();
    assert_eq!(
        curl(lab, &client, pod_url, 40011),
        "b21 172.18.0.100:40011\n"
    );
}

/// UDP from a pinned source port gets one reply per datagram.
fn check_udp(lab: &Lab, ip: &str) {
    let to = format!("{ip}:5353");
    let args = [
        BIN,
        "udp-send",
        "--to",
        &to,
        "--from-port",
        "4000",
        "--count",
        "2",
        "--interval-ms",
        "10",
    ];
    let out = lab.exec_ok(&lab.pod(1, 2).ns, &args).unwrap();
    assert_eq!(out, "b21 10.244.1.12:4000\nb21 10.244.1.12:4000\n");
}

#[test]
fn panic_inside_a_test_still_cleans_up() {
    if !require_root("panic_inside_a_test_still_cleans_up") {
        return;
    }
    let seen: Mutex<Option<(String, u32, PathBuf)>> = Mutex::new(None);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = lab(1, 1);
        let b = backend(
            &lab,
            &lab.pod(1, 1).ns,
            "doomed",
            &["--listen", "0.0.0.0:8080"],
        );
        let log_dir = lab.log_dir().to_path_buf();
        *seen.lock().unwrap() = Some((lab.prefix().to_string(), b.pid(), log_dir));
        // Leak the guard: the lab alone must still stop the process.
        std::mem::forget(b);
        panic!("deliberate failure inside a lab test");
    }));
    assert!(result.is_err());
    let (prefix, pid, log_dir) = seen.lock().unwrap().clone().expect("lab was built");
    assert_gone(&prefix);
    assert_process_gone(pid);
    // Logs are kept on panic for debugging; this panic was on purpose.
    assert!(log_dir.is_dir(), "logs of a failing test should be kept");
    std::fs::remove_dir_all(log_dir).unwrap();
}

#[test]
fn labs_built_in_parallel_get_distinct_prefixes() {
    if !require_root("labs_built_in_parallel_get_distinct_prefixes") {
        return;
    }
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| lab(1, 0));
        let b = s.spawn(|| lab(1, 0));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.prefix(), b.prefix());
    let prefixes = [a.prefix().to_string(), b.prefix().to_string()];
    drop((a, b));
    prefixes.iter().for_each(|p| assert_gone(p));
}

#[test]
fn a_failed_build_removes_what_it_created() {
    if !require_root("a_failed_build_removes_what_it_created") {
        return;
    }
    let prefix = format!("syf{}", std::process::id() % 10_000);
    let blocker = format!("{prefix}-client");
    let add = std::process::Command::new("ip")
        .args(["netns", "add", &blocker])
        .status()
        .unwrap();
    assert!(add.success());
    // The client namespace already exists, so building fails half-way.
    let err = Lab::with_prefix(LabConfig::default(), &prefix).unwrap_err();
    assert!(
        err.to_string().contains(&blocker),
        "unexpected error: {err}"
    );
    // Everything under the (locked) prefix is swept, the blocker included.
    assert_gone(&prefix);
}

/// The lab must carry what the agent programs: a DNAT to a remote pod in a
/// node's own nftables table works for its pods and its own processes.
#[test]
fn node_nftables_dnat_reaches_a_remote_pod() {
    if !require_root("node_nftables_dnat_reaches_a_remote_pod") {
        return;
    }
    let lab = lab(2, 1);
    let target = lab.pod(2, 1).clone();
    let _b = backend(&lab, &target.ns, "vip", &["--listen", "0.0.0.0:8080"]);
    let dnat = format!(
        "ip daddr 10.96.0.10 tcp dport 80 dnat to {}:8080;",
        target.ip
    );
    let ruleset = format!(
        "table ip labtest {{\n chain pre {{ type nat hook prerouting priority -100; {dnat} }}\n chain out {{ type nat hook output priority -100; {dnat} }}\n}}\n"
    );
    let script = lab.log_dir().join("dnat.nft");
    std::fs::write(&script, ruleset).unwrap();
    let script = script.to_string_lossy().into_owned();
    lab.exec_ok(&lab.node(1).ns, &["nft", "-f", &script])
        .unwrap();

    let vip = "http://10.96.0.10/";
    assert_eq!(
        curl(&lab, &lab.pod(1, 1).ns, vip, 40020),
        "vip 10.244.1.11:40020\n"
    );
    assert_eq!(
        curl(&lab, &lab.node(1).ns, vip, 40021),
        "vip 172.18.0.11:40021\n"
    );
    // The client has no route to the service range at all.
    let out = lab
        .exec(&lab.client().ns, &["curl", "-sS", "--max-time", "2", vip])
        .unwrap();
    assert!(!out.status.success());
}
