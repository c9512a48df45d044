//! The `switchyard-control-plane` binary as an operator runs it: flag
//! validation, startup on a loopback port and a clean stop on SIGTERM.
//!
//! Having integration tests here also makes `cargo test --workspace` build
//! this binary, which the swctl, agent and lab tests start as a process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard-control-plane");

fn stderr_of(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn reversed_node_port_range_is_rejected_with_the_rule() {
    let (code, stderr) = stderr_of(&["--node-port-range", "40000-30000"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(
            "error: invalid value '40000-30000' for '--node-port-range <NODE_PORT_RANGE>': \
             invalid port range 40000-30000: need 1 <= FIRST <= LAST <= 65535"
        ),
        "{stderr}"
    );
}

#[test]
fn malformed_service_cidr_is_rejected() {
    let (code, stderr) = stderr_of(&["--service-cidr", "10.96.0.0/33"]);
    assert_eq!(code, 2);
    assert!(
        stderr
            .starts_with("error: invalid value '10.96.0.0/33' for '--service-cidr <SERVICE_CIDR>'"),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_the_server_and_leaves_the_store_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["--listen", &listen, "--data-dir"])
        .arg(&data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "control plane never listened");
        assert!(child.try_wait().unwrap().is_none(), "control plane exited");
        std::thread::sleep(Duration::from_millis(20));
    }

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "control plane ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(data_dir.join("conf").exists(), "sled store missing");
    assert!(TcpStream::connect(&listen).is_err(), "port still open");
}
