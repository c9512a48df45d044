//! Workloads declared by the host (`--pod-manifests DIR`): every Pod in the
//! directory's `.yaml`/`.yml`/`.json` files becomes a mirror pod of this
//! node, as kubelet mirrors static pods — named `<name>-<node>`, bound to
//! this node, annotated `kubernetes.io/config.mirror: <hash>` — created,
//! updated and deleted as the files change, and reconciled at start.
//!
//! `manifests` turns a file's text into mirror pods (pure); `dir` reads the
//! directory, re-parsing only changed files; `sync` diffs declared against
//! stored (pure) and writes the difference with this node's identity,
//! which may write only its own mirror pods.

mod dir;
mod manifests;
mod sync;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use dir::{DirError, ManifestDir};
pub use manifests::{
    desired, hash, mirror, parse, Declared, Host, ManifestError, MirrorPod, PodKey,
};
pub use sync::{diff, stored_mirrors, Change, POLL, RESYNC};

use crate::connection::Channels;
use crate::metrics::Metrics;

/// Keeps this node's mirror pods in step with `dir`, forever.
pub async fn run(
    dir: PathBuf,
    node_name: String,
    node_ip: IpAddr,
    channels: Channels,
    metrics: Arc<Metrics>,
) {
    let host = Host { node_name, node_ip };
    sync::run(ManifestDir::new(dir), host, channels, metrics).await
}
