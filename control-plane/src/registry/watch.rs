//! Starting a watch without a gap: the backlog (history from the store, or
//! the current objects for a fresh watch) is read up to the state's revision
//! while the live feed is subscribed under the state's read lock, which the
//! feed's sends wait for.

use std::sync::Arc;

use switchyard_api::resources::{Kind, Object};
use tokio::sync::broadcast;

use super::state::Event;
use super::{Registry, RegistryError, Result};
use crate::store::EventType;

pub struct WatchStart {
    /// Events to deliver first, oldest first.
    pub backlog: Vec<Event>,
    /// Every later commit; events at or below `revision` must be skipped.
    pub live: broadcast::Receiver<Arc<Vec<Event>>>,
    /// The revision the backlog reaches.
    pub revision: u64,
}

impl Registry {
    /// Watches `kind` from after revision `after`; `after == 0` starts with
    /// an ADDED event for every current object, as Kubernetes does.
    pub async fn watch(&self, kind: Kind, after: u64) -> Result<WatchStart> {
        let (live, revision, current) = {
            let state = self.read();
            let current: Vec<Event> = if after == 0 {
                state
                    .in_namespace(kind, None)
                    .map(|o| Event {
                        revision: state.revision,
                        event_type: EventType::Added,
                        object: o.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            (self.events.subscribe(), state.revision, current)
        };
        let backlog = if after == 0 {
            current
        } else {
            self.history(kind, after, revision).await?
        };
        Ok(WatchStart {
            backlog,
            live,
            revision,
        })
    }

    async fn history(&self, kind: Kind, after: u64, until: u64) -> Result<Vec<Event>> {
        let logged = self.store.events_after(after, until).await?;
        logged
            .into_iter()
            .filter(|e| e.kind == kind.as_str())
            .map(|e| {
                let object = Object::from_json(kind, &e.object)
                    .map_err(|err| RegistryError::Internal(format!("corrupt log entry: {err}")))?;
                Ok(Event {
                    revision: e.revision,
                    event_type: e.event_type,
                    object: Arc::new(object),
                })
            })
            .collect()
    }
}
