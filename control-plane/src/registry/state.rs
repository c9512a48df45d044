//! The registry's in-memory view of the store, and the overlay one write
//! builds on top of it before anything is committed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use switchyard_api::resources::{Kind, Object};

use crate::allocator::{AllocKey, AllocationTable};
use crate::store::{key_of, Batch, Committed, Delete, EventType, ObjectKey, Put};

/// One committed change, as watchers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub revision: u64,
    pub event_type: EventType,
    pub object: Arc<Object>,
}

#[derive(Debug, Default)]
pub struct State {
    pub revision: u64,
    pub objects: BTreeMap<Kind, BTreeMap<ObjectKey, Arc<Object>>>,
    pub allocations: AllocationTable,
}

impl State {
    pub fn get(&self, kind: Kind, key: &str) -> Option<&Arc<Object>> {
        self.objects.get(&kind)?.get(key)
    }

    /// Objects of `kind` in `namespace` (every namespace when `None`), in key order.
    pub fn in_namespace<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        self.with_prefix(
            kind,
            namespace.map(|ns| format!("{ns}/")).unwrap_or_default(),
        )
    }

    /// Objects of `kind` in `namespace` (all: `None`) whose key sorts after
    /// `after`, with their keys, in key order: a list's later pages start
    /// where the last one ended, found by range, not scan.
    pub fn after<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<Object>)> + 'a {
        let prefix = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
        let start = match after {
            Some(key) if *key >= *prefix => Bound::Excluded(key.to_string()),
            _ => Bound::Included(prefix.clone()),
        };
        self.objects.get(&kind).into_iter().flat_map(move |m| {
            let prefix = prefix.clone();
            m.range::<String, _>((start.clone(), Bound::Unbounded))
                .take_while(move |(k, _)| k.starts_with(&prefix))
        })
    }

    /// Objects of `kind` whose key starts with `prefix`, found by range, not scan.
    pub fn with_prefix(
        &self,
        kind: Kind,
        prefix: String,
    ) -> impl Iterator<Item = &Arc<Object>> + '_ {
        self.objects.get(&kind).into_iter().flat_map(move |m| {
            let start = Bound::Included(prefix.clone());
            let prefix = prefix.clone();
            m.range::<String, _>((start, Bound::Unbounded))
                .take_while(move |(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v)
        })
    }

    /// Applies one committed write as the store's watch delivered it and
    /// returns the events watchers see for it.
    pub fn apply(&mut self, committed: &Committed) -> Vec<Event> {
        let revision = committed.revision;
        let mut events = Vec::with_capacity(committed.puts.len() + committed.deletes.len());
        for object in &committed.puts {
            let map = self.objects.entry(object.kind()).or_default();
            let existed = map.insert(key_of(object), object.clone()).is_some();
            let event_type = EventType::of_put(existed);
            events.push(Event {
                revision,
                event_type,
                object: object.clone(),
            });
        }
        for (kind, key) in &committed.deletes {
            if let Some(old) = self.objects.get_mut(kind).and_then(|m| m.remove(key)) {
                events.push(Event {
                    revision,
                    event_type: EventType::Deleted,
                    object: old,
                });
            }
        }
        for key in &committed.releases {
            self.allocations.remove(key);
        }
        for (key, owner) in &committed.claims {
            self.allocations.insert(*key, owner.clone());
        }
        self.revision = self.revision.max(revision);
        events
    }
}

/// The mod revision an object was read at: its resourceVersion.
pub fn mod_revision(obj: &Object) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// The pending changes of one write, read through on top of the state.
/// It also records the objects the write read from the state, so the write
/// can claim them ([`super::inflight`]): no other write may change them
/// while this one commits.
pub struct Txn<'a> {
    pub base: &'a State,
    changes: BTreeMap<(Kind, ObjectKey), Option<Object>>,
    claims: Vec<(AllocKey, ObjectKey)>,
    releases: Vec<AllocKey>,
    reads: RefCell<BTreeSet<(Kind, ObjectKey)>>,
}

/// A write ready to commit: the store's batch, and what it read.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub batch: Batch,
    /// Objects read from the state that the batch does not write.
    pub reads: Vec<(Kind, ObjectKey)>,
}

impl<'a> Txn<'a> {
    pub fn new(base: &'a State) -> Self {
        Self {
            base,
            changes: BTreeMap::new(),
            claims: Vec::new(),
            releases: Vec::new(),
            reads: RefCell::default(),
        }
    }

    /// The object as this write would leave it.
    pub fn get(&self, kind: Kind, key: &str) -> Option<Object> {
        match self.changes.get(&(kind, key.to_string())) {
            Some(change) => change.clone(),
            None => {
                self.reads.borrow_mut().insert((kind, key.to_string()));
                self.base.get(kind, key).map(|o| (**o).clone())
            }
        }
    }

    /// Objects of `kind` in `namespace` as this write would leave them.
    pub fn list(&self, kind: Kind, namespace: &str) -> Vec<Object> {
        self.list_where(kind, namespace, |_| true)
    }

    /// Like [`list`](Self::list), keeping only objects that pass `keep`.
    /// Only those are cloned: a write that needs the few pods of one Service
    /// must not copy every pod of a namespace of thousands.
    pub fn list_where(
        &self,
        kind: Kind,
        namespace: &str,
        keep: impl Fn(&Object) -> bool,
    ) -> Vec<Object> {
        self.list_prefixed(kind, format!("{namespace}/"), keep)
    }

    /// Like [`list_where`](Self::list_where), across every namespace.
    pub fn list_all_where(&self, kind: Kind, keep: impl Fn(&Object) -> bool) -> Vec<Object> {
        self.list_prefixed(kind, String::new(), keep)
    }

    fn list_prefixed(
        &self,
        kind: Kind,
        prefix: String,
        keep: impl Fn(&Object) -> bool,
    ) -> Vec<Object> {
        let mut merged: BTreeMap<ObjectKey, Object> = self
            .base
            .with_prefix(kind, prefix.clone())
            .filter(|o| keep(o))
            .map(|o| (key_of(o), (**o).clone()))
            .collect();
        for ((k, key), change) in &self.changes {
            if *k == kind && key.starts_with(&prefix) {
                match change {
                    Some(o) if keep(o) => merged.insert(key.clone(), o.clone()),
                    _ => merged.remove(key),
                };
            }
        }
        merged.into_values().collect()
    }

    pub fn put(&mut self, obj: Object) {
        self.changes.insert((obj.kind(), key_of(&obj)), Some(obj));
    }

    pub fn delete(&mut self, kind: Kind, key: ObjectKey) {
        self.changes.insert((kind, key), None);
    }

    pub fn claim(&mut self, key: AllocKey, owner: ObjectKey) {
        self.claims.push((key, owner));
    }

    pub fn release(&mut self, key: AllocKey) {
        self.releases.push(key);
    }

    /// Turns the write into the store batch, each change guarded by the
    /// mod revision it was read at, and the objects it read besides. Puts
    /// equal to what is stored and deletes of absent objects vanish here.
    pub fn finish(self) -> Prepared {
        let mut batch = Batch {
            claims: self.claims,
            releases: self.releases,
            ..Default::default()
        };
        let reads = self
            .reads
            .into_inner()
            .into_iter()
            .filter(|read| !self.changes.contains_key(read))
            .collect();
        for ((kind, key), change) in self.changes {
            let before = self.base.get(kind, &key);
            let expect = before.map(|b| mod_revision(b)).unwrap_or(0);
            match (change, before) {
                (None, None) => {}
                (None, Some(old)) => batch.deletes.push(Delete {
                    object: (**old).clone(),
                    expect,
                }),
                (Some(new), before) => {
                    if before.is_some_and(|b| same_content(b, &new)) {
                        continue;
                    }
                    batch.puts.push(Put {
                        object: new,
                        expect,
                    });
                }
            }
        }
        Prepared { batch, reads }
    }
}

/// Equal but for the resourceVersion a write would stamp anyway.
pub fn same_content(a: &Object, b: &Object) -> bool {
    let mut a = a.clone();
    a.meta_mut().resource_version = b.meta().resource_version.clone();
    a == *b
}

impl crate::controller::slices::Objects for Txn<'_> {
    fn get(&self, kind: Kind, key: &str) -> Option<Object> {
        Txn::get(self, kind, key)
    }

    fn list_where(
        &self,
        kind: Kind,
        namespace: &str,
        keep: &dyn Fn(&Object) -> bool,
    ) -> Vec<Object> {
        Txn::list_where(self, kind, namespace, keep)
    }

    fn list_all_where(&self, kind: Kind, keep: &dyn Fn(&Object) -> bool) -> Vec<Object> {
        Txn::list_all_where(self, kind, keep)
    }

    fn put(&mut self, obj: Object) {
        Txn::put(self, obj)
    }

    fn delete(&mut self, kind: Kind, key: ObjectKey) {
        Txn::delete(self, kind, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_services(keys: &[&str]) -> State {
        let services = keys
            .iter()
            .map(|key| {
                let (ns, name) = key.split_once('/').unwrap();
                let svc = serde_json::json!({"metadata": {"name": name, "namespace": ns}});
                let obj = Object::from_value(Kind::Service, svc).unwrap();
                (key.to_string(), Arc::new(obj))
            })
            .collect();
        State {
            objects: BTreeMap::from([(Kind::Service, services)]),
            ..State::default()
        }
    }

    fn keys<'a>(it: impl Iterator<Item = (&'a ObjectKey, &'a Arc<Object>)>) -> Vec<&'a str> {
        it.map(|(k, _)| k.as_str()).collect()
    }

    /// A list's next page starts right after the key the last one ended
    /// with, in one namespace or across all of them.
    #[test]
    fn pages_start_after_the_last_key() {
        let state = with_services(&["a/web", "b/api", "b/db", "b/web", "c/web"]);
        let all = |after| keys(state.after(Kind::Service, None, after));
        assert_eq!(all(None), ["a/web", "b/api", "b/db", "b/web", "c/web"]);
        assert_eq!(all(Some("b/api")), ["b/db", "b/web", "c/web"]);
        assert_eq!(all(Some("c/web")), Vec::<&str>::new());
        let in_b = |after| keys(state.after(Kind::Service, Some("b"), after));
        assert_eq!(in_b(None), ["b/api", "b/db", "b/web"]);
        assert_eq!(in_b(Some("b/db")), ["b/web"]);
        // A key before the namespace starts the namespace from its first.
        assert_eq!(in_b(Some("a/web")), ["b/api", "b/db", "b/web"]);
        assert_eq!(keys(state.after(Kind::Pod, None, None)), Vec::<&str>::new());
    }
}
