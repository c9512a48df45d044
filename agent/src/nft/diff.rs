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

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::command::{self, Command, Element, SetKind};
use super::state::Touched;
use super::state::{
    all_backend_maps, backends_map, is_backends_map, AppliedMap, AppliedState, BackendRange,
    ChainDigest, ChainSpec, MapKey, MapName, Ruleset, Verdict, CANARY_SET, HAIRPIN_SET,
};

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

/// Where a declaration, flush, rule or deletion runs in a transaction:
/// declarations first, deletions after every element and rule change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Declare,
    Flush,
    Rules,
    Delete,
}

/// One atomic transaction and what it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    table: String,
    phases: [Vec<Command>; 7],
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
        self.phases[CANARY] = vec![
            Command::FlushSet {
                kind: SetKind::Set,
                name: CANARY_SET.to_owned(),
            },
            Command::AddElements {
                set: CANARY_SET.to_owned(),
                elements: vec![Element::Mark(generation)],
            },
        ];
    }

    /// Adds `command` to `phase`, counting what it changes.
    pub fn push_in(&mut self, phase: Phase, command: Command) {
        match &command {
            Command::AddSet { .. } => self.stats.sets_created += 1,
            Command::DeleteSet { .. } => self.stats.sets_deleted += 1,
            Command::FlushChain(_) => self.stats.chains_rewritten += 1,
            _ => {}
        }
        let index = match phase {
            Phase::Declare => DECLARE,
            Phase::Flush => FLUSH,
            Phase::Rules => RULES,
            Phase::Delete => DELETE,
        };
        self.push(index, command);
    }

    /// Element changes alone (the constant layout's deltas): `deletes`
    /// run before `adds`, so a key whose value changes is deleted first.
    pub fn elements(table: &str, deletes: Vec<Command>, adds: Vec<Command>) -> Transaction {
        let count = |commands: &[Command]| -> usize {
            commands
                .iter()
                .map(|c| match c {
                    Command::AddElements { elements, .. }
                    | Command::DeleteElements { elements, .. } => elements.len(),
                    _ => 0,
                })
                .sum()
        };
        let stats = ApplyStats {
            elements_added: count(&adds),
            elements_deleted: count(&deletes),
            ..ApplyStats::default()
        };
        let mut tx = Transaction {
            table: table.to_owned(),
            stats,
            ..Transaction::default()
        };
        tx.phases[DELETE_ELEMENTS] = deletes;
        tx.phases[ADD_ELEMENTS] = adds;
        tx
    }

    /// The table the commands apply to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The commands in the order they must run.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.phases.iter().flatten()
    }

    /// The script for `nft -f -`.
    pub fn script(&self) -> String {
        command::script(&self.table, self.commands())
    }

    fn push(&mut self, phase: usize, command: Command) {
        self.phases[phase].push(command);
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
        tx.push(DECLARE, Command::AddTable);
    }
    plan_declarations(&mut tx, applied);
    plan_affinity_sets(&mut tx, applied, desired);
    plan_chains(&mut tx, applied, desired);
    plan_maps(&mut tx, applied, desired);
    tx
}

fn plan_declarations(tx: &mut Transaction, applied: &AppliedState) {
    let declare = |kind, name: &str, decl: String| Command::AddSet {
        kind,
        name: name.to_owned(),
        decl,
    };
    for map in MapName::ALL {
        if !applied.maps.contains_key(map.as_str()) {
            let decl = format!("type {};", map.type_decl());
            tx.push(DECLARE, declare(SetKind::Map, map.as_str(), decl));
        }
    }
    for (protocol, name) in all_backend_maps() {
        if !applied.maps.contains_key(&name) {
            let decl = format!(
                "typeof numgen random mod 1 : ip daddr . {protocol} dport; flags interval;"
            );
            tx.push(DECLARE, declare(SetKind::Map, &name, decl));
        }
    }
    if !applied.sets.contains(CANARY_SET) {
        let decl = "type mark;".to_owned();
        tx.push(DECLARE, declare(SetKind::Set, CANARY_SET, decl));
    }
    if !applied.sets.contains(HAIRPIN_SET) {
        let decl = "type ipv4_addr . ipv4_addr;".to_owned();
        tx.push(DECLARE, declare(SetKind::Set, HAIRPIN_SET, decl));
    }
    let foreign: Vec<String> = applied
        .maps
        .keys()
        .filter(|n| MapName::from_name(n).is_none() && !is_backends_map(n))
        .cloned()
        .collect();
    for name in foreign {
        let kind = SetKind::Map;
        tx.push(DELETE, Command::DeleteSet { kind, name });
    }
}

fn plan_affinity_sets(tx: &mut Transaction, applied: &AppliedState, desired: &Ruleset) {
    for (name, timeout) in &desired.affinity_sets {
        plan_set(tx, applied, name, Some(*timeout));
    }
    for name in &applied.sets {
        if !desired.affinity_sets.contains_key(name) {
            plan_set(tx, applied, name, None);
        }
    }
}

/// Creates a wanted affinity set that is missing, deletes an unwanted one.
fn plan_set(tx: &mut Transaction, applied: &AppliedState, name: &str, want: Option<u32>) {
    match (applied.sets.contains(name), want) {
        (false, Some(timeout)) => {
            tx.push(
                DECLARE,
                Command::AddSet {
                    kind: SetKind::Set,
                    name: name.to_owned(),
                    decl: format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
                },
            );
            tx.stats.sets_created += 1;
        }
        (true, None) if name != CANARY_SET && name != HAIRPIN_SET => {
            tx.push(
                DELETE,
                Command::DeleteSet {
                    kind: SetKind::Set,
                    name: name.to_owned(),
                },
            );
            tx.stats.sets_deleted += 1;
        }
        _ => {}
    }
}

fn plan_chains(tx: &mut Transaction, applied: &AppliedState, desired: &Ruleset) {
    for (name, spec) in &desired.chains {
        plan_chain(tx, applied.chains.get(name), name, Some(spec));
    }
    for (name, digest) in applied
        .chains
        .iter()
        .filter(|(n, _)| !desired.chains.contains_key(*n))
    {
        plan_chain(tx, Some(digest), name, None);
    }
}

/// Creates, rewrites or deletes one chain, or leaves it when it matches.
fn plan_chain(
    tx: &mut Transaction,
    have: Option<&ChainDigest>,
    name: &str,
    want: Option<&ChainSpec>,
) {
    let spec = match (have, want) {
        (None, None) => return,
        (Some(_), None) => {
            tx.push(FLUSH, Command::FlushChain(name.to_owned()));
            tx.push(DELETE, Command::DeleteChain(name.to_owned()));
            tx.stats.chains_deleted += 1;
            return;
        }
        (None, Some(spec)) => {
            let base = spec.base;
            let name = name.to_owned();
            tx.push(DECLARE, Command::AddChain { name, base });
            tx.stats.chains_created += 1;
            spec
        }
        (Some(digest), Some(spec)) if *digest == spec.digest() => return,
        (Some(_), Some(spec)) => {
            tx.push(FLUSH, Command::FlushChain(name.to_owned()));
            tx.stats.chains_rewritten += 1;
            spec
        }
    };
    for rule in spec.rendered_rules() {
        let chain = name.to_owned();
        tx.push(RULES, Command::AddRule { chain, rule });
    }
}

/// Like [`plan`], for a table that already holds everything of `desired`
/// but the `touched` names and keys (an incremental apply): its cost
/// follows the change, not the table.
pub fn plan_touched(
    table: &str,
    applied: &AppliedState,
    desired: &Ruleset,
    touched: &Touched,
) -> Transaction {
    // No declarations here: an incremental apply only follows a successful
    // one, which declared everything; a map removed behind our back fails
    // the delta, and the full apply that follows re-reads the table.
    let mut tx = Transaction {
        table: table.to_owned(),
        ..Default::default()
    };
    for name in &touched.sets {
        plan_set(
            &mut tx,
            applied,
            name,
            desired.affinity_sets.get(name).copied(),
        );
    }
    for name in &touched.chains {
        plan_chain(
            &mut tx,
            applied.chains.get(name),
            name,
            desired.chains.get(name),
        );
    }
    for map in MapName::ALL {
        let keys = touched
            .elements
            .iter()
            .filter(|(m, _)| *m == map)
            .map(|(_, k)| k);
        let (mut have, mut want) = (BTreeMap::new(), BTreeMap::new());
        for k in keys {
            if let Some(v) = applied
                .maps
                .get(map.as_str())
                .and_then(|m| m.elements.get(k))
            {
                have.insert(*k, v.clone());
            }
            if let Some(v) = desired.maps.get(&map).and_then(|m| m.get(k)) {
                want.insert(*k, v.clone());
            }
        }
        plan_map_elements(&mut tx, map, &have, &want);
    }
    let pick = |from: &BTreeMap<u32, BackendRange>| -> BTreeMap<u32, BackendRange> {
        touched
            .backends
            .iter()
            .filter_map(|k| from.get(k).map(|t| (*k, *t)))
            .collect()
    };
    plan_backends(&mut tx, &pick(&applied.backends), &pick(&desired.backends));
    let have: BTreeSet<Ipv4Addr> = touched
        .hairpin
        .intersection(&applied.hairpin)
        .copied()
        .collect();
    let want: BTreeSet<Ipv4Addr> = touched
        .hairpin
        .intersection(&desired.hairpin)
        .copied()
        .collect();
    plan_hairpin(&mut tx, &have, &want);
    tx
}

fn plan_maps(tx: &mut Transaction, applied: &AppliedState, desired: &Ruleset) {
    let empty_desired = BTreeMap::new();
    let empty_applied = AppliedMap::default();
    for map in MapName::ALL {
        let want = desired.maps.get(&map).unwrap_or(&empty_desired);
        let have = applied.maps.get(map.as_str()).unwrap_or(&empty_applied);
        let have_elements = match have.unreadable {
            true => {
                tx.push(FLUSH, flush_map(map.as_str()));
                &empty_desired
            }
            false => &have.elements,
        };
        plan_map_elements(tx, map, have_elements, want);
    }
    let readable: BTreeMap<u32, BackendRange> = applied
        .backends
        .iter()
        .filter(|(k, r)| {
            !applied
                .maps
                .get(&backends_map(r.target.protocol, **k))
                .is_some_and(|m| m.unreadable)
        })
        .map(|(k, r)| (*k, *r))
        .collect();
    for (name, map) in &applied.maps {
        if map.unreadable && is_backends_map(name) {
            tx.push(FLUSH, flush_map(name));
        }
    }
    plan_backends(tx, &readable, &desired.backends);
    let empty = BTreeSet::new();
    let have_hairpin = match applied.hairpin_unreadable {
        true => {
            tx.push(
                FLUSH,
                Command::FlushSet {
                    kind: SetKind::Set,
                    name: HAIRPIN_SET.to_owned(),
                },
            );
            &empty
        }
        false => &applied.hairpin,
    };
    plan_hairpin(tx, have_hairpin, &desired.hairpin);
}

fn flush_map(name: &str) -> Command {
    Command::FlushSet {
        kind: SetKind::Map,
        name: name.to_owned(),
    }
}

/// Backend map ranges: one whose end or target changes is deleted and
/// added. Adds stay in ascending order (see [`super::netlink::element`]).
fn plan_backends(
    tx: &mut Transaction,
    have: &BTreeMap<u32, BackendRange>,
    want: &BTreeMap<u32, BackendRange>,
) {
    let mut deletes: BTreeMap<String, Vec<Element>> = BTreeMap::new();
    let mut adds: BTreeMap<String, Vec<Element>> = BTreeMap::new();
    for (k, r) in have.iter().filter(|(k, r)| want.get(*k) != Some(*r)) {
        deletes
            .entry(backends_map(r.target.protocol, *k))
            .or_default()
            .push(Element::Backend(*k, *r));
    }
    for (k, r) in want.iter().filter(|(k, r)| have.get(*k) != Some(*r)) {
        adds.entry(backends_map(r.target.protocol, *k))
            .or_default()
            .push(Element::Backend(*k, *r));
    }
    for (set, elements) in deletes {
        push_elements(tx, DELETE_ELEMENTS, set, elements);
    }
    for (set, elements) in adds {
        push_elements(tx, ADD_ELEMENTS, set, elements);
    }
}

fn plan_hairpin(tx: &mut Transaction, have: &BTreeSet<Ipv4Addr>, want: &BTreeSet<Ipv4Addr>) {
    let deletes = have.difference(want).map(|ip| Element::Hairpin(*ip));
    let adds = want.difference(have).map(|ip| Element::Hairpin(*ip));
    push_elements(
        tx,
        DELETE_ELEMENTS,
        HAIRPIN_SET.to_owned(),
        deletes.collect(),
    );
    push_elements(tx, ADD_ELEMENTS, HAIRPIN_SET.to_owned(), adds.collect());
}

fn plan_map_elements(
    tx: &mut Transaction,
    map: MapName,
    have: &BTreeMap<MapKey, Verdict>,
    want: &BTreeMap<MapKey, Verdict>,
) {
    let changed = |from: &BTreeMap<MapKey, Verdict>, other: &BTreeMap<MapKey, Verdict>| {
        from.iter()
            .filter(|(k, v)| other.get(*k) != Some(*v))
            .map(|(k, v)| Element::Service(*k, v.clone()))
            .collect::<Vec<_>>()
    };
    let set = map.as_str().to_owned();
    push_elements(tx, DELETE_ELEMENTS, set.clone(), changed(have, want));
    push_elements(tx, ADD_ELEMENTS, set, changed(want, have));
}

/// Adds (in the add phase) or deletes (in the delete phase) `elements`.
fn push_elements(tx: &mut Transaction, phase: usize, set: String, elements: Vec<Element>) {
    if elements.is_empty() {
        return;
    }
    let command = match phase {
        DELETE_ELEMENTS => {
            tx.stats.elements_deleted += elements.len();
            Command::DeleteElements { set, elements }
        }
        _ => {
            tx.stats.elements_added += elements.len();
            Command::AddElements { set, elements }
        }
    };
    tx.push(phase, command);
}
