//! Error type of the lab library.

use std::path::PathBuf;

/// Everything that can go wrong while building, using or tearing down a lab.
///
/// Command failures carry the full command line and stderr, because the usual
/// reader is a developer staring at a failed e2e test.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The requested topology does not fit the address plan.
    #[error("invalid lab config: {0}")]
    Config(String),
    /// A required tool (`ip`, `nft`, …) is not installed.
    #[error("required tool `{0}` not found in PATH, /usr/sbin or /sbin")]
    MissingTool(String),
    /// A command could not be started at all.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran but exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// A namespace name that this lab did not create was passed to a lab method;
    /// refused so a typo can never touch the host's own network.
    #[error("namespace `{0}` does not belong to this lab")]
    ForeignNamespace(String),
    /// Every candidate prefix was already taken by leftovers or other labs.
    #[error("no free lab prefix found (last tried `{0}`); run `switchyard-lab down --prefix sy`?")]
    NoFreePrefix(String),
    /// Filesystem trouble with the lab's log directory.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A background process did not reach the expected state in time.
    #[error("{0}")]
    Timeout(String),
    /// The Switchyard cluster on the lab misbehaved (missing binaries, a
    /// failing swctl call).
    #[error("{0}")]
    Cluster(String),
}

/// Result alias used across the crate.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
