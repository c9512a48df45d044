//! Turns "desired vs applied" into one nft script holding only the difference.
//!
//! The script is a single `nft -f` transaction, so the kernel applies all of
//! it or none of it. Commands are grouped in phases so that every reference
//! is valid at the moment it is made:
//!
//! 1. declare: table, maps, canary set, affinity sets and (empty) new chains;
//! 2. flush: chains to rewrite, chains to delete (dropping their references),
//!    maps that could not be read back;
//! 3. delete elements: stale keys and keys whose verdict changes;
//! 4. rules of new and rewritten chains;
//! 5. add elements;
//! 6. delete foreign maps, stale chains, stale sets — nothing refers to them now;
//! 7. the canary generation (added by the caller, see [`Transaction::set_generation`]).
//!
//! A verdict change is a delete plus an add: nft 1.0 has no element update,
//! and adding an existing key with other data fails the transaction.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::state::{
    AppliedMap, AppliedState, ChainSpec, MapKey, MapName, Ruleset, Verdict, CANARY_SET,
};

/// Elements per `add element`/`delete element` command, to keep lines sane.
const ELEMENTS_PER_COMMAND: usize = 500;

/// What one transaction changes; all zero means nothing to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub chains_created: usize,
    pub chains_rewritten: usize,
    pub chains_deleted: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
    pub sets_created: usize,
    pub sets_deleted: usize,
}

impl ApplyStats {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One atomic nft script and what it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    table: String,
    phases: [Vec<String>; 7],
    pub stats: ApplyStats,
}

const DECLARE: usize = 0;
const FLUSH: usize = 1;
const DELETE_ELEMENTS: usize = 2;
const RULES: usize = 3;
const ADD_ELEMENTS: usize = 4;
const DELETE: usize = 5;
const CANARY: usize = 6;

impl Transaction {
    /// True when the transaction changes nothing (not even the canary).
    pub fn is_empty(&self) -> bool {
        self.phases.iter().all(Vec::is_empty)
    }

    /// Whether anything besides the canary changes.
    pub fn has_changes(&self) -> bool {
        self.phases[..CANARY].iter().any(|p| !p.is_empty())
    }

    /// Records `generation` in the canary set, in the same transaction.
    pub fn set_generation(&mut self, generation: u32) {
        let t = &self.table;
        self.phases[CANARY] = vec![
            format!("flush set ip {t} {CANARY_SET}"),
            format!("add element ip {t} {CANARY_SET} {{ {generation} }}"),
        ];
    }

    /// The script for `nft -f -`.
    pub fn script(&self) -> String {
        let mut out = String::new();
        for line in self.phases.iter().flatten() {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    fn push(&mut self, phase: usize, line: String) {
        self.phases[phase].push(line);
    }
}

/// Computes the transaction that turns `applied` into `desired` (without the
/// canary; the caller decides the generation).
pub fn plan(table: &str, applied: &AppliedState, desired: &Ruleset) -> Transaction {
    let mut tx = Transaction {
        table: table.to_owned(),
        ..Default::default()
    };
    if !applied.table_exists {
        tx.push(DECLARE, format!("add table ip {table}"));
    }
    plan_declarations(&mut tx, applied);
    plan_affinity_sets(&mut tx, applied, desired);
    plan_chains(&mut tx, applied, desired);
    plan_maps(&mut tx, applied, desired);
    tx
}

fn plan_declarations(tx: &mut Transaction, applied: &AppliedState) {
    let t = tx.table.clone();
    for map in MapName::ALL {
        if !applied.maps.contains_key(map.as_str()) {
            tx.push(
                DECLARE,
                format!(
                    "add map ip {t} {} {{ type {}; }}",
                    map.as_str(),
                    map.type_decl()
                ),
            );
        }
    }
    if !applied.sets.contains(CANARY_SET) {
        tx.push(
            DECLARE,
            format!("add set ip {t} {CANARY_SET} {{ type mark; }}"),
        );
    }
    for name in applied
        .maps
        .keys()
        .filter(|n| MapName::from_name(n).is_none())
    {
        tx.push(DELETE, format!("delete map ip {t} {name}"));
    }
}

fn plan_affinity_sets(tx: &mut Transaction, applied: &AppliedState, desired: &Ruleset) {
    let t = tx.table.clone();
    for (name, timeout) in &desired.affinity_sets {
        if !applied.sets.contains(name) {
            tx.push(
                DECLARE,
                format!("add set ip {t} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"),
            );
            tx.stats.sets_created += 1;
        }
    }
    for name in &applied.sets {
        if name != CANARY_SET && !desired.affinity_sets.contains_key(name) {
            tx.push(DELETE, format!("delete set ip {t} {name}"));
            tx.stats.sets_deleted += 1;
        }
    }
}

fn plan_chains(tx: &mut Transaction, applied: &AppliedState, desired: &Ruleset) {
    let t = tx.table.clone();
    for (name, spec) in &desired.chains {
        match applied.chains.get(name) {
            None => {
                tx.push(DECLARE, declare_chain(&t, name, spec));
                tx.stats.chains_created += 1;
            }
            Some(digest) if *digest == spec.digest() => continue,
            Some(_) => {
                tx.push(FLUSH, format!("flush chain ip {t} {name}"));
                tx.stats.chains_rewritten += 1;
            }
        }
        for rule in spec.rendered_rules() {
            tx.push(RULES, format!("add rule ip {t} {name} {rule}"));
        }
    }
    for name in applied
        .chains
        .keys()
        .filter(|n| !desired.chains.contains_key(*n))
    {
        tx.push(FLUSH, format!("flush chain ip {t} {name}"));
        tx.push(DELETE, format!("delete chain ip {t} {name}"));
        tx.stats.chains_deleted += 1;
    }
}

fn declare_chain(table: &str, name: &str, spec: &ChainSpec) -> String {
    match spec.base {
        None => format!("add chain ip {table} {name}"),
        Some(b) => format!(
            "add chain ip {table} {name} {{ type {} hook {} priority {}; policy accept; }}",
            b.kind, b.hook, b.priority
        ),
    }
}

fn plan_maps(tx: &mut Transaction, applied: &AppliedState, desired: &Ruleset) {
    let empty_desired = BTreeMap::new();
    let empty_applied = AppliedMap::default();
    for map in MapName::ALL {
        let want = desired.maps.get(&map).unwrap_or(&empty_desired);
        let have = applied.maps.get(map.as_str()).unwrap_or(&empty_applied);
        let have_elements = match have.unreadable {
            true => {
                tx.push(FLUSH, format!("flush map ip {} {}", tx.table, map.as_str()));
                &empty_desired
            }
            false => &have.elements,
        };
        plan_map_elements(tx, map, have_elements, want);
    }
}

fn plan_map_elements(
    tx: &mut Transaction,
    map: MapName,
    have: &BTreeMap<MapKey, Verdict>,
    want: &BTreeMap<MapKey, Verdict>,
) {
    let deletes: Vec<String> = have
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(*v))
        .map(|(k, _)| k.to_string())
        .collect();
    let adds: Vec<String> = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k} : {v}"))
        .collect();
    tx.stats.elements_deleted += deletes.len();
    tx.stats.elements_added += adds.len();
    push_elements(tx, DELETE_ELEMENTS, "delete", map, &deletes);
    push_elements(tx, ADD_ELEMENTS, "add", map, &adds);
}

fn push_elements(tx: &mut Transaction, phase: usize, verb: &str, map: MapName, items: &[String]) {
    for chunk in items.chunks(ELEMENTS_PER_COMMAND) {
        let mut line = format!("{verb} element ip {} {} {{ ", tx.table, map.as_str());
        let _ = write!(line, "{} }}", chunk.join(", "));
        tx.push(phase, line);
    }
}
