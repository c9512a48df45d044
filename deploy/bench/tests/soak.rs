//! The churn soak in small (`switchyard-bench soak`, see docs/benchmarks.md
//! for the full one): endpoint changes against a loaded control plane with
//! hollow agents and 2 real agents on real nftables; the run fails unless
//! every agent ACKs the last change and each real agent, restarted, finds
//! its table equal to a from-scratch compile of the final snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn a_short_churn_soak_ends_with_every_table_as_compiled_and_no_nack() {
    if !switchyard_lab::require_root(
        "a_short_churn_soak_ends_with_every_table_as_compiled_and_no_nack",
    ) {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-bench"))
        .args([
            "soak",
            "--changes",
            "1000",
            "--hollow",
            "5",
            "--services",
            "50",
            "--out",
        ])
        .arg(out_dir.path())
        // Under cargo the suite would rebuild release binaries first; the
        // test measures the ones `cargo test --workspace` just built.
        .env_remove("CARGO")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}\n{stdout}");
    assert!(out.status.success(), "the soak failed:\n{stderr}\n{stdout}");
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.path().join("results.json")).unwrap(),
    )
    .unwrap();
    let rows = results["rows"].as_array().unwrap();
    let nacks = rows.iter().find(|r| r["case"] == "nacks").unwrap();
    assert_eq!(nacks["summary"]["median"], 0.0);
    assert_eq!(
        rows.iter()
            .filter(|r| r["case"].as_str().unwrap().ends_with("-rss-growth"))
            .count(),
        3,
        "control plane and both real agents measured"
    );
    assert!(
        stdout.contains(
            "the restarted real agents found their tables equal to a from-scratch compile"
        ),
        "{stdout}"
    );
    assert_eq!(stderr.matches("churn-soak: tenth").count(), 10, "{stderr}");
}
