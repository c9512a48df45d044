//! Shared helpers of the root-only integration tests: throwaway network
//! namespaces that never touch the root namespace, and the skip policy.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use switchyard_agent::nft::{layout, Live, NftCommand};

/// A network namespace deleted on drop, also when the test panics.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `None` (after printing why) when the test cannot run here.
    pub fn create(test: &str) -> Option<Self> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("sytest-{}-{n}", std::process::id());
        if !is_root() {
            return skip(test, "needs root (creates a network namespace)");
        }
        match sh(&["ip", "netns", "add", &name]) {
            Ok(_) => Some(Self { name }),
            Err(e) => skip(test, &format!("needs `ip netns add`: {e}")),
        }
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, cmd: &str) -> Result<String, String> {
        let mut argv = vec!["ip", "netns", "exec", &self.name];
        argv.extend(cmd.split_whitespace());
        sh(&argv)
    }

    pub fn nft(&self, args: &str) -> Result<String, String> {
        self.exec(&format!("nft {args}"))
    }

    pub fn runner(&self) -> NftCommand {
        NftCommand::in_netns(&self.name)
    }

    /// The live table as the agent reads it back.
    pub fn live(&self, table: &str) -> Live {
        let json = self.nft(&format!("-j list table ip {table}")).unwrap();
        layout::read_live(json.as_bytes(), table).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// Prints a loud skip notice, or panics when `SWITCHYARD_E2E=1` (CI).
pub fn skip<T>(test: &str, why: &str) -> Option<T> {
    if std::env::var("SWITCHYARD_E2E").as_deref() == Ok("1") {
        panic!("{test}: {why}, and SWITCHYARD_E2E=1 forbids skipping");
    }
    eprintln!("\n!!!!! SKIPPED: {test} {why} !!!!!\n");
    None
}

fn is_root() -> bool {
    sh(&["id", "-u"]).is_ok_and(|uid| uid.trim() == "0")
}

pub fn sh(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(format!(
            "{}: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}
