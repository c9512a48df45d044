//! Persistence behind a small trait, so the registry never sees sled and a
//! distributed backend (etcd) can be added for HA.
//!
//! The model is etcd's: one global revision bumped by every write, each write
//! one atomic [`Batch`] (objects, allocation claims and the revision-log
//! entries together), and a bounded revision log that watches resume from.

mod sled_store;

use std::path::PathBuf;

use switchyard_api::resources::Kind;

use crate::allocator::AllocKey;
pub use sled_store::SledStore;

/// An object's identity inside its kind: `namespace/name`, or `name` for
/// cluster-scoped kinds.
pub type ObjectKey = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change as the revision log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoggedEvent {
    pub revision: u64,
    pub event_type: EventType,
    pub kind: String,
    /// The object after the change (before it, for deletions), as JSON.
    pub object: String,
}

/// Everything one write changes, applied atomically or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub revision: u64,
    pub puts: Vec<(Kind, ObjectKey, String)>,
    pub deletes: Vec<(Kind, ObjectKey)>,
    pub claims: Vec<(AllocKey, ObjectKey)>,
    pub releases: Vec<AllocKey>,
    pub events: Vec<LoggedEvent>,
}

/// What the store holds at start-up.
/// Objects themselves are handed to a visitor one at a time instead (see
/// [`Store::load`]).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub revision: u64,
    pub allocations: Vec<(AllocKey, ObjectKey)>,
}

/// Receives each stored object (kind, key, JSON) at start-up.
pub type Visitor<'a> = dyn FnMut(Kind, ObjectKey, &str) -> Result<()> + 'a;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("corrupt record in {tree}: {detail}")]
    Corrupt { tree: String, detail: String },
    #[error("too old resource version: {requested} (oldest retained is {oldest})")]
    Compacted { requested: u64, oldest: u64 },
    /// The store is readable but ends before the last revision committed
    /// to it: a truncated or corrupted file that sled read up to the damage.
    #[error(
        "the store {} is damaged: it ends at revision {found}, but revision {committed} was committed (a truncated or corrupted file); refusing to serve a partial state: restore the data directory from a backup, or delete {} to accept the store as it is and lose the writes after revision {found}",
        .file.display(), .marker.display()
    )]
    Damaged {
        file: PathBuf,
        marker: PathBuf,
        found: u64,
        committed: u64,
    },
    #[error("the store {} cannot be read: {source}; restore the data directory from a backup", .file.display())]
    Unreadable {
        file: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub trait Store: Send + Sync + 'static {
    /// Hands every stored object to `visit`, one at a time, so start-up
    /// never holds all raw records next to the decoded objects (at 100,000
    /// Pods that copy alone is tens of MiB, and freeing it afterwards leaves
    /// the heap fragmented); an error from `visit` stops the load.
    fn load(&self, visit: &mut Visitor<'_>) -> Result<Loaded>;

    /// Applies the batch atomically and durably.
    fn commit(&self, batch: &Batch) -> Result<()>;

    /// Why the last write failed, until a write goes through again.
    fn failing(&self) -> Option<String>;

    /// Every logged event with a revision greater than `after`, oldest first;
    /// `Compacted` when events after `after` were already dropped.
    fn events_after(&self, after: u64) -> Result<Vec<LoggedEvent>>;

    /// Drops log entries older than `keep_from`, keeping the log bounded.
    fn compact(&self, keep_from: u64) -> Result<()>;
}
