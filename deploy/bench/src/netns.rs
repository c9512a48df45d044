//! Throwaway network namespaces for nftables measurements. The root
//! namespace's nftables is never touched: every nft command of the suite
//! runs inside a namespace created here (or by the lab), deleted on drop.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace deleted (with everything in it) when dropped.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new(purpose: &str) -> anyhow::Result<Netns> {
        let name = format!(
            "sybench-{}-{purpose}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name])?;
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace; fails with its stderr.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run(args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}
