//! The one way changes enter a registry's state: the store's watch. Each
//! committed write is applied under the state's write lock and its events
//! sent while that lock is held, so a reader that subscribes under the read
//! lock never misses one. A watch that breaks resumes from the state's
//! revision; one the store can no longer resume (history compacted) is
//! replaced by a fresh load, diffed against the state into events.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;

use super::state::{Event, State};
use super::{load_state, Registry};
use crate::store::{EventType, StoreError, Watch};

/// How long the feed waits before watching again after a failure.
const RETRY: Duration = Duration::from_millis(500);

pub(super) async fn follow(registry: Weak<Registry>, mut watch: Watch) {
    loop {
        while let Some(item) = watch.next().await {
            let Some(registry) = registry.upgrade() else {
                return;
            };
            match item {
                Ok(committed) => {
                    registry.take(|state| {
                        let events = state.apply(&committed);
                        registry.foreign.delivered(committed.revision, &events);
                        events
                    });
                    // Whoever wrote it: the leader compacts the shared history.
                    registry.maybe_compact(committed.revision);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the store's watch failed; watching again");
                    break;
                }
            }
        }
        watch = loop {
            tokio::time::sleep(RETRY).await;
            let Some(registry) = registry.upgrade() else {
                return;
            };
            match registry.rewatch().await {
                Ok(watch) => break watch,
                Err(e) => tracing::warn!(error = %e, "cannot watch the store"),
            }
        };
    }
}

impl Registry {
    /// Changes the state under its write lock and tells subscribers.
    fn take(&self, change: impl FnOnce(&mut State) -> Vec<Event>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let events = change(&mut state);
        let revision = state.revision;
        if !events.is_empty() {
            let _ = self.events.send(Arc::new(events));
        }
        self.applied.send_replace(revision);
    }

    /// A watch from where the state is; when the store no longer has that
    /// history, the whole state is read again first.
    async fn rewatch(&self) -> Result<Watch, StoreError> {
        let from = self.read().revision;
        match self.store.watch(from).await {
            Err(StoreError::Compacted { .. }) => {
                let fresh = load_state(self.store.as_ref()).await?;
                let revision = fresh.revision;
                let watch = self.store.watch(revision).await?;
                tracing::info!(revision, "reloaded the state from the store");
                self.take(|state| replace(state, fresh));
                Ok(watch)
            }
            other => other,
        }
    }
}

/// Swaps in a freshly loaded state, returning what changed as events.
fn replace(state: &mut State, fresh: State) -> Vec<Event> {
    let revision = fresh.revision;
    let mut events = Vec::new();
    for (kind, objects) in &state.objects {
        for (key, old) in objects {
            if fresh.get(*kind, key).is_none() {
                events.push(Event {
                    revision,
                    event_type: EventType::Deleted,
                    object: old.clone(),
                });
            }
        }
    }
    for (kind, objects) in &fresh.objects {
        for (key, new) in objects {
            let event_type = match state.get(*kind, key) {
                Some(old) if old == new => continue,
                old => EventType::of_put(old.is_some()),
            };
            events.push(Event {
                revision,
                event_type,
                object: new.clone(),
            });
        }
    }
    *state = fresh;
    events
}
