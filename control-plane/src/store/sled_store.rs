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

use super::{Batch, Loaded, LoggedEvent, ObjectKey, Result, Store, StoreError, Visitor};
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

pub struct SledStore {
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
            visit(kind, text(tree, &k)?, json)?;
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
        Ok(Self {
            dir: dir.to_path_buf(),
            handles: RwLock::new(Some(Handles::open_patiently(dir)?)),
            load_bytes_per_open,
            committed: AtomicU64::new(0),
            failure: Mutex::new(None),
            marker: Mutex::new(None),
        })
    }

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

fn write_batch(
    trees: &[TransactionalTree],
    batch: &Batch,
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    let n = Kind::ALL.len();
    for (kind, key, json) in &batch.puts {
        trees[kind_index(*kind)].insert(key.as_bytes(), json.as_bytes())?;
    }
    for (kind, key) in &batch.deletes {
        trees[kind_index(*kind)].remove(key.as_bytes())?;
    }
    for key in &batch.releases {
        trees[n].remove(key.to_string().as_bytes())?;
    }
    for (key, owner) in &batch.claims {
        trees[n].insert(key.to_string().as_bytes(), owner.as_bytes())?;
    }
    for (i, event) in batch.events.iter().enumerate() {
        let json = serde_json::to_vec(event)
            .map_err(|e| ConflictableTransactionError::Abort(backend(e)))?;
        trees[n + 1].insert(log_key(batch.revision, i), json)?;
    }
    trees[n + 2].insert(REVISION_KEY, &batch.revision.to_be_bytes())?;
    Ok(())
}

impl SledStore {
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

impl Store for SledStore {
    fn load(&self, visit: &mut Visitor<'_>) -> Result<Loaded> {
        self.load_checked(visit).map_err(|e| match e {
            StoreError::Corrupt { .. } | StoreError::Backend(_) => StoreError::Unreadable {
                file: self.dir.join(DB_FILE),
                source: Box::new(e),
            },
            other => other,
        })
    }

    fn commit(&self, batch: &Batch) -> Result<()> {
        if self.failing().is_some() {
            self.recover()?;
        }
        let committed = self.with(|h| {
            h.trees
                .as_slice()
                .transaction(|trees| write_batch(trees, batch))
                .map_err(|e| match e {
                    TransactionError::Abort(e) => e,
                    TransactionError::Storage(e) => backend(e),
                })?;
            h.db.flush().map_err(backend)?;
            Ok(())
        });
        match committed {
            Ok(()) => {
                self.committed.store(batch.revision, Ordering::SeqCst);
                // The write is durable already; a marker that lags only
                // weakens the damage check, so its failure is not the write's.
                if let Err(e) = self.write_marker(batch.revision) {
                    tracing::warn!(error = %e, "cannot record the committed revision");
                }
                Ok(())
            }
            Err(StoreError::Backend(detail)) => {
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(detail.clone());
                Err(StoreError::Backend(detail))
            }
            Err(e) => Err(e),
        }
    }

    fn failing(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn events_after(&self, after: u64) -> Result<Vec<LoggedEvent>> {
        self.with(|h| {
            let compacted = h.read_u64(COMPACTED_KEY)?;
            if after < compacted {
                return Err(StoreError::Compacted {
                    requested: after,
                    oldest: compacted,
                });
            }
            h.log()
                .range(log_key(after + 1, 0)..)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::AllocKey;
    use crate::store::EventType;

    /// Everything `load` visits, in order, and what it returns.
    fn load_all(store: &SledStore) -> (Loaded, Vec<(Kind, ObjectKey, String)>) {
        let mut seen = Vec::new();
        let loaded = store
            .load(&mut |kind, key, json| {
                seen.push((kind, key, json.to_string()));
                Ok(())
            })
            .unwrap();
        (loaded, seen)
    }

    fn event(revision: u64, name: &str) -> LoggedEvent {
        LoggedEvent {
            revision,
            event_type: EventType::Added,
            kind: "Service".into(),
            object: format!("{{\"metadata\":{{\"name\":\"{name}\"}}}}"),
        }
    }

    #[test]
    fn batches_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .commit(&Batch {
                    revision: 7,
                    puts: vec![(Kind::Service, "default/a".into(), "{}".into())],
                    claims: vec![(AllocKey::NodePort(30080), "default/a".into())],
                    events: vec![event(7, "a")],
                    ..Default::default()
                })
                .unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let (loaded, objects) = load_all(&store);
        assert_eq!(loaded.revision, 7);
        assert_eq!(
            objects,
            vec![(Kind::Service, "default/a".to_string(), "{}".to_string())]
        );
        assert_eq!(
            loaded.allocations,
            vec![(AllocKey::NodePort(30080), "default/a".to_string())]
        );
        assert_eq!(store.events_after(6).unwrap(), vec![event(7, "a")]);
        assert!(store.events_after(7).unwrap().is_empty());
    }

    fn commit_services(store: &SledStore, revisions: std::ops::RangeInclusive<u64>) {
        for revision in revisions {
            let name = format!("default/s{revision}");
            store
                .commit(&Batch {
                    revision,
                    puts: vec![(Kind::Service, name.clone(), "{}".into())],
                    events: vec![event(revision, &name)],
                    ..Default::default()
                })
                .unwrap();
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
        let err = store.load(&mut |_, _, _| Ok(())).unwrap_err();
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
            .and_then(|store| store.load(&mut |_, _, _| Ok(())).map(|_| ()))
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

    #[test]
    fn load_reopens_between_chunks_and_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let puts: Vec<(Kind, ObjectKey, String)> = (0..50)
            .map(|i| {
                (
                    Kind::Pod,
                    format!("default/p{i:02}"),
                    format!("{{\"i\":{i}}}"),
                )
            })
            .chain([(Kind::Service, "default/s".to_string(), "{}".to_string())])
            .collect();
        SledStore::open(dir.path())
            .unwrap()
            .commit(&Batch {
                revision: 3,
                puts: puts.clone(),
                ..Default::default()
            })
            .unwrap();
        // A 40-byte budget: a reopen after every two or three records.
        let store = SledStore::open_with(dir.path(), 40).unwrap();
        let (loaded, seen) = load_all(&store);
        assert_eq!(loaded.revision, 3);
        let mut expected = puts;
        expected.sort_by_key(|(kind, key, _)| (kind_index(*kind), key.clone()));
        assert_eq!(seen, expected);
        store
            .commit(&Batch {
                revision: 4,
                events: vec![event(4, "after")],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(store.events_after(3).unwrap(), vec![event(4, "after")]);
    }

    #[test]
    fn compaction_bounds_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        for rev in 1..=5 {
            store
                .commit(&Batch {
                    revision: rev,
                    events: vec![event(rev, "x")],
                    ..Default::default()
                })
                .unwrap();
        }
        store.compact(4).unwrap();
        assert_eq!(store.events_after(3).unwrap().len(), 2);
        assert!(matches!(
            store.events_after(2),
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
        let key = AllocKey::NodePort(30001);
        store
            .commit(&Batch {
                revision: 1,
                claims: vec![(key, "default/a".into())],
                ..Default::default()
            })
            .unwrap();
        store
            .commit(&Batch {
                revision: 2,
                releases: vec![key],
                deletes: vec![(Kind::Service, "default/a".into())],
                ..Default::default()
            })
            .unwrap();
        let mut objects = 0;
        let loaded = store
            .load(&mut |_, _, _| {
                objects += 1;
                Ok(())
            })
            .unwrap();
        assert!(loaded.allocations.is_empty());
        assert_eq!(objects, 0);
    }
}
