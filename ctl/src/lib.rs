//! swctl, the kubectl-style command line for Switchyard: `cli` is the
//! command line, `commands` one module per verb, `client` the gRPC calls,
//! `manifest` reading YAML/JSON, `output` kubectl's formats, `login` which
//! control plane and which credentials.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod commands;
pub mod login;
pub mod manifest;
pub mod output;
pub mod portforward;
