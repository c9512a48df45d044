//! The keys (objects and allocations) of this control plane's writes that
//! are committing now. Writes prepare one at a time but commit side by
//! side; one that would touch a key another is still committing waits for
//! it and prepares again against the state that holds it, rather than
//! committing a write that must lose its precondition (two pods of one
//! Service both rewriting its EndpointSlice, two Services drawing the same
//! free NodePort).
//!
//! A write also claims the objects it read (a Service's write reads the
//! Nodes of its endpoints for their zones): it does not commit beside a
//! write that changes one of them, and no write that changes one commits
//! beside it. Reads among themselves overlap freely.
//!
//! Lists are read more widely than keys can say: a Pod's write derives the
//! slices of the Services that select it from the Services it sees, a
//! Service's from the Pods it sees. So Pod writes and Service writes of one
//! namespace do not overlap each other (Pods among themselves, or Services
//! among themselves, do), and a Namespace's write overlaps nothing in it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use switchyard_api::resources::Kind;
use tokio::sync::watch;

use super::state::Prepared;
use crate::allocator::AllocKey;
use crate::store::key_of;
use crate::store::{Batch, ObjectKey};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Object(Kind, ObjectKey),
    Alloc(AllocKey),
}

/// What a write reads beyond its keys, per namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Pods,
    Services,
    /// Everything in the namespace.
    Whole,
}

/// The namespaces a batch writes Pods, Services or the Namespace itself in.
fn sides_of(batch: &Batch) -> Vec<(String, Side)> {
    let mut sides: HashMap<String, Side> = HashMap::new();
    for (object, _) in batch.guarded() {
        let (namespace, side) = match object.kind() {
            Kind::Pod => (object.namespace().to_string(), Side::Pods),
            Kind::Service => (object.namespace().to_string(), Side::Services),
            Kind::Namespace => (object.name().to_string(), Side::Whole),
            _ => continue,
        };
        sides
            .entry(namespace)
            .and_modify(|s| {
                if *s != side {
                    *s = Side::Whole;
                }
            })
            .or_insert(side);
    }
    sides.into_iter().collect()
}

fn keys_of(batch: &Batch) -> Vec<Key> {
    let objects = batch
        .guarded()
        .map(|(o, _)| o)
        .map(|o| Key::Object(o.kind(), key_of(o)));
    let allocations = batch.claims.iter().map(|(k, _)| Key::Alloc(*k));
    objects.chain(allocations).collect()
}

fn reads_of(prepared: &Prepared) -> Vec<Key> {
    let reads = prepared.reads.iter();
    reads
        .map(|(kind, key)| Key::Object(*kind, key.clone()))
        .collect()
}

/// What the writes in flight hold.
#[derive(Default)]
struct Held {
    keys: HashSet<Key>,
    /// Objects writes in flight read, and how many read each.
    reads: HashMap<Key, usize>,
    /// Per namespace: the side writes in flight are on, and how many.
    sides: HashMap<String, (Side, usize)>,
}

impl Held {
    fn admits(&self, claim: &Claim) -> bool {
        let free = |k: &Key| !self.keys.contains(k);
        claim
            .keys
            .iter()
            .all(|k| free(k) && !self.reads.contains_key(k))
            && claim.reads.iter().all(free)
            && claim
                .sides
                .iter()
                .all(|(ns, side)| match self.sides.get(ns) {
                    None => true,
                    Some((held, _)) => held == side && *side != Side::Whole,
                })
    }

    fn take(&mut self, claim: &Claim) {
        self.keys.extend(claim.keys.iter().cloned());
        for key in &claim.reads {
            *self.reads.entry(key.clone()).or_default() += 1;
        }
        for (ns, side) in &claim.sides {
            self.sides.entry(ns.clone()).or_insert((*side, 0)).1 += 1;
        }
    }

    fn give_back(&mut self, claim: &Claim) {
        for key in &claim.keys {
            self.keys.remove(key);
        }
        for key in &claim.reads {
            if let Some(count) = self.reads.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    self.reads.remove(key);
                }
            }
        }
        for (ns, _) in &claim.sides {
            if let Some((_, count)) = self.sides.get_mut(ns) {
                *count -= 1;
                if *count == 0 {
                    self.sides.remove(ns);
                }
            }
        }
    }
}

/// What one write holds while it commits.
struct Claim {
    keys: Vec<Key>,
    reads: Vec<Key>,
    sides: Vec<(String, Side)>,
}

#[derive(Default)]
pub(super) struct InFlight {
    held: Arc<Mutex<Held>>,
    /// Bumped whenever a write's keys are released.
    released: Arc<watch::Sender<u64>>,
}

/// Holds a write's keys and reads until dropped.
pub(super) struct Claimed {
    claim: Claim,
    held: Arc<Mutex<Held>>,
    released: Arc<watch::Sender<u64>>,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.give_back(&self.claim);
        drop(held);
        self.released.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl InFlight {
    /// Takes the write's keys and reads, or, when a write in flight holds
    /// one of its keys, writes what it read, reads what it writes (or is on
    /// the other side of a namespace), a receiver that changes once some
    /// write let its claim go.
    pub fn claim(&self, prepared: &Prepared) -> Result<Claimed, watch::Receiver<u64>> {
        let claim = Claim {
            keys: keys_of(&prepared.batch),
            reads: reads_of(prepared),
            sides: sides_of(&prepared.batch),
        };
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.admits(&claim) {
            return Err(self.released.subscribe());
        }
        held.take(&claim);
        Ok(Claimed {
            claim,
            held: self.held.clone(),
            released: self.released.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Put;
    use switchyard_api::resources::{Node, Object, ObjectMeta, Pod, Service};

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            ..Default::default()
        }
    }

    /// A write that puts `object`, claims `claims` and read `reads`.
    fn write(object: Object, claims: Vec<(AllocKey, ObjectKey)>, reads: &[&str]) -> Prepared {
        let batch = Batch {
            puts: vec![Put { object, expect: 0 }],
            claims,
            ..Default::default()
        };
        let reads = reads.iter().map(|n| (Kind::Node, n.to_string())).collect();
        Prepared { batch, reads }
    }

    fn service(name: &str, port: u16) -> Prepared {
        let object = Object::Service(Box::new(Service {
            metadata: meta(name),
            ..Default::default()
        }));
        let claim = (AllocKey::NodePort(port), format!("default/{name}"));
        write(object, vec![claim], &["node-1"])
    }

    fn pod(name: &str) -> Prepared {
        let object = Object::Pod(Pod {
            metadata: meta(name),
            ..Default::default()
        });
        write(object, Vec::new(), &["node-1"])
    }

    fn node(name: &str) -> Prepared {
        let object = Object::Node(Box::new(Node {
            metadata: ObjectMeta {
                name: name.into(),
                ..Default::default()
            },
            ..Default::default()
        }));
        write(object, Vec::new(), &[])
    }

    #[test]
    fn pods_and_services_of_one_namespace_take_turns() {
        let inflight = InFlight::default();
        let p1 = inflight.claim(&pod("p1")).ok().unwrap();
        let p2 = inflight.claim(&pod("p2")).ok().unwrap();
        assert!(inflight.claim(&service("s", 30001)).is_err());
        drop(p1);
        assert!(inflight.claim(&service("s", 30001)).is_err());
        drop(p2);
        let s = inflight.claim(&service("s", 30001)).ok().unwrap();
        assert!(inflight.claim(&service("t", 30002)).is_ok());
        assert!(inflight.claim(&pod("p3")).is_err());
        drop(s);
    }

    #[test]
    fn a_write_touching_a_key_in_flight_waits_until_it_is_released() {
        let inflight = InFlight::default();
        let first = inflight.claim(&service("a", 30001)).ok().unwrap();
        assert!(inflight.claim(&service("b", 30002)).is_ok());
        let same_object = inflight.claim(&service("a", 30003)).err().unwrap();
        let same_port = inflight.claim(&service("c", 30001));
        assert!(same_port.is_err());
        assert!(!same_object.has_changed().unwrap());
        drop(first);
        assert!(same_object.has_changed().unwrap());
        assert!(inflight.claim(&service("c", 30001)).is_ok());
    }

    #[test]
    fn a_write_does_not_commit_beside_one_that_changes_what_it_read() {
        let inflight = InFlight::default();
        // Writes reading node-1 overlap each other, but not its write.
        let s = inflight.claim(&service("a", 30001)).ok().unwrap();
        let p = inflight.claim(&service("b", 30002)).ok().unwrap();
        let waiting = inflight.claim(&node("node-1")).err().unwrap();
        assert!(inflight.claim(&node("node-2")).is_ok());
        drop(s);
        assert!(inflight.claim(&node("node-1")).is_err());
        drop(p);
        assert!(waiting.has_changed().unwrap());
        let n = inflight.claim(&node("node-1")).ok().unwrap();
        // And while node-1 is being written, nothing that read it commits.
        assert!(inflight.claim(&pod("p")).is_err());
        drop(n);
        assert!(inflight.claim(&pod("p")).is_ok());
    }
}
