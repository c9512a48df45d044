//! Persistence behind a small trait, so the registry never sees sled or
//! etcd.
//!
//! The model is etcd's: one global revision, assigned by the store when a
//! write commits; each write one atomic [`Batch`] (objects and allocation
//! claims together) guarded by preconditions on what it read (the mod
//! revision of each object it changes, the absence of each allocation it
//! claims), so several writers stay correct; and a watch from a revision that
//! is the one source of change for every replica's in-memory state.

pub mod coordination;
mod etcd;
mod key;
mod sled_store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use switchyard_api::resources::{Kind, Object};

use crate::allocator::AllocKey;
pub use etcd::{EtcdCall, EtcdConfig, EtcdStore};
pub use key::{key_of, object_key};
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

impl EventType {
    /// What a put is to a watcher: every store and the registry's state
    /// call an object written over an existing one Modified, a new one
    /// Added, through this one rule.
    pub fn of_put(existed: bool) -> EventType {
        if existed {
            EventType::Modified
        } else {
            EventType::Added
        }
    }
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

/// An object a write puts, with the mod revision it was read at (0: the
/// write expects it absent). The store stamps its resourceVersion.
#[derive(Debug, Clone, PartialEq)]
pub struct Put {
    pub object: Object,
    pub expect: u64,
}

/// An object a write deletes, as it was read, and at which mod revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub object: Object,
    pub expect: u64,
}

/// Everything one write changes, applied atomically or not at all, and only
/// while every precondition holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub puts: Vec<Put>,
    pub deletes: Vec<Delete>,
    /// Claimed allocations must be free (or released by this same batch).
    pub claims: Vec<(AllocKey, ObjectKey)>,
    pub releases: Vec<AllocKey>,
    /// A write only the leader may make: it holds only while this lease
    /// holds the leader key (a store with one writer ignores it).
    pub fence: Option<i64>,
}

impl Batch {
    /// Every object the batch puts or deletes, with the mod revision it
    /// expects the object at.
    pub fn guarded(&self) -> impl Iterator<Item = (&Object, u64)> {
        let puts = self.puts.iter().map(|p| (&p.object, p.expect));
        puts.chain(self.deletes.iter().map(|d| (&d.object, d.expect)))
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.deletes.is_empty()
            && self.claims.is_empty()
            && self.releases.is_empty()
    }
}

/// One committed write as a watch delivers it: objects carry the revision
/// as their resourceVersion.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    pub revision: u64,
    pub puts: Vec<Arc<Object>>,
    pub deletes: Vec<(Kind, ObjectKey)>,
    pub claims: Vec<(AllocKey, ObjectKey)>,
    pub releases: Vec<AllocKey>,
}

/// What the store holds at start-up.
/// Objects themselves are handed to a visitor one at a time instead (see
/// [`Store::load`]).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub revision: u64,
    pub allocations: Vec<(AllocKey, ObjectKey)>,
}

/// Receives each stored object (kind, key, JSON, mod revision) at start-up;
/// a mod revision of 0 means the JSON carries its resourceVersion itself.
pub type Visitor<'a> = dyn FnMut(Kind, ObjectKey, &str, u64) -> Result<()> + Send + 'a;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("corrupt record in {tree}: {detail}")]
    Corrupt { tree: String, detail: String },
    /// A precondition failed: another write changed what this one read. The
    /// registry waits until its state reaches `seen` and prepares again.
    #[error("conflict: another write changed an object or allocation this one read (store at revision {seen})")]
    Conflict { seen: u64 },
    #[error("too old resource version: {requested} (oldest retained is {oldest})")]
    Compacted { requested: u64, oldest: u64 },
    /// etcd, or the way to it, is unavailable (no leader, a member
    /// stopping, a connection refused): tried again within the request
    /// timeout before it is reported.
    #[error("storage: etcd: {message}")]
    Unavailable { call: EtcdCall, message: String },
    /// A call got no answer in time: a cluster without a quorum never
    /// answers a write, and the caller must hear so.
    #[error(
        "storage: etcd: {call} got no answer within {}s (is a quorum of its members up?){}",
        .within.as_secs(), .call.unanswered_note()
    )]
    NoAnswer { call: EtcdCall, within: Duration },
    /// The lease a call named is gone (it expired, or was revoked).
    #[error("storage: etcd: {message}")]
    LeaseNotFound { call: EtcdCall, message: String },
    /// Any other refusal, by etcd's gRPC code; the message is etcd's.
    #[error("storage: etcd: {message}")]
    Refused {
        call: EtcdCall,
        code: tonic::Code,
        message: String,
    },
    /// A history read could not show that it holds every event of the
    /// window in time: etcd was slow to send them (or the store's events
    /// end early). Like `Compacted`, the watcher lists again; a part of the
    /// history handed on as all of it would lose the rest for good.
    #[error(
        "storage: etcd: the changes after revision {after} could not be read through revision {until} within {}s (only through revision {reached}); list again and resume",
        .within.as_secs()
    )]
    HistoryIncomplete {
        after: u64,
        until: u64,
        reached: u64,
        within: Duration,
    },
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

/// A watch's deliveries, oldest first; an error ends it.
pub type Watch = BoxStream<'static, Result<Committed>>;

/// The store's half of every call is IO (a disk flush, a round trip to
/// etcd), so the trait is async; sled's blocking calls run on the blocking
/// pool inside it.
pub trait Store: Send + Sync + 'static {
    /// Hands every stored object to `visit`, one at a time, so start-up
    /// never holds all raw records next to the decoded objects (at 100,000
    /// Pods that copy alone is tens of MiB, and freeing it afterwards leaves
    /// the heap fragmented); an error from `visit` stops the load.
    fn load<'a>(&'a self, visit: &'a mut Visitor<'_>) -> BoxFuture<'a, Result<Loaded>>;

    /// Applies the batch atomically and durably if its preconditions hold,
    /// returning the revision the store gave it; `Conflict` when one failed.
    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<u64>>;

    /// Every write committed after revision `after`, in revision order.
    fn watch(&self, after: u64) -> BoxFuture<'_, Result<Watch>>;

    /// Why the last write failed, until a write goes through again.
    fn failing(&self) -> Option<String>;

    /// Every logged event with a revision in `(after, until]`, oldest
    /// first; `Compacted` when events after `after` were already dropped,
    /// `HistoryIncomplete` when they could not all be read in time. Never
    /// a part of them as if it were all.
    fn events_after(&self, after: u64, until: u64) -> BoxFuture<'_, Result<Vec<LoggedEvent>>>;

    /// Drops history older than `keep_from`, keeping the log bounded.
    fn compact(&self, keep_from: u64) -> BoxFuture<'_, Result<()>>;

    /// Leases and leadership, for a store several control planes share;
    /// `None` for one only this process writes.
    fn coordination(self: Arc<Self>) -> Option<Arc<dyn coordination::Coordination>> {
        None
    }
}
