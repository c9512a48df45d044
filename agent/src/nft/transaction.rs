//! One atomic transaction on the agent's table, as structured commands.
//!
//! Commands are grouped in phases so that every reference is valid at the
//! moment it is made:
//!
//! 1. declare: sets new in this transaction;
//! 2. flush: chains to rewrite;
//! 3. delete elements: stale keys and keys whose value changes;
//! 4. rules of rewritten chains;
//! 5. add elements;
//! 6. delete sets nothing refers to now;
//! 7. the canary generation (see [`Transaction::set_generation`]).
//!
//! A value change is a delete plus an add: nft 1.0 has no element update,
//! and adding an existing key with other data fails the transaction.

use super::command::{self, Command, Element, SetKind};
use super::state::CANARY_SET;

/// What one transaction changes; all zero means nothing to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub chains_rewritten: usize,
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
