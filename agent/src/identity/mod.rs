//! This node's identity: a certificate for `node:<name>` signed by the
//! cluster CA, kept with the CA in `--state-dir`. A first start trades a
//! join token for it ([`join`]); later starts load it ([`state`]); the
//! agent renews it itself at about 80% of its lifetime ([`renew`]).

pub mod join;
pub mod renew;
pub mod state;

pub use join::{join, JoinError};
pub use state::NodeCredentials;
