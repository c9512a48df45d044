//! Cutting open connections short when their pod is deleted.
//!
//! A Switchyard pod is a record, not a process: deleting it stops nothing,
//! so a connection to it would stream on, and end cleanly when the server
//! finally closed, making a download cut short look complete. As with a
//! Kubernetes pod, whose network goes with it, the broker cuts every open
//! connection to a deleted pod (its node's agent going away is noticed by
//! the broker itself, when the agent's session ends).

use std::sync::{Arc, Weak};

use switchyard_api::resources::{Kind, Object};
use tokio::sync::broadcast::{self, error::RecvError};

use super::broker::{Broker, PodRef};
use crate::registry::{Event, Registry};
use crate::store::EventType;

/// Follows the registry's commits for as long as it exists, cutting the
/// connections to every pod deleted. Behind the feed, it checks every open
/// connection's pod against the registry instead.
pub async fn follow_pods(
    mut events: broadcast::Receiver<Arc<Vec<Event>>>,
    registry: Weak<Registry>,
    broker: Arc<Broker>,
) {
    loop {
        let gone = match events.recv().await {
            Ok(batch) => deleted_pods(&batch),
            Err(RecvError::Lagged(_)) => {
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                broker
                    .open_pods()
                    .into_iter()
                    .filter(|p| !exists(&registry, p))
                    .collect()
            }
            Err(RecvError::Closed) => return,
        };
        for pod in gone {
            let n = broker.cut_pod(&pod);
            if n > 0 {
                tracing::info!(ns = %pod.namespace, pod = %pod.name, connections = n,
                    "pod deleted: connections cut");
            }
        }
    }
}

/// The pods a batch of commits deleted.
pub fn deleted_pods(batch: &[Event]) -> Vec<PodRef> {
    batch
        .iter()
        .filter(|e| e.event_type == EventType::Deleted)
        .filter_map(|e| match &*e.object {
            Object::Pod(p) => Some(PodRef {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
            }),
            _ => None,
        })
        .collect()
}

/// Whether `pod` itself (not merely one with its name) still exists.
pub fn exists(registry: &Registry, pod: &PodRef) -> bool {
    match registry.get(Kind::Pod, &pod.namespace, &pod.name) {
        Ok(Object::Pod(p)) => p.metadata.uid.unwrap_or_default() == pod.uid,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::{ObjectMeta, Pod};

    fn pod(name: &str, uid: &str) -> Object {
        Object::Pod(Pod {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn event(event_type: EventType, object: Object) -> Event {
        Event {
            revision: 7,
            event_type,
            object: Arc::new(object),
        }
    }

    #[test]
    fn only_deleted_pods_are_cut() {
        let batch = vec![
            event(EventType::Modified, pod("ready-flapped", "u1")),
            event(EventType::Deleted, pod("gone", "u2")),
            event(EventType::Added, pod("new", "u3")),
            event(EventType::Deleted, Object::Service(Box::default())),
        ];
        assert_eq!(
            deleted_pods(&batch),
            vec![PodRef {
                namespace: "default".into(),
                name: "gone".into(),
                uid: "u2".into(),
            }]
        );
    }
}
