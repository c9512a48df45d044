//! Shared helpers of the lab end-to-end tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_lab::cluster::{Cluster, ClusterConfig};
use switchyard_lab::{require_root, ChildGuard, LabConfig};

pub fn cluster(test: &str, cp_args: &[&str]) -> Option<Cluster> {
    cluster_with(test, cp_args, &[])
}

/// [`cluster`] whose agents also get `agent_args`.
pub fn cluster_with(test: &str, cp_args: &[&str], agent_args: &[&str]) -> Option<Cluster> {
    if !require_root(test) {
        return None;
    }
    let owned = |args: &[&str]| args.iter().map(|s| s.to_string()).collect();
    let cfg = ClusterConfig {
        lab: LabConfig {
            nodes: 2,
            pods_per_node: 2,
        },
        control_plane_args: owned(cp_args),
        agent_args: owned(agent_args),
        ..Default::default()
    };
    Some(Cluster::start(cfg).expect("cluster starts"))
}

/// Backends on pods (1,1) and (2,1) labelled app=web on port 8080.
pub fn web_backends(c: &Cluster) -> Vec<ChildGuard> {
    let mut manifests = c.pod_manifest(1, 1, "web-1", "web", 8080);
    manifests.push_str(&c.pod_manifest(2, 1, "web-2", "web", 8080));
    c.apply(&manifests).unwrap();
    vec![
        c.backend(1, 1, "web-1", 8080).unwrap(),
        c.backend(2, 1, "web-2", 8080).unwrap(),
    ]
}

/// The web backends behind Service `web` (its spec plus `extra_spec`),
/// synced on every node; returns the backends and `http://<clusterIP>/`.
pub fn serve_web(c: &Cluster, extra_spec: &str) -> (Vec<ChildGuard>, String) {
    let backends = web_backends(c);
    c.apply(&service_yaml("web", extra_spec)).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    (backends, format!("http://{}/", cluster_ip(c, "web")))
}

pub fn service_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: web\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n{extra_spec}"
    )
}

pub fn json(c: &Cluster, args: &[&str]) -> serde_json::Value {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    serde_json::from_str(&c.swctl_ok(&full).unwrap()).unwrap()
}

pub fn cluster_ip(c: &Cluster, svc: &str) -> String {
    json(c, &["get", "svc", svc])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn node_port(c: &Cluster, svc: &str) -> u64 {
    json(c, &["get", "svc", svc])["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap()
}

/// One HTTP GET with curl from a namespace: the body, trimmed; Err
/// carries curl's exit code.
pub fn curl(c: &Cluster, ns: &str, url: &str) -> Result<String, i32> {
    probe(c, ns, url).map(|(_, body)| body.trim().to_string())
}

/// `(status, body)` of one HTTP GET with curl from a namespace; Err
/// carries curl's exit code.
pub fn probe(c: &Cluster, ns: &str, url: &str) -> Result<(u16, String), i32> {
    let out = c
        .lab
        .exec(
            ns,
            &[
                "curl",
                "-sS",
                "--max-time",
                "2",
                "--connect-timeout",
                "2",
                "-w",
                "\n%{http_code}",
                url,
            ],
        )
        .unwrap();
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.parse().unwrap_or(0), body.to_string()))
}

/// Puts a foreign `ip switchyard` table (a `cluster-ips` set of another
/// type) in node `i`'s way with its agent stopped, then starts the agent:
/// every apply there is refused until the table is deleted.
pub fn block_with_foreign_table(c: &mut Cluster, i: usize) {
    let node = c.lab.node(i).ns.clone();
    c.stop_agent(i);
    for args in [
        &["delete", "table", "ip", "switchyard"][..],
        &["add", "table", "ip", "switchyard"],
        &[
            "add",
            "set",
            "ip",
            "switchyard",
            "cluster-ips",
            "{ type inet_service; }",
        ],
    ] {
        let mut full = vec!["nft"];
        full.extend(args);
        c.lab.exec_ok(&node, &full).unwrap();
    }
    c.start_agent(i).unwrap();
}

/// Backend name → count over `n` requests.
pub fn spread(c: &Cluster, ns: &str, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let body = curl(c, ns, url)
            .unwrap_or_else(|code| panic!("curl {url} from {ns} failed with {code}"));
        let name = body.split_whitespace().next().unwrap().to_string();
        *counts.entry(name).or_default() += 1;
    }
    counts
}

pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    switchyard_lab::eventually(what, timeout, || f().then_some(()));
}

/// Starts a shell loop in `ns` that curls `url` `n` times, printing `ok` or
/// `FAIL <code>` per request; read the guard's log afterwards.
pub fn request_loop(c: &Cluster, ns: &str, url: &str, n: usize, pause: &str) -> ChildGuard {
    let script = format!(
        "for i in $(seq 1 {n}); do curl -s -o /dev/null --max-time 2 {url}; rc=$?; if [ $rc -eq 0 ]; then echo ok; else echo FAIL $rc; fi; sleep {pause}; done; echo done"
    );
    c.lab.spawn(ns, &["sh", "-c", &script]).unwrap()
}

/// [`request_loop`] with the time of each result: `ok <unix secs>` or
/// `FAIL <code> <unix secs>`, one request every `pause` seconds, curl
/// giving each at most 2 s (1 s timed out now and then on a loaded CI
/// machine, with every backend alive).
pub fn timed_request_loop(c: &Cluster, ns: &str, url: &str, n: usize, pause: &str) -> ChildGuard {
    let script = format!(
        "for i in $(seq 1 {n}); do curl -s -o /dev/null --connect-timeout 2 --max-time 2 {url}; rc=$?; if [ $rc -eq 0 ]; then echo ok $(date +%s.%N); else echo FAIL $rc $(date +%s.%N); fi; sleep {pause}; done; echo done"
    );
    c.lab.spawn(ns, &["sh", "-c", &script]).unwrap()
}

/// The times (unix seconds) of the failures a [`timed_request_loop`] logged,
/// and how many requests it made.
pub fn loop_failures(log: &str) -> (Vec<f64>, usize) {
    let mut failures = Vec::new();
    let mut total = 0;
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ok", _] => total += 1,
            ["FAIL", _, at] => {
                total += 1;
                failures.push(at.parse().unwrap());
            }
            _ => {}
        }
    }
    (failures, total)
}

/// Waits for a request loop to finish; its log.
pub fn loop_result(guard: &ChildGuard) -> String {
    guard.wait_for_log("done", Duration::from_secs(90)).unwrap();
    guard.log()
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sends `count` UDP datagrams from a fixed source port; returns the reply
/// lines (`timeout` for a missing one).
pub fn udp(c: &Cluster, ns: &str, to: &str, from_port: u16, count: usize) -> Vec<String> {
    let out = c
        .lab
        .exec(
            ns,
            &[
                c.bin("switchyard-lab").as_str(),
                "udp-send",
                "--to",
                to,
                "--from-port",
                &from_port.to_string(),
                "--count",
                &count.to_string(),
                "--interval-ms",
                "100",
                "--timeout-ms",
                "500",
            ],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}
