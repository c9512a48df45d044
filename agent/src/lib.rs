//! switchyard-agent: keeps one snapshot stream to the control plane and
//! programs this host's nftables from it.
//!
//! `sync` is the stream client and `runtime` the loop around it; `view`
//! folds pushes into the agent's picture of the cluster; `model` and `nft`
//! turn that into an nftables table; `conntrack` clears stale UDP flows;
//! `probe` runs readiness probes for pods on this node; `identity` joins
//! the cluster and keeps this node's certificate renewed, `connection` the
//! channel that carries it; `mirror` turns the host's pod manifests into
//! mirror pods; `handover` and `systemd` keep the node's listening sockets
//! open across a restart (a new agent beside the old one, or systemd's).
#![forbid(unsafe_code)]

pub mod connection;
pub mod conntrack;
mod cpu;
pub mod dns;
pub mod handover;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod mirror;
pub mod model;
pub mod nft;
pub mod probe;
pub mod runtime;
mod sync;
pub mod systemd;
pub mod tunnel;
pub mod view;
