//! The agent's nftables data path: Kubernetes Service semantics in one table.
//!
//! Pure in the middle, IO at the edge: snapshot → [`layout::Index`] (the
//! desired table by Service) → a change's [`layout::delta`], one atomic
//! [`Transaction`] of element [`command`]s run by an [`NftRunner`]: the
//! agent's sends it as one [`netlink`] batch; tests and hollow agents can
//! take its nft script instead. A full load is one `nft -f` script
//! ([`layout::full_load`]). [`DataPath`] ties these together for the
//! agent. The table's shape, the same for any number of Services, is told
//! in [`layout`].

pub mod command;
pub mod datapath;
pub mod endpoints;
pub mod error;
pub mod fingerprint;
pub mod layout;
pub mod listing;
pub mod netlink;
pub mod runner;
pub mod state;
pub mod transaction;

pub use datapath::DataPath;
pub use error::{NftError, Result};
pub use layout::Live;
pub use runner::{NftCommand, NftRunner, RecordingRunner};
pub use transaction::{ApplyStats, Phase, Transaction};

/// The table the agent owns unless configured otherwise.
pub const DEFAULT_TABLE: &str = "switchyard";
