//! The agent's nftables data path: Kubernetes Service semantics in one table.
//!
//! Pure in the middle, IO at the edge:
//! snapshot → [`ruleset::compile`] → desired [`Ruleset`] →
//! [`diff::plan`] against the [`AppliedState`] (recorded, or read back by
//! [`live`]) → one atomic [`Transaction`] of [`command`]s run by an
//! [`NftRunner`]: the agent's sends it as one [`netlink`] batch; tests and
//! hollow agents can take its nft script instead.
//! [`DataPath`] ties these together for the agent. The ruleset shape is told
//! top to bottom in [`ruleset`].

pub mod command;
pub mod datapath;
pub mod diff;
pub mod endpoints;
pub mod error;
pub mod index;
pub mod layout;
pub mod listing;
pub mod live;
pub mod names;
pub mod netlink;
pub mod ruleset;
pub mod runner;
pub mod state;

pub use datapath::DataPath;
pub use diff::{plan, plan_touched, ApplyStats, Transaction};
pub use error::{NftError, Result};
pub use ruleset::compile;
pub use runner::{NftCommand, NftRunner, RecordingRunner};
pub use state::{AppliedState, Ruleset};

/// The table the agent owns unless configured otherwise.
pub const DEFAULT_TABLE: &str = "switchyard";
#[cfg(test)]
mod script_tests;
