//! The workspace binaries the benchmarks run as real processes. Under
//! `cargo run` they are rebuilt first (a no-op when current), so the README's
//! single command always measures the code in the tree.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

/// Binaries the suite starts.
const BINARIES: [&str; 3] = [
    "switchyard-control-plane",
    "switchyard-agent",
    "switchyard-lab",
];

/// Builds (when run by cargo) and locates the control plane and agent.
pub fn prepare() -> anyhow::Result<PathBuf> {
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--release", "--quiet"]);
        for b in BINARIES {
            cmd.args(["--bin", b]);
        }
        eprintln!("building {} (release)…", BINARIES.join(", "));
        let status = cmd.status().context("running cargo build")?;
        if !status.success() {
            bail!("cargo build of {BINARIES:?} failed");
        }
    }
    let dir = switchyard_lab::cluster::bin_dir()
        .or_else(|_| sibling_dir())
        .context("locating the switchyard binaries")?;
    for b in BINARIES {
        if !dir.join(b).exists() {
            bail!(
                "{} not found; build it with `cargo build --release --bin {b}`",
                dir.join(b).display()
            );
        }
    }
    Ok(dir)
}

/// The directory of the running executable (target/release).
fn sibling_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(PathBuf::from)
        .context("the running executable has no directory")
}
