//! Encode once: each version's delta is encoded one time, into the parts
//! of a push, and every agent stream that needs it sends the same bytes
//! (see [`super::wire`]). With a thousand agents a change is encoded once,
//! not a thousand times; what differs per agent (its nonce, its probe list)
//! is a few bytes appended per message.
//!
//! Only the newest version's encodings are kept: agents behind it get a
//! delta to it, never to an older one. Within that version there is one
//! entry per starting version seen (in practice one or two: the agents
//! that were current, and new agents getting the full snapshot).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use prost::Message;
use switchyard_api::v1::Push;

use super::cache::{Delta, ProbesChanged, SnapshotCache};
use super::parts;
use super::wire;

/// A version's delta from one starting version, encoded.
#[derive(Debug)]
pub struct EncodedDelta {
    pub version: u64,
    /// Every part's shared bytes, in order; never empty.
    pub parts: Vec<Bytes>,
    pub probes: ProbesChanged,
}

/// The encodings of the newest version, by starting version.
#[derive(Debug, Default)]
pub struct Encodings {
    newest: Mutex<Newest>,
}

#[derive(Debug, Default)]
struct Newest {
    version: u64,
    by_start: HashMap<Option<u64>, Arc<EncodedDelta>>,
}

impl Encodings {
    /// What an agent holding `from` needs, encoded; `None` when it is
    /// current. The first stream to ask encodes; the others wait for it and
    /// share the result.
    pub fn catchup(&self, cache: &SnapshotCache, from: Option<u64>) -> Option<Arc<EncodedDelta>> {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let current = cache.version();
        if from == Some(current) {
            return None;
        }
        if newest.version == current {
            if let Some(hit) = newest.by_start.get(&from) {
                return Some(hit.clone());
            }
        }
        let delta = cache.delta(from)?;
        let encoded = Arc::new(encode(cache, delta));
        // A newer version may have been cut meanwhile: such a delta is
        // sent, not kept.
        if encoded.version == current {
            if newest.version != current {
                *newest = Newest {
                    version: current,
                    by_start: HashMap::new(),
                };
            }
            newest.by_start.insert(from, encoded.clone());
        }
        Some(encoded)
    }
}

/// Splits a delta into parts of at most [`parts::PART_BYTES`] of Services
/// and encodes each. The first part carries `full` and `removed`.
fn encode(cache: &SnapshotCache, d: Delta) -> EncodedDelta {
    let ranges = parts::ranges(
        d.services.iter().map(|s| s.encoded_len()),
        parts::PART_BYTES,
    );
    let last = ranges.len() - 1;
    let committed = cache
        .started_at(d.version)
        .map_or(0, |at| unix_micros(SystemTime::now() - at.elapsed()));
    let mut removed = Some(d.removed);
    let parts = ranges
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            wire::shared(&Push {
                version: d.version,
                full: d.full && i == 0,
                services: d.services[range].iter().map(|s| (**s).clone()).collect(),
                removed: removed.take().unwrap_or_default(),
                cluster: Some(cache.cluster().clone()),
                more: i < last,
                committed_unix_micros: committed,
                ..Default::default()
            })
        })
        .collect();
    EncodedDelta {
        version: d.version,
        parts,
        probes: d.probes,
    }
}

fn unix_micros(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prost::Message;
    use switchyard_api::resources::{Kind, Object};
    use switchyard_api::v1::ClusterConfig;

    use super::*;
    use crate::metrics::Metrics;
    use crate::registry::{Registry, RegistryConfig, Sharing};
    use crate::store::SledStore;

    async fn registry(dir: &std::path::Path) -> Arc<Registry> {
        let cfg = RegistryConfig {
            service_cidrs: "10.96.0.0/12".parse().unwrap(),
            node_port_range: 30000..=32767,
            lb_pool: None,
            log_retention: 10_000,
        };
        let store = Arc::new(SledStore::open(dir).unwrap());
        Registry::open(store, cfg, Metrics::new(), Sharing::Alone)
            .await
            .unwrap()
    }

    fn service(name: &str) -> Object {
        let svc = serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
        });
        Object::from_value(Kind::Service, svc).unwrap()
    }

    async fn cut(cache: &SnapshotCache, version: u64) {
        let mut versions = cache.subscribe();
        tokio::time::timeout(Duration::from_secs(5), versions.wait_for(|v| *v >= version))
            .await
            .unwrap()
            .unwrap();
    }

    fn version(obj: &Object) -> u64 {
        obj.meta()
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn decode(delta: &EncodedDelta) -> Vec<Push> {
        delta
            .parts
            .iter()
            .map(|p| Push::decode(p.as_ref()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn agents_at_one_version_share_one_encoding_of_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path()).await;
        let cache =
            SnapshotCache::start(registry.clone(), ClusterConfig::default(), Metrics::new()).await;
        let encodings = Encodings::default();
        registry.apply(service("a"), false).await.unwrap();
        let first = registry.apply(service("b"), false).await.unwrap();
        let v1 = version(&first.0);
        cut(&cache, v1).await;

        let full = encodings.catchup(&cache, None).unwrap();
        let again = encodings.catchup(&cache, None).unwrap();
        assert!(Arc::ptr_eq(&full, &again), "a second new agent re-encoded");
        let pushes = decode(&full);
        assert_eq!(pushes.len(), 1);
        assert!(pushes[0].full);
        let names: Vec<&str> = pushes[0].services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(encodings.catchup(&cache, Some(v1)).is_none());

        let second = registry.apply(service("c"), false).await.unwrap();
        let v2 = version(&second.0);
        cut(&cache, v2).await;
        let delta = encodings.catchup(&cache, Some(v1)).unwrap();
        assert!(Arc::ptr_eq(
            &delta,
            &encodings.catchup(&cache, Some(v1)).unwrap()
        ));
        let pushes = decode(&delta);
        assert_eq!(pushes.len(), 1);
        assert!(!pushes[0].full);
        assert_eq!(pushes[0].version, v2);
        let names: Vec<&str> = pushes[0].services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["c"]);
        assert!(!delta.probes.includes("node-1"));
    }
}
