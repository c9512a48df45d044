//! The embedded store: one sled tree per kind, one for allocations, one for
//! the revision log and one for metadata, all written in one transaction.

use std::fs::File;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Db, IVec, Transactional, Tree};
use switchyard_api::resources::Kind;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use super::{
    Batch, Committed, EventType, Loaded, LoggedEvent, ObjectKey, Result, Store, StoreError,
    Visitor, Watch,
};
use crate::allocator::AllocKey;

const ALLOCATIONS: &str = "allocations";
const LOG: &str = "log";
const META: &str = "meta";
const REVISION_KEY: &[u8] = b"revision";
const COMPACTED_KEY: &[u8] = b"compacted";
/// sled's page cache (its default is 1 GiB).
const CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// Start-up reopens the database after reading this many bytes of records.
/// sled keeps every page a scan reads whatever its cache capacity (100,000
/// Pods left ~90 MiB resident next to the decoded objects); closing the
/// database frees them, and reopening costs ~25 ms.
const LOAD_BYTES_PER_OPEN: usize = 16 * 1024 * 1024;
/// How long an open waits for sled to release the lock of a database this
/// process just closed, and how often it tries.
const REOPEN_PATIENCE: Duration = Duration::from_secs(10);
const REOPEN_RETRY: Duration = Duration::from_millis(5);
/// sled's file, named in errors about the store's state.
const DB_FILE: &str = "db";
/// Next to sled's files: the last revision committed, written after each
/// commit is durable. sled recovers a damaged log silently, up to the
/// damage; a store that ends before this revision lost committed writes.
const MARKER_FILE: &str = "committed-revision";

/// Cheap to clone: the async trait methods hand a clone of the inner store
/// to the blocking pool.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<SledInner>,
}

struct SledInner {
    dir: PathBuf,
    /// `None` only while [`Store::load`] reopens the database.
    handles: RwLock<Option<Handles>>,
    load_bytes_per_open: usize,
    /// The last revision this process committed (or loaded).
    committed: AtomicU64,
    /// Set by a failed write, with its error: sled refuses every write
    /// after an IO error, so the next one reopens the database first (a
    /// disk that was full or read-only takes writes again once it is fixed).
    failure: Mutex<Option<String>>,
    marker: Mutex<Option<File>>,
    /// Held while a write picks its revision and commits, so revisions are
    /// given out in commit order and watchers hear them in that order.
    commit_lock: Mutex<()>,
    watchers: Mutex<Vec<mpsc::UnboundedSender<Result<Committed>>>>,
}

/// An open database and its trees: kind trees in `Kind::ALL` order, then
/// allocations, log and meta.
struct Handles {
    db: Db,
    trees: Vec<Tree>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn tree_name(kind: Kind) -> &'static str {
    kind.plural()
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl Handles {
    /// Opens the database, waiting out the lock of a handle to the same
    /// directory that this process dropped a moment ago: sled releases its
    /// file lock only when that handle's last background write ends.
    fn open_patiently(dir: &Path) -> Result<Self> {
        let deadline = Instant::now() + REOPEN_PATIENCE;
        loop {
            match Self::open(dir) {
                Err(e) if is_lock_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(REOPEN_RETRY)
                }
                opened => return opened,
            }
        }
    }

    fn open(dir: &Path) -> Result<Self> {
        // sled caches up to 1 GiB of pages by default; the registry already
        // holds every object in memory, so a small page cache is enough and
        // keeps the control plane's footprint in proportion to its data.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(backend)?;
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| tree_name(*k)).collect();
        names.extend([ALLOCATIONS, LOG, META]);
        let trees = names
            .into_iter()
            .map(|n| db.open_tree(n).map_err(backend))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { db, trees })
    }

    fn kind_tree(&self, kind: Kind) -> &Tree {
        &self.trees[kind_index(kind)]
    }

    fn allocations(&self) -> &Tree {
        &self.trees[Kind::ALL.len()]
    }

    fn log(&self) -> &Tree {
        &self.trees[Kind::ALL.len() + 1]
    }

    fn meta(&self) -> &Tree {
        &self.trees[Kind::ALL.len() + 2]
    }

    fn read_u64(&self, key: &[u8]) -> Result<u64> {
        Ok(self
            .meta()
            .get(key)
            .map_err(backend)?
            .map(|v| decode_u64(&v))
            .unwrap_or(0))
    }

    /// Visits records of `kind` after `after` until `budget` bytes are
    /// read; returns the bytes read and, when the budget ran out first, the
    /// last key visited.
    fn visit_some(
        &self,
        kind: Kind,
        after: Option<IVec>,
        budget: usize,
        visit: &mut Visitor<'_>,
    ) -> Result<(usize, Option<IVec>)> {
        let tree = tree_name(kind);
        let records = match after {
            Some(key) => self
                .kind_tree(kind)
                .range((Bound::Excluded(key), Bound::Unbounded)),
            None => self.kind_tree(kind).iter(),
        };
        let mut read = 0;
        for item in records {
            let (k, v) = item.map_err(backend)?;
            let json = std::str::from_utf8(&v).map_err(|e| StoreError::Corrupt {
                tree: tree.to_string(),
                detail: e.to_string(),
            })?;
            visit(kind, text(tree, &k)?, json, 0)?;
            read += k.len() + v.len();
            if read >= budget {
                return Ok((read, Some(k)));
            }
        }
        Ok((read, None))
    }

    fn load_allocations(&self) -> Result<Vec<(AllocKey, ObjectKey)>> {
        let mut allocations = Vec::new();
        for item in self.allocations().iter() {
            let (k, v) = item.map_err(backend)?;
            let key = text(ALLOCATIONS, &k)?
                .parse()
                .map_err(|detail| StoreError::Corrupt {
                    tree: ALLOCATIONS.to_string(),
                    detail,
                })?;
            allocations.push((key, text(ALLOCATIONS, &v)?));
        }
        Ok(allocations)
    }
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, LOAD_BYTES_PER_OPEN)
    }

    fn open_with(dir: &Path, load_bytes_per_open: usize) -> Result<Self> {
        let inner = SledInner {
            dir: dir.to_path_buf(),
            handles: RwLock::new(Some(Handles::open_patiently(dir)?)),
            load_bytes_per_open,
            committed: AtomicU64::new(0),
            failure: Mutex::new(None),
            marker: Mutex::new(None),
            commit_lock: Mutex::new(()),
            watchers: Mutex::new(Vec::new()),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Runs a blocking sled call on the blocking pool.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SledInner) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T>> {
        let inner = self.inner.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&inner))
                .await
                .map_err(backend)?
        }
        .boxed()
    }

    /// Loads without an async runtime (offline checks of a data directory).
    pub fn load_blocking(&self, visit: &mut Visitor<'_>) -> Result<Loaded> {
        self.inner.load(visit)
    }
}

impl SledInner {
    fn marker_path(&self) -> PathBuf {
        self.dir.join(MARKER_FILE)
    }

    /// The revision the marker holds; none when it is missing or
    /// unreadable (a crash while it was first written).
    fn read_marker(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.marker_path()).ok()?;
        text.trim().parse().ok()
    }

    /// Records `revision` as committed: a fixed-width overwrite in place,
    /// so the file is never empty or half old.
    fn write_marker(&self, revision: u64) -> Result<()> {
        let mut marker = self.marker.lock().unwrap_or_else(|e| e.into_inner());
        if marker.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.marker_path())
                .map_err(backend)?;
            *marker = Some(file);
        }
        let text = format!("{revision:020}\n");
        match marker.as_ref() {
            Some(file) => file.write_all_at(text.as_bytes(), 0).map_err(backend),
            None => Ok(()),
        }
    }

    /// Fails when the store on disk ends before the last committed revision.
    fn check_complete(&self, found: u64) -> Result<()> {
        match self.read_marker() {
            Some(committed) if committed > found => Err(StoreError::Damaged {
                file: self.dir.join(DB_FILE),
                marker: self.marker_path(),
                found,
                committed,
            }),
            _ => Ok(()),
        }
    }

    /// After a failed write: a fresh handle, which takes writes again once
    /// the disk does, if the disk holds exactly what this process committed.
    fn recover(&self) -> Result<()> {
        {
            // The old handle's flush fails like the write did: drop it.
            let mut guard = self.handles.write().unwrap_or_else(|e| e.into_inner());
            guard.take();
            *guard = Some(Handles::open_patiently(&self.dir)?);
        }
        let found = self.with(|h| h.read_u64(REVISION_KEY))?;
        let committed = self.committed.load(Ordering::SeqCst);
        if found != committed {
            return Err(StoreError::Backend(format!(
                "after a failed write the store on disk is at revision {found}, this control plane at {committed}: restart it"
            )));
        }
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!(revision = found, "the store takes writes again");
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&Handles) -> Result<T>) -> Result<T> {
        let guard = self.handles.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(handles) => f(handles),
            None => Err(StoreError::Backend("the database failed to reopen".into())),
        }
    }

    /// Closes the database and opens it again, dropping every page read so
    /// far.
    fn reopen(&self) -> Result<()> {
        let mut guard = self.handles.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = guard.take() {
            old.db.flush().map_err(backend)?;
        }
        *guard = Some(Handles::open_patiently(&self.dir)?);
        Ok(())
    }
}

/// sled 0.34 reports a held lock only as an `Other` IO error with this text.
fn is_lock_busy(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(detail) if detail.contains("could not acquire lock"))
}

fn decode_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

/// Log keys sort by revision, then by position inside the write.
fn log_key(revision: u64, index: usize) -> Vec<u8> {
    let mut key = revision.to_be_bytes().to_vec();
    key.extend_from_slice(&(index as u32).to_be_bytes());
    key
}

fn text(tree: &str, bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| StoreError::Corrupt {
        tree: tree.to_string(),
        detail: e.to_string(),
    })
}

/// What a batch writes once its revision is known: objects stamped with it,
/// and the log entries for them.
struct Stamped {
    revision: u64,
    puts: Vec<(Kind, ObjectKey, String)>,
    deletes: Vec<(Kind, ObjectKey)>,
    events: Vec<LoggedEvent>,
    committed: Committed,
}

fn stamp(batch: Batch, revision: u64) -> Stamped {
    let rv = revision.to_string();
    let mut out = Stamped {
        revision,
        puts: Vec::new(),
        deletes: Vec::new(),
        events: Vec::new(),
        committed: Committed {
            revision,
            claims: batch.claims,
            releases: batch.releases,
            ..Default::default()
        },
    };
    for put in batch.puts {
        let mut object = put.object;
        object.meta_mut().resource_version = Some(rv.clone());
        let (kind, key) = (object.kind(), super::key_of(&object));
        let json = object.to_json();
        // The batch's precondition says whether it existed (0: absent).
        let event_type = EventType::of_put(put.expect != 0);
        out.events
            .push(logged(revision, event_type, kind, json.clone()));
        out.puts.push((kind, key, json));
        out.committed.puts.push(Arc::new(object));
    }
    for delete in batch.deletes {
        let (kind, key) = (delete.object.kind(), super::key_of(&delete.object));
        out.events.push(logged(
            revision,
            EventType::Deleted,
            kind,
            delete.object.to_json(),
        ));
        out.deletes.push((kind, key.clone()));
        out.committed.deletes.push((kind, key));
    }
    out
}

fn logged(revision: u64, event_type: EventType, kind: Kind, object: String) -> LoggedEvent {
    LoggedEvent {
        revision,
        event_type,
        kind: kind.as_str().to_string(),
        object,
    }
}

/// The resourceVersion inside a stored object's JSON: sled's mod revision.
fn stored_revision(json: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Stored {
        metadata: StoredMeta,
    }
    #[derive(serde::Deserialize)]
    struct StoredMeta {
        #[serde(rename = "resourceVersion")]
        resource_version: Option<String>,
    }
    serde_json::from_slice::<Stored>(json)
        .ok()
        .and_then(|s| s.metadata.resource_version?.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Fails the transaction when an object or allocation is not as the write
/// read it.
fn check_preconditions(
    trees: &[TransactionalTree],
    batch: &Batch,
    seen: u64,
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    let conflict = || ConflictableTransactionError::Abort(StoreError::Conflict { seen });
    for (object, expect) in batch.guarded() {
        let key = super::key_of(object);
        let found = trees[kind_index(object.kind())].get(key.as_bytes())?;
        let actual = found.map(|v| stored_revision(&v)).unwrap_or(0);
        if actual != expect {
            return Err(conflict());
        }
    }
    let n = Kind::ALL.len();
    for (key, _) in &batch.claims {
        let released = batch.releases.contains(key);
        if !released && trees[n].get(key.to_string().as_bytes())?.is_some() {
            return Err(conflict());
        }
    }
    Ok(())
}

fn write_batch(
    trees: &[TransactionalTree],
    batch: &Batch,
    stamped: &Stamped,
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    check_preconditions(trees, batch, stamped.revision - 1)?;
    let n = Kind::ALL.len();
    for (kind, key, json) in &stamped.puts {
        trees[kind_index(*kind)].insert(key.as_bytes(), json.as_bytes())?;
    }
    for (kind, key) in &stamped.deletes {
        trees[kind_index(*kind)].remove(key.as_bytes())?;
    }
    for key in &batch.releases {
        trees[n].remove(key.to_string().as_bytes())?;
    }
    for (key, owner) in &batch.claims {
        trees[n].insert(key.to_string().as_bytes(), owner.as_bytes())?;
    }
    for (i, event) in stamped.events.iter().enumerate() {
        let json = serde_json::to_vec(event)
            .map_err(|e| ConflictableTransactionError::Abort(backend(e)))?;
        trees[n + 1].insert(log_key(stamped.revision, i), json)?;
    }
    trees[n + 2].insert(REVISION_KEY, &stamped.revision.to_be_bytes())?;
    Ok(())
}

impl SledInner {
    fn load_checked(&self, visit: &mut Visitor<'_>) -> Result<Loaded> {
        // Before anything is served from it.
        self.check_complete(self.with(|h| h.read_u64(REVISION_KEY))?)?;
        let budget = self.load_bytes_per_open;
        // Bytes read since the database was last opened: always < budget.
        let mut pending = 0;
        for kind in Kind::ALL {
            let mut after = None;
            loop {
                let left = budget - pending;
                let (read, more) = self.with(|h| h.visit_some(kind, after.take(), left, visit))?;
                pending += read;
                let Some(last) = more else { break };
                self.reopen()?;
                pending = 0;
                after = Some(last);
            }
        }
        // A small store leaves too little behind to be worth a reopen.
        if pending >= budget / 16 {
            self.reopen()?;
        }
        let loaded = self.with(|h| {
            Ok(Loaded {
                revision: h.read_u64(REVISION_KEY)?,
                allocations: h.load_allocations()?,
            })
        })?;
        self.write_marker(loaded.revision)?;
        self.committed.store(loaded.revision, Ordering::SeqCst);
        Ok(loaded)
    }
}

impl SledInner {
    fn load(&self, visit: &mut Visitor<'_>) -> Result<Loaded> {
        self.load_checked(visit).map_err(|e| match e {
            StoreError::Corrupt { .. } | StoreError::Backend(_) => StoreError::Unreadable {
                file: self.dir.join(DB_FILE),
                source: Box::new(e),
            },
            other => other,
        })
    }

    fn commit(&self, batch: Batch) -> Result<u64> {
        let _order = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.failing().is_some() {
            self.recover()?;
        }
        let revision = self.committed.load(Ordering::SeqCst) + 1;
        let stamped = stamp(batch.clone(), revision);
        let committed = self.with(|h| {
            h.trees
                .as_slice()
                .transaction(|trees| write_batch(trees, &batch, &stamped))
                .map_err(|e| match e {
                    TransactionError::Abort(e) => e,
                    TransactionError::Storage(e) => backend(e),
                })?;
            h.db.flush().map_err(backend)?;
            Ok(())
        });
        match committed {
            Ok(()) => {
                self.committed.store(revision, Ordering::SeqCst);
                // The write is durable already; a marker that lags only
                // weakens the damage check, so its failure is not the write's.
                if let Err(e) = self.write_marker(revision) {
                    tracing::warn!(error = %e, "cannot record the committed revision");
                }
                self.tell_watchers(stamped.committed);
                Ok(revision)
            }
            Err(StoreError::Backend(detail)) => {
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(detail.clone());
                Err(StoreError::Backend(detail))
            }
            Err(e) => Err(e),
        }
    }

    fn tell_watchers(&self, committed: Committed) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        watchers.retain(|w| w.send(Ok(committed.clone())).is_ok());
    }

    /// Only this process writes a sled store, so a watch starts where the
    /// caller's load ended; an older start means the caller must load again.
    fn watch(&self, after: u64) -> Result<Watch> {
        let _order = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.committed.load(Ordering::SeqCst);
        if after != current {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: current,
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        Ok(tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed())
    }

    fn failing(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn events_after(&self, after: u64, until: u64) -> Result<Vec<LoggedEvent>> {
        self.with(|h| {
            let compacted = h.read_u64(COMPACTED_KEY)?;
            if after < compacted {
                return Err(StoreError::Compacted {
                    requested: after,
                    oldest: compacted,
                });
            }
            h.log()
                .range(log_key(after + 1, 0)..log_key(until.saturating_add(1), 0))
                .map(|item| {
                    let (_, v) = item.map_err(backend)?;
                    serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                        tree: LOG.to_string(),
                        detail: e.to_string(),
                    })
                })
                .collect()
        })
    }

    fn compact(&self, keep_from: u64) -> Result<()> {
        self.with(|h| {
            let doomed: Vec<IVec> = h
                .log()
                .range(..log_key(keep_from, 0))
                .keys()
                .collect::<std::result::Result<_, _>>()
                .map_err(backend)?;
            let mut batch = sled::Batch::default();
            for key in doomed {
                batch.remove(key);
            }
            // Record the horizon first: a reader must never see a log with a
            // hole that the horizon does not announce.
            let horizon = keep_from.saturating_sub(1);
            h.meta()
                .insert(COMPACTED_KEY, &horizon.to_be_bytes())
                .map_err(backend)?;
            h.log().apply_batch(batch).map_err(backend)?;
            Ok(())
        })
    }
}

impl Store for SledStore {
    fn load<'a>(&'a self, visit: &'a mut Visitor<'_>) -> BoxFuture<'a, Result<Loaded>> {
        // The visitor borrows the caller's state, so this load cannot move to
        // the blocking pool; it runs once, before anything is served.
        async move { self.inner.load(visit) }.boxed()
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<u64>> {
        self.blocking(move |s| s.commit(batch))
    }

    fn watch(&self, after: u64) -> BoxFuture<'_, Result<Watch>> {
        let watch = self.inner.watch(after);
        async move { watch }.boxed()
    }

    fn failing(&self) -> Option<String> {
        self.inner.failing()
    }

    fn events_after(&self, after: u64, until: u64) -> BoxFuture<'_, Result<Vec<LoggedEvent>>> {
        self.blocking(move |s| s.events_after(after, until))
    }

    fn compact(&self, keep_from: u64) -> BoxFuture<'_, Result<()>> {
        self.blocking(move |s| s.compact(keep_from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::AllocKey;
    use crate::store::{Delete, Put};
    use switchyard_api::resources::{Object, ObjectMeta, Pod, Service};

    /// Everything `load` visits, in order, and what it returns.
    fn load_all(store: &SledStore) -> (Loaded, Vec<(Kind, ObjectKey, String)>) {
        let mut seen = Vec::new();
        let loaded = store
            .load_blocking(&mut |kind, key, json, _| {
                seen.push((kind, key, json.to_string()));
                Ok(())
            })
            .unwrap();
        (loaded, seen)
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            ..Default::default()
        }
    }

    fn service(name: &str) -> Object {
        Object::Service(Box::new(Service {
            metadata: meta(name),
            ..Default::default()
        }))
    }

    fn put(object: Object, expect: u64) -> Put {
        Put { object, expect }
    }

    fn commit(store: &SledStore, batch: Batch) -> Result<u64> {
        store.inner.commit(batch)
    }

    fn json_at(object: &Object, revision: u64) -> String {
        let mut object = object.clone();
        object.meta_mut().resource_version = Some(revision.to_string());
        object.to_json()
    }

    #[test]
    fn the_store_assigns_revisions_and_batches_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = service("a");
        {
            let store = SledStore::open(dir.path()).unwrap();
            load_all(&store);
            let revision = commit(
                &store,
                Batch {
                    puts: vec![put(a.clone(), 0)],
                    claims: vec![(AllocKey::NodePort(30080), "default/a".into())],
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(revision, 1);
        }
        let store = SledStore::open(dir.path()).unwrap();
        let (loaded, objects) = load_all(&store);
        assert_eq!(loaded.revision, 1);
        assert_eq!(
            objects,
            vec![(Kind::Service, "default/a".to_string(), json_at(&a, 1))]
        );
        assert_eq!(
            loaded.allocations,
            vec![(AllocKey::NodePort(30080), "default/a".to_string())]
        );
        let history = store.inner.events_after(0, 1).unwrap();
        assert_eq!(
            history,
            vec![LoggedEvent {
                revision: 1,
                event_type: EventType::Added,
                kind: "Service".into(),
                object: json_at(&a, 1),
            }]
        );
        assert!(store.inner.events_after(1, 1).unwrap().is_empty());
    }

    /// A write that read an object at an older revision, or claims an
    /// allocation someone holds, changes nothing.
    #[test]
    fn a_write_whose_preconditions_fail_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        load_all(&store);
        let key = AllocKey::NodePort(30001);
        let first = Batch {
            puts: vec![put(service("a"), 0)],
            claims: vec![(key, "default/a".into())],
            ..Default::default()
        };
        assert_eq!(commit(&store, first.clone()).unwrap(), 1);
        let again = commit(&store, first).unwrap_err();
        assert!(matches!(again, StoreError::Conflict { seen: 1 }), "{again}");
        let stale_update = Batch {
            puts: vec![put(service("a"), 7)],
            ..Default::default()
        };
        assert!(matches!(
            commit(&store, stale_update),
            Err(StoreError::Conflict { seen: 1 })
        ));
        let taken = Batch {
            puts: vec![put(service("b"), 0)],
            claims: vec![(key, "default/b".into())],
            ..Default::default()
        };
        assert!(matches!(
            commit(&store, taken),
            Err(StoreError::Conflict { seen: 1 })
        ));
        let (loaded, objects) = load_all(&store);
        assert_eq!(loaded.revision, 1);
        assert_eq!(objects.len(), 1);
        let update = Batch {
            puts: vec![put(service("a"), 1)],
            ..Default::default()
        };
        assert_eq!(commit(&store, update).unwrap(), 2);
    }

    #[test]
    fn a_watch_hears_every_commit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        load_all(&store);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut watch = rt.block_on(store.watch(0)).unwrap();
        commit_services(&store, 1..=2);
        let first = rt.block_on(watch.next()).unwrap().unwrap();
        let second = rt.block_on(watch.next()).unwrap().unwrap();
        assert_eq!((first.revision, second.revision), (1, 2));
        assert_eq!(second.puts[0].meta().resource_version.as_deref(), Some("2"));
        assert!(matches!(
            rt.block_on(store.watch(1)),
            Err(StoreError::Compacted {
                requested: 1,
                oldest: 2
            })
        ));
    }

    fn commit_services(store: &SledStore, revisions: std::ops::RangeInclusive<u64>) {
        for revision in revisions {
            let got = commit(
                store,
                Batch {
                    puts: vec![put(service(&format!("s{revision}")), 0)],
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(got, revision);
        }
    }

    #[test]
    fn every_commit_is_recorded_next_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        load_all(&store);
        commit_services(&store, 1..=3);
        let marker = std::fs::read_to_string(dir.path().join(MARKER_FILE)).unwrap();
        assert_eq!(marker, "00000000000000000003\n");
    }

    /// sled reads a damaged log up to the damage and says nothing: a
    /// store that ends before the recorded revision is refused, by name.
    #[test]
    fn a_store_that_lost_committed_writes_is_refused_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            load_all(&store);
            commit_services(&store, 1..=3);
        }
        // As if revisions 4 and 5 had been committed and then lost.
        std::fs::write(dir.path().join(MARKER_FILE), "00000000000000000005\n").unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let err = store.load_blocking(&mut |_, _, _, _| Ok(())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the store {db} is damaged: it ends at revision 3, but revision 5 was committed (a truncated or corrupted file); refusing to serve a partial state: restore the data directory from a backup, or delete {marker} to accept the store as it is and lose the writes after revision 3",
                db = dir.path().join("db").display(),
                marker = dir.path().join(MARKER_FILE).display(),
            )
        );
        // Deleting the marker accepts the store as sled recovered it.
        drop(store);
        std::fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(load_all(&store).0.revision, 3);
    }

    #[test]
    fn a_truncated_store_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            load_all(&store);
            commit_services(&store, 1..=200);
        }
        let db = dir.path().join("db");
        let len = std::fs::metadata(&db).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let refused = SledStore::open(dir.path())
            .and_then(|store| store.load_blocking(&mut |_, _, _, _| Ok(())).map(|_| ()))
            .unwrap_err();
        assert!(
            matches!(refused, StoreError::Damaged { ref file, .. } | StoreError::Unreadable { ref file, .. } if *file == db)
                || refused.to_string().contains(&db.display().to_string()),
            "{refused}"
        );
    }

    #[test]
    fn open_waits_for_a_handle_that_is_being_closed() {
        let dir = tempfile::tempdir().unwrap();
        let first = SledStore::open(dir.path()).unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        let second = SledStore::open(dir.path()).unwrap();
        closer.join().unwrap();
        let (loaded, _) = load_all(&second);
        assert_eq!(loaded.revision, 0);
    }

    fn pod(i: usize) -> Object {
        Object::Pod(Pod {
            metadata: meta(&format!("p{i:02}")),
            ..Default::default()
        })
    }

    #[test]
    fn load_reopens_between_chunks_and_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let objects: Vec<Object> = (0..50).map(pod).chain([service("s")]).collect();
        {
            let store = SledStore::open(dir.path()).unwrap();
            load_all(&store);
            let batch = Batch {
                puts: objects.iter().map(|o| put(o.clone(), 0)).collect(),
                ..Default::default()
            };
            assert_eq!(commit(&store, batch).unwrap(), 1);
        }
        // A 40-byte budget: a reopen after every record.
        let store = SledStore::open_with(dir.path(), 40).unwrap();
        let (loaded, seen) = load_all(&store);
        assert_eq!(loaded.revision, 1);
        let mut expected: Vec<(Kind, ObjectKey, String)> = objects
            .iter()
            .map(|o| {
                let key = crate::store::key_of(o);
                (o.kind(), key, json_at(o, 1))
            })
            .collect();
        expected.sort_by_key(|(kind, key, _)| (kind_index(*kind), key.clone()));
        assert_eq!(seen, expected);
        commit_services(&store, 2..=2);
        assert_eq!(store.inner.events_after(1, 2).unwrap().len(), 1);
    }

    #[test]
    fn compaction_bounds_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        load_all(&store);
        commit_services(&store, 1..=5);
        store.inner.compact(4).unwrap();
        assert_eq!(store.inner.events_after(3, 5).unwrap().len(), 2);
        assert_eq!(store.inner.events_after(3, 4).unwrap().len(), 1);
        assert!(matches!(
            store.inner.events_after(2, 5),
            Err(StoreError::Compacted {
                requested: 2,
                oldest: 3
            })
        ));
    }

    #[test]
    fn releases_remove_claims() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        load_all(&store);
        let key = AllocKey::NodePort(30001);
        let a = service("a");
        commit(
            &store,
            Batch {
                puts: vec![put(a.clone(), 0)],
                claims: vec![(key, "default/a".into())],
                ..Default::default()
            },
        )
        .unwrap();
        let mut stored = a;
        stored.meta_mut().resource_version = Some("1".into());
        commit(
            &store,
            Batch {
                releases: vec![key],
                deletes: vec![Delete {
                    object: stored,
                    expect: 1,
                }],
                ..Default::default()
            },
        )
        .unwrap();
        let (loaded, objects) = load_all(&store);
        assert!(loaded.allocations.is_empty());
        assert!(objects.is_empty());
    }
}
