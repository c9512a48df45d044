//! Keeps the control plane's mirror pods of this node in step with the
//! manifest directory: a pure diff of declared against stored, and the
//! loop that polls, lists and writes through the `Resources` service with
//! this node's certificate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_api::resources::{Kind, Object, Pod, MIRROR_ANNOTATION};
use switchyard_api::v1::resources_client::ResourcesClient;
use switchyard_api::v1::{ApplyRequest, ListRequest, ObjectRef, Resource};
use tonic::Code;

use super::dir::ManifestDir;
use super::manifests::{Host, MirrorPod, PodKey};
use crate::connection::Channels;
use crate::metrics::Metrics;

/// How often the directory is looked at.
pub const POLL: Duration = Duration::from_secs(1);
/// How often the stored mirror pods are listed again (someone may have
/// deleted or edited one), and refused writes tried again.
pub const RESYNC: Duration = Duration::from_secs(60);

/// One write that brings the stored mirror pods to the declared ones.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<'a> {
    /// Create, or update one whose hash differs.
    Apply(&'a MirrorPod),
    Delete(PodKey),
}

/// The writes from `stored` (mirror pods of this node, by their hash) to
/// `declared`. Pure.
pub fn diff<'a>(
    declared: &'a BTreeMap<PodKey, MirrorPod>,
    stored: &BTreeMap<PodKey, String>,
) -> Vec<Change<'a>> {
    let deletes = stored
        .keys()
        .filter(|key| !declared.contains_key(*key))
        .map(|key| Change::Delete(key.clone()));
    let applies = declared
        .values()
        .filter(|pod| stored.get(&pod.key) != Some(&pod.hash))
        .map(Change::Apply);
    deletes.chain(applies).collect()
}

/// The mirror pods of `node` among `pods`, by their hash. Pure.
pub fn stored_mirrors(pods: impl IntoIterator<Item = Pod>, node: &str) -> BTreeMap<PodKey, String> {
    pods.into_iter()
        .filter(|p| p.spec.node_name.as_deref() == Some(node))
        .filter_map(|p| {
            let hash = p.metadata.annotations.get(MIRROR_ANNOTATION)?.clone();
            let key = PodKey {
                namespace: p.metadata.namespace.unwrap_or_default(),
                name: p.metadata.name,
            };
            Some((key, hash))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("{0}")]
    Status(#[from] tonic::Status),
    #[error("the control plane answered with an undecodable object: {0}")]
    Decode(#[from] serde_json::Error),
}

impl WriteError {
    /// A refusal that repeating will not change (until the file or the
    /// stored object does): forbidden, invalid, conflicting.
    fn is_refusal(&self) -> bool {
        match self {
            WriteError::Status(s) => matches!(
                s.code(),
                Code::PermissionDenied
                    | Code::InvalidArgument
                    | Code::AlreadyExists
                    | Code::FailedPrecondition
            ),
            WriteError::Decode(_) => true,
        }
    }
}

/// The loop: polls the directory every [`POLL`], lists this node's mirror
/// pods at start and every [`RESYNC`], and writes what differs, retrying
/// while the control plane is unreachable. Never returns.
#[tracing::instrument(skip_all, fields(dir = %dir.path().display()))]
pub async fn run(mut dir: ManifestDir, host: Host, channels: Channels, metrics: Arc<Metrics>) {
    let mut declared: Option<BTreeMap<PodKey, MirrorPod>> = None;
    // What the control plane holds, as far as this agent knows.
    let mut stored: Option<BTreeMap<PodKey, String>> = None;
    let mut listed = Instant::now();
    // Writes refused at this hash: not tried again until it changes or
    // the next resync.
    let mut refused: BTreeMap<PodKey, Option<String>> = BTreeMap::new();
    let mut dir_failing = false;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match dir.scan(&host) {
            Ok(changed) => {
                if dir_failing {
                    tracing::info!("the pod manifest directory is readable again");
                    dir_failing = false;
                }
                if changed || declared.is_none() {
                    let (pods, conflicts) = dir.desired();
                    for line in conflicts {
                        tracing::warn!("{line}");
                    }
                    metrics
                        .mirror_pods
                        .set(i64::try_from(pods.len()).unwrap_or(i64::MAX));
                    declared = Some(pods);
                }
            }
            Err(e) => {
                if !dir_failing {
                    tracing::warn!(error = %e, "keeping the mirror pods declared so far");
                    dir_failing = true;
                }
            }
        }
        // Nothing is written before the directory was read once: an
        // unreadable one must not delete every mirror pod.
        let Some(declared) = &declared else { continue };
        if stored.is_none() || listed.elapsed() >= RESYNC {
            match list(&channels, &host.node_name).await {
                Ok(now) => {
                    stored = Some(now);
                    listed = Instant::now();
                    refused.clear();
                }
                Err(status) => {
                    tracing::warn!(error = %status.message(), "cannot list this node's mirror pods; will retry");
                    continue;
                }
            }
        }
        let Some(stored) = &mut stored else { continue };
        for change in diff(declared, stored) {
            let (key, hash) = match &change {
                Change::Apply(pod) => (pod.key.clone(), Some(pod.hash.clone())),
                Change::Delete(key) => (key.clone(), None),
            };
            if refused.get(&key) == Some(&hash) {
                continue;
            }
            match write(&channels, &change).await {
                Ok(()) => {
                    refused.remove(&key);
                    match hash {
                        Some(hash) => stored.insert(key, hash),
                        None => stored.remove(&key),
                    };
                }
                Err(e) if e.is_refusal() => {
                    tracing::error!(pod = %key, error = %e, "mirror pod refused; not retried until its manifest changes");
                    refused.insert(key, hash);
                }
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "cannot write mirror pod; will retry");
                    break;
                }
            }
        }
    }
}

/// The mirror pods bound to this node (a node identity lists only the
/// pods bound to it; the filter also holds for an `--insecure` one).
async fn list(channels: &Channels, node: &str) -> Result<BTreeMap<PodKey, String>, tonic::Status> {
    let mut client = ResourcesClient::new(channels.borrow().clone());
    let items = client
        .list(ListRequest {
            kind: Kind::Pod.as_str().to_string(),
            all_namespaces: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .items;
    let pods = items
        .iter()
        .filter_map(|r| match Object::from_json(Kind::Pod, &r.json) {
            Ok(Object::Pod(pod)) => Some(pod),
            _ => None,
        });
    Ok(stored_mirrors(pods, node))
}

async fn write(channels: &Channels, change: &Change<'_>) -> Result<(), WriteError> {
    let mut client = ResourcesClient::new(channels.borrow().clone());
    match change {
        Change::Apply(mirror) => {
            let json = serde_json::to_string(&mirror.pod)?;
            let response = client
                .apply(ApplyRequest {
                    resource: Some(Resource {
                        kind: Kind::Pod.as_str().to_string(),
                        json,
                    }),
                    create_only: false,
                })
                .await?;
            tracing::info!(pod = %mirror.key, hash = %mirror.hash, outcome = ?response.into_inner().outcome(), "mirror pod applied");
            Ok(())
        }
        Change::Delete(key) => {
            let deleted = client
                .delete(ObjectRef {
                    kind: Kind::Pod.as_str().to_string(),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                })
                .await;
            match deleted {
                // Already gone: what was wanted.
                Err(status) if status.code() == Code::NotFound => Ok(()),
                Err(status) => Err(status.into()),
                Ok(_) => {
                    tracing::info!(pod = %key, "mirror pod deleted");
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::mirror::manifests::{self, Host};

    fn host() -> Host {
        Host {
            node_name: "node-1".into(),
            node_ip: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
        }
    }

    fn declared(names: &[(&str, u16)]) -> BTreeMap<PodKey, MirrorPod> {
        names
            .iter()
            .map(|(name, port)| {
                let mut pod = Pod::default();
                pod.metadata.name = name.to_string();
                pod.spec.host_network = true;
                pod.spec.containers.push(Default::default());
                pod.spec.containers[0]
                    .ports
                    .push(switchyard_api::resources::ContainerPort {
                        container_port: i32::from(*port),
                        ..Default::default()
                    });
                let m = manifests::mirror(pod, &host()).unwrap();
                (m.key.clone(), m)
            })
            .collect()
    }

    fn key(name: &str) -> PodKey {
        PodKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn names(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Apply(p) => format!("apply {}", p.key.name),
                Change::Delete(k) => format!("delete {}", k.name),
            })
            .collect()
    }

    #[test]
    fn the_diff_creates_updates_and_deletes_by_hash() {
        let want = declared(&[("a", 80), ("b", 81), ("c", 82)]);
        let mut stored: BTreeMap<PodKey, String> = BTreeMap::new();
        assert_eq!(
            names(&diff(&want, &stored)),
            vec!["apply a-node-1", "apply b-node-1", "apply c-node-1"]
        );
        for pod in want.values() {
            stored.insert(pod.key.clone(), pod.hash.clone());
        }
        assert!(diff(&want, &stored).is_empty(), "in step: nothing to write");
        let changed = declared(&[("a", 80), ("b", 9999)]);
        stored.insert(key("old-node-1"), "x".into());
        assert_eq!(
            names(&diff(&changed, &stored)),
            vec!["delete c-node-1", "delete old-node-1", "apply b-node-1"]
        );
    }

    #[test]
    fn only_this_nodes_mirror_pods_count_as_stored() {
        let mut mine = declared(&[("a", 80)]).into_values().next().unwrap().pod;
        mine.metadata.resource_version = Some("12".into());
        let mut plain = Pod::default();
        plain.metadata.name = "web-1".into();
        plain.spec.node_name = Some("node-1".into());
        let mut other = mine.clone();
        other.metadata.name = "a-node-2".into();
        other.spec.node_name = Some("node-2".into());
        let hash = mine.metadata.annotations[MIRROR_ANNOTATION].clone();
        assert_eq!(
            stored_mirrors([mine, plain, other], "node-1"),
            BTreeMap::from([(key("a-node-1"), hash)])
        );
    }
}
