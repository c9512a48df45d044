//! The transaction turning one [`Table`] into another: element deletes and
//! adds only, never a chain or rule (the chains are fixed), so the kernel
//! never re-validates the table for it.

use std::collections::{BTreeMap, BTreeSet};

use super::render::{FIREWALL_ALLOW, NODE_PORT_BACKENDS, SERVICE_BACKENDS};
use super::table::{Table, TupleFacts};
use crate::nft::command::{Command, Element};
use crate::nft::diff::Transaction;
use crate::nft::state::{MapKey, HAIRPIN_SET};

/// Elements by the set holding them.
type BySet = BTreeMap<&'static str, Vec<Element>>;

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
    deletes.insert(HAIRPIN_SET, hairpin(from, to));
    adds.insert(HAIRPIN_SET, hairpin(to, from));
    Transaction::elements(name, commands(deletes, false), commands(adds, true))
}

fn commands(by_set: BySet, add: bool) -> Vec<Command> {
    by_set
        .into_iter()
        .filter(|(_, elements)| !elements.is_empty())
        .map(|(set, elements)| match add {
            true => Command::AddElements {
                set: set.to_owned(),
                elements,
            },
            false => Command::DeleteElements {
                set: set.to_owned(),
                elements,
            },
        })
        .collect()
}

/// What `this` has and `other` lacks (a slot whose target differs counts
/// as lacking), by set.
fn elements_lacking(out: &mut BySet, tuple: &MapKey, this: &TupleFacts, other: &TupleFacts) {
    let by_address = tuple.addr.is_some();
    for fact in this.facts.difference(&other.facts) {
        if let Some(set) = fact.set_name(by_address) {
            out.entry(set).or_default().push(Element::Tuple(*tuple));
        }
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
    out.entry(map).or_default().extend(slots);
    let ranges = this
        .allow
        .difference(&other.allow)
        .map(|r| Element::Allow(*tuple, *r));
    out.entry(FIREWALL_ALLOW).or_default().extend(ranges);
}
