//! The `nft -f` script turning one [`Table`] into another: element deletes
//! and adds only, never a chain or rule (the chains are fixed).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::render::{FIREWALL_ALLOW, NODE_PORT_BACKENDS, SERVICE_BACKENDS};
use super::table::{Table, TupleFacts};
use crate::nft::state::{MapKey, HAIRPIN_SET};

/// The element commands that make `from` into `to` in table `ip <name>`.
pub fn delta(name: &str, from: &Table, to: &Table) -> String {
    let mut deletes = String::new();
    let mut adds = String::new();
    let empty = TupleFacts::default();
    let tuples: BTreeSet<&MapKey> = from.tuples.keys().chain(to.tuples.keys()).collect();
    for tuple in tuples {
        let before = from.tuples.get(tuple).unwrap_or(&empty);
        let after = to.tuples.get(tuple).unwrap_or(&empty);
        if before != after {
            tuple_delta(&mut deletes, "delete", name, tuple, before, after, false);
            tuple_delta(&mut adds, "add", name, tuple, after, before, true);
        }
    }
    for ip in from.hairpin.difference(&to.hairpin) {
        let _ = writeln!(
            deletes,
            "delete element ip {name} {HAIRPIN_SET} {{ {ip} . {ip} }}"
        );
    }
    for ip in to.hairpin.difference(&from.hairpin) {
        let _ = writeln!(
            adds,
            "add element ip {name} {HAIRPIN_SET} {{ {ip} . {ip} }}"
        );
    }
    deletes + &adds
}

/// `verb`s what `this` has and `other` lacks (a slot whose target differs
/// counts as lacking); `with_data` writes map values (adds).
fn tuple_delta(
    out: &mut String,
    verb: &str,
    name: &str,
    tuple: &MapKey,
    this: &TupleFacts,
    other: &TupleFacts,
    with_data: bool,
) {
    let by_address = tuple.addr.is_some();
    for fact in this.facts.difference(&other.facts) {
        if let Some(set) = fact.set_name(by_address) {
            let _ = writeln!(out, "{verb} element ip {name} {set} {{ {tuple} }}");
        }
    }
    let slots: Vec<String> = this
        .slots
        .iter()
        .filter(|(k, t)| other.slots.get(k) != Some(t))
        .map(|(k, t)| match with_data {
            true => format!("{tuple} . {k} : {t}"),
            false => format!("{tuple} . {k}"),
        })
        .collect();
    if !slots.is_empty() {
        let map = match by_address {
            true => SERVICE_BACKENDS,
            false => NODE_PORT_BACKENDS,
        };
        let _ = writeln!(
            out,
            "{verb} element ip {name} {map} {{ {} }}",
            slots.join(", ")
        );
    }
    let ranges: Vec<String> = this
        .allow
        .difference(&other.allow)
        .map(|r| format!("{tuple} . {r}"))
        .collect();
    if !ranges.is_empty() {
        let _ = writeln!(
            out,
            "{verb} element ip {name} {FIREWALL_ALLOW} {{ {} }}",
            ranges.join(", ")
        );
    }
}
