//! Node identity end to end on the namespace lab, with real TLS: joins
//! refused with their reason, a node posing as another, revocation of a
//! node whose host keeps serving, and certificate renewal under traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::process::Output;
use std::time::{Duration, Instant};

use e2e::*;
use switchyard_lab::cluster::Cluster;

/// Runs `switchyard-agent` once in node 2's namespace (its own table and
/// state directory, so the node's real agent is untouched) and returns
/// how it ended; refused agents end at once, the timeout is a backstop.
fn agent_once(c: &Cluster, state: &str, node: &str, extra: &[&str]) -> Output {
    let state_dir = c.lab.log_dir().join(state);
    let agent = c.bin("switchyard-agent");
    let mut args = vec![
        "timeout",
        "30",
        agent.as_str(),
        "--control-plane",
        "",
        "--node-name",
        node,
        "--node-ip",
        "172.18.0.12",
        "--table",
        "probe",
        "--dns-listen",
        "127.0.0.1:5399",
        "--state-dir",
        state_dir.to_str().unwrap(),
    ];
    let server = c.server();
    args[4] = &server;
    args.extend_from_slice(extra);
    c.lab.exec(&c.lab.node(2).ns, &args).unwrap()
}

/// The token and pin of `swctl create token ARGS`.
fn token(c: &Cluster, args: &[&str]) -> (String, String) {
    c.create_token(args).unwrap()
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

fn join<'a>(token: &'a str, pin: &'a str) -> [&'a str; 4] {
    ["--join-token", token, "--ca-cert-hash", pin]
}

#[test]
fn joins_are_refused_with_their_reason_and_a_node_cannot_pose_as_another() {
    let Some(c) = cluster(
        "joins_are_refused_with_their_reason_and_a_node_cannot_pose_as_another",
        &[],
    ) else {
        return;
    };
    let (t, pin) = token(&c, &["--node", "node-5"]);
    let out = agent_once(&c, "s1", "node-6", &join(&t, &pin));
    assert_eq!(
        (out.status.code(), last_line(&out)),
        (
            Some(1),
            "error: join refused: token is for node node-5".to_string()
        )
    );
    let out = agent_once(&c, "s1", "node-5", &join("abcdef.0123456789abcdef", &pin));
    assert_eq!(last_line(&out), "error: join refused: unknown token");
    let (short, _) = token(&c, &["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let out = agent_once(&c, "s1", "node-5", &join(&short, &pin));
    assert_eq!(last_line(&out), "error: join refused: token expired");
    let zeros = format!("sha256:{}", "0".repeat(64));
    let out = agent_once(&c, "s1", "node-5", &join(&t, &zeros));
    assert_eq!(
        last_line(&out),
        format!("error: the control plane's CA ({pin}) does not match --ca-cert-hash {zeros}")
    );

    // A single-use token joins once; its second use is refused.
    let (once, _) = token(&c, &[]);
    let first = c
        .lab
        .spawn(
            &c.lab.node(2).ns,
            &[
                c.bin("switchyard-agent").as_str(),
                "--control-plane",
                &c.server(),
                "--node-name",
                "node-7",
                "--node-ip",
                "172.18.0.12",
                "--table",
                "probe",
                "--dns-listen",
                "127.0.0.1:5398",
                "--state-dir",
                c.lab.log_dir().join("s7").to_str().unwrap(),
                "--join-token",
                &once,
                "--ca-cert-hash",
                &pin,
            ],
        )
        .unwrap();
    first
        .wait_for_log("joined the cluster", Duration::from_secs(20))
        .unwrap();
    drop(first);
    let out = agent_once(&c, "s8", "node-8", &join(&once, &pin));
    assert_eq!(last_line(&out), "error: join refused: token already used");
    let tokens = c.swctl_ok(&["get", "tokens", "--no-headers"]).unwrap();
    let id = once.split('.').next().unwrap();
    let row: Vec<&str> = tokens
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!((row[1], row[3]), ("<none>", "1"));

    // node-1's certificate, started as node-2: refused, and the agent exits.
    let copy = c.lab.log_dir().join("stolen");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["node.pem", "ca.crt"] {
        std::fs::copy(c.agent_state_dir(1).join(f), copy.join(f)).unwrap();
    }
    let out = agent_once(&c, "stolen", "node-2", &[]);
    assert_eq!(
        (out.status.code(), last_line(&out)),
        (
            Some(1),
            "error: the control plane refused this agent: nodes \"node-2\" is forbidden: User \"node:node-1\" cannot update resource \"nodes/status\" in API group \"\" at the cluster scope: a node may only act as itself".to_string()
        )
    );
}

#[test]
fn a_deleted_node_is_cut_off_within_5s_and_its_host_keeps_serving() {
    let Some(mut c) = cluster(
        "a_deleted_node_is_cut_off_within_5s_and_its_host_keeps_serving",
        &[],
    ) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    assert_eq!(
        c.swctl_ok(&["delete", "node", "node-2"]).unwrap(),
        "node \"node-2\" deleted\n"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c
        .agent_log(2)
        .contains("the control plane refuses this node's certificate")
    {
        assert!(
            Instant::now() < deadline,
            "node-2 was still served 5 s after its deletion:\n{}",
            c.agent_log(2)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        c.agent_log(2).contains("tunnel session ended"),
        "{}",
        c.agent_log(2)
    );
    let nodes = c.swctl_ok(&["get", "nodes", "--no-headers"]).unwrap();
    let names: Vec<&str> = nodes
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, vec!["node-1"]);
    // Its host keeps the last ruleset: the ClusterIP answers from its pods.
    let body = curl(&c, &c.lab.pod(2, 2).ns, &url).unwrap();
    assert!(body.starts_with("web-"), "{body}");
    // A restart with the revoked certificate does not bring it back.
    c.stop_agent(2);
    c.start_agent(2).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let nodes = c.swctl_ok(&["get", "nodes", "--no-headers"]).unwrap();
    assert_eq!(nodes.lines().count(), 1, "{nodes}");
    assert!(curl(&c, &c.lab.pod(2, 2).ns, &url)
        .unwrap()
        .starts_with("web-"));
}

#[test]
fn node_certificates_renew_without_a_failed_request() {
    let Some(c) = cluster(
        "node_certificates_renew_without_a_failed_request",
        &["--node-cert-ttl", "20s"],
    ) else {
        return;
    };
    let (_backends, url) = serve_web(&c, "");
    let requests = request_loop(&c, &c.lab.pod(1, 2).ns, &url, 150, "0.3");
    // Two renewals each: every agent has outlived its first certificate.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in [1, 2] {
        while c
            .agent_log(i)
            .matches("renewed the node certificate")
            .count()
            < 2
        {
            assert!(
                Instant::now() < deadline,
                "agent {i} did not renew twice:\n{}",
                c.agent_log(i)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let log = {
        requests
            .wait_for_log("done", Duration::from_secs(90))
            .unwrap();
        requests.log()
    };
    assert_eq!(log.matches("ok").count(), 150, "failed requests:\n{log}");
    assert!(!log.contains("FAIL"), "{log}");
    // The streams opened with the first certificates still carry changes.
    c.apply(&service_yaml("web-renewed", "")).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let after = format!("http://{}/", cluster_ip(&c, "web-renewed"));
    assert!(curl(&c, &c.lab.pod(2, 2).ns, &after)
        .unwrap()
        .starts_with("web-"));
    for i in [1, 2] {
        let log = c.agent_log(i);
        assert!(
            !log.contains("snapshot stream lost"),
            "agent {i} reconnected:\n{log}"
        );
    }
}
