//! Storage faults, on a real control plane whose data directory is a small
//! tmpfs in a mount namespace of its own (root): a full disk refuses writes
//! with a `storage: …` error while reads and watches go on, and writes
//! succeed again once there is space. (A read-only remount cannot be shown
//! this way: Linux refuses it while the store's file is open for writing.)
//! A damaged store file keeps the control plane from starting, by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::ControlPlane;

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - port: 80\n"
    )
}

/// `swctl apply` of one Service: `Ok(stdout)` or `Err(stderr)`.
fn apply(cp: &ControlPlane, name: &str) -> Result<String, String> {
    let out = cp.swctl_stdin(&["apply", "-f", "-"], Some(&service(name)));
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    match out.status.success() {
        true => Ok(text(out.stdout)),
        false => Err(text(out.stderr)),
    }
}

fn names(cp: &ControlPlane) -> Vec<String> {
    cp.ok(&["get", "svc", "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Fills the tmpfs with a ballast file until it is full.
fn fill(cp: &ControlPlane) -> std::path::PathBuf {
    let ballast = cp.visible_data_dir().join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => continue,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    // Byte by byte into the last partial block.
    while file.write_all(&[0]).is_ok() {}
    ballast
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_watches_and_recovers() {
    if !switchyard_lab::require_root(
        "a_full_disk_refuses_writes_keeps_reads_and_watches_and_recovers",
    ) {
        return;
    }
    let health = support::free_loopback_address();
    let cp = ControlPlane::start_on_tmpfs("8m", &["--metrics-listen", &health]);
    apply(&cp, "before").unwrap();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_swctl"))
        .args(["get", "svc", "-w"])
        .env("SWITCHYARD_SERVER", &cp.server)
        .env("SWITCHYARD_CONFIG", cp.config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let ballast = fill(&cp);
    let full = apply(&cp, "while-full").unwrap_err();
    assert!(
        full.starts_with(
            "Error from server (InternalError): error when creating \"STDIN\": storage: "
        ) && full.contains("No space left on device"),
        "{full}"
    );
    assert_eq!(
        names(&cp),
        ["service/before"],
        "reads go on; the refused write left nothing"
    );
    let unready = support::http_get(&health, "/readyz");
    assert!(
        unready.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
            && unready.contains("\r\n\r\nstore: the last write failed: ")
            && unready.contains("No space left on device"),
        "{unready}"
    );
    assert!(support::http_get(&health, "/livez").ends_with("\r\n\r\nok"));
    std::fs::remove_file(&ballast).unwrap();
    assert_eq!(
        apply(&cp, "after-full").unwrap(),
        "service/after-full created\n"
    );
    assert!(support::http_get(&health, "/readyz").ends_with("\r\n\r\nok"));

    std::thread::sleep(Duration::from_millis(300));
    watch.kill().unwrap();
    let seen = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
    // The watch stayed open throughout and saw exactly the writes that were taken.
    let rows: Vec<String> = support::rows_without_age(&seen)
        .into_iter()
        .skip(1)
        .map(|row| row[0].clone())
        .collect();
    assert_eq!(rows, ["before", "after-full"], "{seen}");
}

#[test]
fn a_damaged_store_keeps_the_control_plane_from_starting() {
    let mut cp = ControlPlane::start(&[]);
    for i in 0..50 {
        apply(&cp, &format!("s{i}")).unwrap();
    }
    assert!(cp.stop().success());
    let db = cp.data_dir.join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = Command::new(support::binary("switchyard-control-plane"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&cp.data_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&db.display().to_string()),
        "the error names the file:\n{stderr}"
    );
    assert!(
        stderr.contains("restore the data directory from a backup"),
        "{stderr}"
    );
}
