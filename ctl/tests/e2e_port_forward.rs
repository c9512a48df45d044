//! `swctl port-forward` on the namespace lab (root only): the control plane
//! and one real `switchyard-agent` per node, swctl and its clients in the
//! lab's client namespace, which reaches the control plane but no pod. Every
//! byte therefore goes swctl → control plane → the pod's node agent → pod.
//! Skips loudly without root; fails instead when `SWITCHYARD_E2E=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use switchyard_lab::cluster::{Cluster, ClusterConfig};
use switchyard_lab::{require_root, ChildGuard, LabConfig};

const MIB: usize = 1024 * 1024;

fn cluster(test: &str) -> Option<Cluster> {
    if !require_root(test) {
        return None;
    }
    let cfg = ClusterConfig {
        lab: LabConfig {
            nodes: 2,
            pods_per_node: 1,
        },
        ..Default::default()
    };
    Some(Cluster::start(cfg).expect("cluster starts"))
}

/// A pod manifest for lab pod (i, 1), optionally marked not ready.
fn pod(c: &Cluster, i: usize, ready: bool) -> String {
    let yaml = c.pod_manifest(i, 1, &format!("web-{i}"), "web", 8080);
    if ready {
        return yaml;
    }
    let yaml = yaml.trim_end_matches("---\n");
    format!("{yaml}  conditions: [{{type: Ready, status: \"False\"}}]\n---\n")
}

const DEPLOYMENT_AND_SERVICE: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
";

/// A running `swctl port-forward` in the client namespace.
struct Forward {
    guard: ChildGuard,
    ports: Vec<u16>,
}

impl Forward {
    fn start(c: &Cluster, args: &[&str]) -> Forward {
        let pairs = args.iter().skip(1).filter(|a| !a.starts_with('-')).count();
        let mut full = c.swctl_command();
        full.push("port-forward".to_string());
        full.extend(args.iter().map(|a| a.to_string()));
        let guard = c.lab.spawn(&c.lab.client().ns, &full).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ports = forwarded_ports(&guard.log());
            if ports.len() == pairs {
                return Forward { guard, ports };
            }
            assert!(
                guard.is_running() && Instant::now() < deadline,
                "swctl port-forward {args:?} did not start:\n{}",
                guard.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[i])
    }

    fn wait_log(&self, needle: &str) {
        self.guard
            .wait_for_log(needle, Duration::from_secs(20))
            .unwrap();
    }
}

/// Local ports from kubectl's `Forwarding from 127.0.0.1:P -> R` lines.
fn forwarded_ports(log: &str) -> Vec<u16> {
    log.lines()
        .filter_map(|l| l.strip_prefix("Forwarding from 127.0.0.1:"))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

/// Runs a shell command in the client namespace; returns (success, stdout).
fn client_sh(c: &Cluster, script: &str) -> (bool, String) {
    let out = c
        .lab
        .exec(&c.lab.client().ns, &["sh", "-c", script])
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// The first word of the backend's answer (its name), or Err on failure.
fn get(c: &Cluster, url: &str) -> Result<String, String> {
    let (ok, out) = client_sh(c, &format!("curl -sS --max-time 20 {url}"));
    if ok {
        Ok(out
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string())
    } else {
        Err(out)
    }
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for: {what}");
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((seed + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

fn swctl_fails(c: &Cluster, args: &[&str]) -> String {
    let mut full = c.swctl_command();
    full.push("port-forward".to_string());
    full.extend(args.iter().map(|a| a.to_string()));
    let out = c.lab.exec(&c.lab.client().ns, &full).unwrap();
    assert!(
        !out.status.success(),
        "swctl port-forward {args:?} succeeded"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn setup(c: &Cluster) -> Vec<ChildGuard> {
    let manifests = format!(
        "{DEPLOYMENT_AND_SERVICE}---\n{}{}",
        pod(c, 1, true),
        pod(c, 2, true)
    );
    c.apply(&manifests).unwrap();
    vec![
        c.backend(1, 1, "web-1", 8080).unwrap(),
        c.backend(2, 1, "web-2", 8080).unwrap(),
    ]
}

#[test]
fn e2e_port_forward_reaches_pods_only_through_the_control_plane() {
    let Some(c) = cluster("e2e_port_forward_reaches_pods_only_through_the_control_plane") else {
        return;
    };
    let _backends = setup(&c);
    // The client namespace has no route to any pod.
    let direct = format!("http://{}:8080/", c.lab.pod(1, 1).ip);
    assert!(
        get(&c, &direct).is_err(),
        "the client reaches a pod directly"
    );

    let svc = Forward::start(&c, &["svc/web", ":80"]);
    assert!(svc.guard.log().contains(" -> 8080"), "{}", svc.guard.log());
    assert_eq!(get(&c, &svc.url(0, "/")).unwrap(), "web-1");
    let deploy = Forward::start(&c, &["deploy/web", ":8080"]);
    assert_eq!(get(&c, &deploy.url(0, "/")).unwrap(), "web-1");
    let pod = Forward::start(&c, &["pod/web-2", ":8080"]);
    assert_eq!(get(&c, &pod.url(0, "/")).unwrap(), "web-2");
    let bare = Forward::start(&c, &["web-2", ":8080"]);
    assert_eq!(get(&c, &bare.url(0, "/")).unwrap(), "web-2");
    assert!(bare.guard.log().contains("Handling connection for"));

    // 50 MiB from a pod on the other node, checksummed.
    let want = hex(&Sha256::digest(vec![b'x'; 50 * MIB]));
    let (ok, got) = client_sh(
        &c,
        &format!(
            "curl -sS --max-time 120 {} | sha256sum",
            pod.url(0, &format!("/bytes/{}", 50 * MIB))
        ),
    );
    assert!(ok);
    assert_eq!(got.split_whitespace().next().unwrap(), want);

    // 50 MiB up and 50 MiB back over one connection: four 12.5 MiB echoes
    // (the lab backend takes at most 16 MiB per request).
    let part = 50 * MIB / 4;
    let mut all = Sha256::new();
    let mut files = Vec::new();
    for k in 0..4u64 {
        let data = pattern(k * 1_000_003, part);
        all.update(&data);
        let path = c.lab.log_dir().join(format!("upload-{k}.bin"));
        std::fs::write(&path, &data).unwrap();
        files.push(path.to_string_lossy().into_owned());
    }
    let url = svc.url(0, "/echo");
    let chain: Vec<String> = files
        .iter()
        .map(|f| format!("--data-binary @{f} -H 'Content-Type: application/octet-stream' {url}"))
        .collect();
    let (ok, got) = client_sh(
        &c,
        &format!(
            "curl -sS --max-time 120 {} | sha256sum",
            chain.join(" --next ")
        ),
    );
    assert!(ok);
    assert_eq!(got.split_whitespace().next().unwrap(), hex(&all.finalize()));

    // 50 concurrent connections, 4 MiB each.
    let script = format!(
        "for i in $(seq 50); do curl -sS -o /dev/null --max-time 120 -w '%{{http_code}} %{{size_download}}\\n' {} & done; wait",
        deploy.url(0, &format!("/bytes/{}", 4 * MIB))
    );
    let (_, out) = client_sh(&c, &script);
    let good = out
        .lines()
        .filter(|l| *l == format!("200 {}", 4 * MIB))
        .count();
    assert_eq!(good, 50, "{out}");
}

#[test]
fn e2e_port_forward_reports_errors_and_keeps_serving() {
    let Some(mut c) = cluster("e2e_port_forward_reports_errors_and_keeps_serving") else {
        return;
    };
    let _backends = setup(&c);

    // Unknown targets and unreachable pods fail at start.
    let err = swctl_fails(&c, &["svc/nope", ":80"]);
    assert!(
        err.contains("Error from server (NotFound): services \"nope\" not found"),
        "{err}"
    );
    let err = swctl_fails(&c, &["deploy/nope", ":80"]);
    assert!(err.contains("deployments \"nope\" not found"), "{err}");

    // Remote refused: that connection fails, the other pair serves.
    let f = Forward::start(&c, &["pod/web-1", ":9999", ":8080"]);
    assert!(get(&c, &f.url(0, "/")).is_err());
    f.wait_log("connection refused");
    assert_eq!(get(&c, &f.url(1, "/")).unwrap(), "web-1");

    // No ready pod, then a ready one again.
    let svc = Forward::start(&c, &["svc/web", ":80"]);
    assert_eq!(get(&c, &svc.url(0, "/")).unwrap(), "web-1");
    c.apply(&format!("{}{}", pod(&c, 1, false), pod(&c, 2, false)))
        .unwrap();
    assert!(get(&c, &svc.url(0, "/")).is_err());
    svc.wait_log("service \"web\" has no ready pods");
    let err = swctl_fails(&c, &["deploy/web", ":8080"]);
    assert!(
        err.contains("deployment \"web\" has no ready pods"),
        "{err}"
    );
    c.apply(&pod(&c, 2, true)).unwrap();
    assert_eq!(get(&c, &svc.url(0, "/")).unwrap(), "web-2");

    // The node's agent disconnects, then comes back.
    let p2 = Forward::start(&c, &["pod/web-2", ":8080"]);
    c.stop_agent(2);
    eventually("node-2's tunnel to drop", || {
        get(&c, &p2.url(0, "/")).is_err()
    });
    p2.wait_log("the agent of node \"node-2\" (running pod \"web-2\") is not connected");
    assert_eq!(get(&c, &f.url(1, "/")).unwrap(), "web-1");
    c.start_agent(2).unwrap();
    eventually("node-2's tunnel to return", || {
        get(&c, &p2.url(0, "/")).is_ok_and(|n| n == "web-2")
    });
}

/// A download far longer than the test, at 2 MB/s, by curl in the client
/// namespace; its log ends with `curl exit CODE`. Returns once some bytes
/// have arrived.
fn slow_download(c: &Cluster, f: &Forward, name: &str) -> ChildGuard {
    let out = c.lab.log_dir().join(format!("{name}.bin"));
    let script = format!(
        "curl -sS --limit-rate 2M -o {} {}; echo \"curl exit $?\"",
        out.display(),
        f.url(0, &format!("/bytes/{}", 1024 * MIB))
    );
    let curl = c
        .lab
        .spawn(&c.lab.client().ns, &["sh", "-c", &script])
        .unwrap();
    eventually("the download to start", || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() >= 256 * 1024)
    });
    curl
}

/// Waits for `what` (a lab child) to exit; returns its exit code.
fn exit_code(what: &ChildGuard, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = what.exit_status() {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "still running after {within:?}:\n{}",
            what.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What kubectl does: when the pod goes (deleted, or its node's agent
/// gone), every forwarded connection is reset (curl sees a reset, not the
/// clean end that would pass a cut download off as complete) and swctl
/// fails with `error: lost connection to pod`.
#[test]
fn e2e_port_forward_ends_when_the_pod_or_its_agent_goes() {
    let Some(mut c) = cluster("e2e_port_forward_ends_when_the_pod_or_its_agent_goes") else {
        return;
    };
    let _backends = setup(&c);

    let f = Forward::start(&c, &["pod/web-1", ":8080"]);
    // The pod's own clean close still ends cleanly, with all the data.
    let (ok, out) = client_sh(
        &c,
        &format!(
            "curl -sS -o /dev/null -w '%{{http_code}} %{{size_download}}' {}",
            f.url(0, &format!("/bytes/{}", 4 * MIB))
        ),
    );
    assert!(ok, "{out}");
    assert_eq!(out, format!("200 {}", 4 * MIB));

    // The pod is deleted mid-download.
    let curl = slow_download(&c, &f, "pod-deleted");
    c.swctl_ok(&["delete", "pod", "web-1"]).unwrap();
    let deleted = Instant::now();
    let code = exit_code(&f.guard, Duration::from_secs(5));
    eprintln!(
        "pod deleted: swctl exited {code:?} after {:?}",
        deleted.elapsed()
    );
    assert_eq!(code, Some(1), "{}", f.guard.log());
    assert!(
        f.guard.log().ends_with("error: lost connection to pod\n"),
        "{}",
        f.guard.log()
    );
    assert!(f
        .guard
        .log()
        .contains("error forwarding port 8080 to pod \"web-1\": the pod was deleted\n"));
    curl.wait_for_log("curl exit", Duration::from_secs(10))
        .unwrap();
    let log = curl.log();
    assert!(log.contains("curl exit 56\n"), "{log}");
    assert!(log.contains("Connection reset by peer"), "{log}");

    // The node's agent goes away mid-download.
    let f = Forward::start(&c, &["pod/web-2", ":8080"]);
    let curl = slow_download(&c, &f, "agent-gone");
    let stopped = Instant::now();
    c.stop_agent(2);
    let code = exit_code(&f.guard, Duration::from_secs(5));
    eprintln!(
        "agent gone: swctl exited {code:?} after {:?}",
        stopped.elapsed()
    );
    assert_eq!(code, Some(1), "{}", f.guard.log());
    assert!(
        f.guard.log().ends_with("error: lost connection to pod\n"),
        "{}",
        f.guard.log()
    );
    assert!(f.guard.log().contains(
        "error forwarding port 8080 to pod \"web-2\": lost the tunnel to the agent of node \"node-2\"\n"
    ));
    curl.wait_for_log("curl exit", Duration::from_secs(10))
        .unwrap();
    let log = curl.log();
    assert!(log.contains("curl exit 56\n"), "{log}");
    assert!(log.contains("Connection reset by peer"), "{log}");
}
