//! The transaction turning one [`Table`] into another: element deletes and
//! adds only, never a chain or rule (the chains are fixed), so the kernel
//! never re-validates the table for it — except when the first Service
//! with a new affinity timeout comes or the last with one goes, which
//! declares or deletes that timeout's sets and rewrites the record chain.

use std::collections::{BTreeMap, BTreeSet};

use super::render::{
    affinity_record_chain, tuple_type, AFFINITY_RECORD, FIREWALL_ALLOW, NODE_PORT_BACKENDS,
    SERVICE_BACKENDS,
};
use super::table::{affinity_set, Table, TupleFacts};
use crate::nft::command::{Command, Element, SetKind};
use crate::nft::state::{MapKey, HAIRPIN_SET};
use crate::nft::transaction::{Phase, Transaction};

/// Elements by the set holding them.
type BySet = BTreeMap<String, Vec<Element>>;

/// The element changes that make `from` into `to` in table `ip <name>`.
/// Tuples listed in neither are left alone, so `from` and `to` may be the
/// touched part of the table only (see `Index::update`).
pub fn delta(name: &str, from: &Table, to: &Table) -> Transaction {
    let (mut deletes, mut adds) = (BySet::new(), BySet::new());
    let empty = TupleFacts::default();
    let tuples: BTreeSet<&MapKey> = from.tuples.keys().chain(to.tuples.keys()).collect();
    for tuple in tuples {
        let before = from.tuples.get(tuple).unwrap_or(&empty);
        let after = to.tuples.get(tuple).unwrap_or(&empty);
        if before != after {
            elements_lacking(&mut deletes, tuple, before, after);
            elements_lacking(&mut adds, tuple, after, before);
        }
    }
    let hairpin = |a: &Table, b: &Table| -> Vec<Element> {
        a.hairpin
            .difference(&b.hairpin)
            .map(|ip| Element::Hairpin(*ip))
            .collect()
    };
    deletes.insert(HAIRPIN_SET.to_owned(), hairpin(from, to));
    adds.insert(HAIRPIN_SET.to_owned(), hairpin(to, from));
    let mut tx = Transaction::elements(name, commands(deletes, false), commands(adds, true));
    if from.affinity_timeouts != to.affinity_timeouts {
        affinity_timeouts(&mut tx, &from.affinity_timeouts, &to.affinity_timeouts);
    }
    tx
}

/// Declares the sets of timeouts new in `to`, rewrites the record chain
/// for `to`'s timeouts and deletes the sets of those gone.
fn affinity_timeouts(tx: &mut Transaction, from: &BTreeSet<u32>, to: &BTreeSet<u32>) {
    let sets = |timeouts: &BTreeSet<u32>, other: &BTreeSet<u32>| -> Vec<(String, bool)> {
        timeouts
            .difference(other)
            .flat_map(|t| {
                [true, false].map(|by_address| (affinity_set(*t, by_address), by_address))
            })
            .collect()
    };
    for (name, by_address) in sets(to, from) {
        let decl = tuple_type(by_address).to_owned();
        tx.push_in(
            Phase::Declare,
            Command::AddSet {
                kind: SetKind::Set,
                name,
                decl,
            },
        );
    }
    tx.push_in(
        Phase::Flush,
        Command::FlushChain(AFFINITY_RECORD.to_owned()),
    );
    for rule in affinity_record_chain(to) {
        tx.push_in(
            Phase::Rules,
            Command::AddRule {
                chain: AFFINITY_RECORD.to_owned(),
                rule,
            },
        );
    }
    for (name, _) in sets(from, to) {
        tx.push_in(
            Phase::Delete,
            Command::DeleteSet {
                kind: SetKind::Set,
                name,
            },
        );
    }
}

fn commands(by_set: BySet, add: bool) -> Vec<Command> {
    by_set
        .into_iter()
        .filter(|(_, elements)| !elements.is_empty())
        .map(|(set, elements)| match add {
            true => Command::AddElements { set, elements },
            false => Command::DeleteElements { set, elements },
        })
        .collect()
}

/// What `this` has and `other` lacks (a slot whose target differs counts
/// as lacking), by set.
fn elements_lacking(out: &mut BySet, tuple: &MapKey, this: &TupleFacts, other: &TupleFacts) {
    let by_address = tuple.addr.is_some();
    for fact in this.facts.difference(&other.facts) {
        if let Some(set) = fact.set_name(by_address) {
            out.entry(set.to_owned())
                .or_default()
                .push(Element::Tuple(*tuple));
        }
    }
    if let Some(timeout) = this.affinity.filter(|_| this.affinity != other.affinity) {
        out.entry(affinity_set(timeout, by_address))
            .or_default()
            .push(Element::Tuple(*tuple));
    }
    let map = match by_address {
        true => SERVICE_BACKENDS,
        false => NODE_PORT_BACKENDS,
    };
    let slots = this
        .slots
        .iter()
        .filter(|(k, t)| other.slots.get(k) != Some(t))
        .map(|(k, t)| Element::Slot(*tuple, *k, *t));
    out.entry(map.to_owned()).or_default().extend(slots);
    let ranges = this
        .allow
        .difference(&other.allow)
        .map(|r| Element::Allow(*tuple, *r));
    out.entry(FIREWALL_ALLOW.to_owned())
        .or_default()
        .extend(ranges);
}
