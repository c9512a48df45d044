//! Deciding whether an e2e test can run here.

use std::io::Write as _;

use crate::cmd;

/// Tools every e2e test needs: `ip` builds the lab, `nft` is what the agent
/// drives, `curl` is the client the tests observe traffic with.
pub const REQUIRED_TOOLS: &[&str] = &["ip", "nft", "curl"];

/// Returns true when the current process can build labs (root, `ip` and `nft`
/// installed). Otherwise: with `SWITCHYARD_E2E=1` (CI) it panics, so a
/// misconfigured CI fails loudly instead of silently skipping; without it, it
/// prints a loud SKIPPED line to stderr and returns false.
///
/// ```no_run
/// #[test]
/// fn my_e2e() {
///     if !switchyard_lab::require_root("my_e2e") {
///         return;
///     }
///     // … build a Lab …
/// }
/// ```
pub fn require_root(test_name: &str) -> bool {
    match missing_requirement() {
        None => true,
        Some(reason) => skip_or_panic(test_name, &reason),
    }
}

/// Whether etcd (Debian's `etcd-server`) is installed, for the HA tests;
/// like [`require_root`], a loud skip, or a failure under `SWITCHYARD_E2E=1`.
pub fn require_etcd(test_name: &str) -> bool {
    cmd::find_tool("etcd").is_some()
        || skip_or_fail(
            test_name,
            "etcd (apt-get install etcd-server)",
            "it is not installed",
        )
}

/// Whether kubectl is installed, for the tests of the Kubernetes API; like
/// [`require_root`], a loud skip, or a failure under `SWITCHYARD_E2E=1`.
pub fn require_kubectl(test_name: &str) -> bool {
    cmd::find_tool("kubectl").is_some()
        || skip_or_fail(test_name, "kubectl (1.32)", "it is not installed")
}

/// Whether the tools that build and check the Debian packages are
/// installed; like [`require_root`], a loud skip, or a failure under
/// `SWITCHYARD_E2E=1`.
pub fn require_packaging(test_name: &str) -> bool {
    match PACKAGING_TOOLS
        .iter()
        .find(|tool| cmd::find_tool(tool).is_none())
    {
        None => true,
        Some(tool) => skip_or_fail(
            test_name,
            "cargo-deb, dpkg-deb and systemd-analyze (cargo install cargo-deb; apt-get install dpkg systemd)",
            &format!("`{tool}` is not installed"),
        ),
    }
}

const PACKAGING_TOOLS: [&str; 3] = ["cargo-deb", "dpkg-deb", "systemd-analyze"];

/// Why labs cannot run here, if they cannot.
pub fn missing_requirement() -> Option<String> {
    if !is_root() {
        return Some("not running as root (uid 0)".to_string());
    }
    REQUIRED_TOOLS
        .iter()
        .find(|tool| cmd::find_tool(tool).is_none())
        .map(|tool| format!("`{tool}` is not installed"))
}

fn skip_or_panic(test_name: &str, reason: &str) -> bool {
    skip_or_fail(
        test_name,
        "root (run as root or set SWITCHYARD_E2E=1 in CI)",
        reason,
    )
}

/// A loud skip of a test that needs `what`, or under `SWITCHYARD_E2E=1` a failure.
fn skip_or_fail(test_name: &str, what: &str, reason: &str) -> bool {
    if std::env::var("SWITCHYARD_E2E").is_ok_and(|v| v == "1") {
        panic!("{test_name} needs {what}: {reason} (SWITCHYARD_E2E=1 demands it runs)");
    }
    // Written to the raw stderr handle: `eprintln!` would be swallowed by the
    // test harness's output capture, and a silent skip looks like a pass.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test_name} needs {what}: {reason}"
    );
    false
}

/// Reads the effective uid from /proc, because the crate forbids the `unsafe`
/// a direct `geteuid()` call would need.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid(&status))
        == Some(0)
}

fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_effective_uid() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Name: x\n"), None);
    }
}
