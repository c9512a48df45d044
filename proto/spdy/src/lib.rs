//! kubectl's port-forward protocol, server side: SPDY/3.1 framing
//! (`frame`, with the zlib header dictionary in `dictionary`) and the
//! `portforward.k8s.io` session over it (`portforward`), reached either by a
//! direct HTTP/1.1 `Upgrade: SPDY/3.1` or tunnelled through WebSocket.
//! No SPDY crate fit (the one on crates.io is GPL and client-only), so the
//! framing is written here, after the SPDY/3.1 draft.
#![forbid(unsafe_code)]

pub mod dictionary;
pub mod frame;
pub mod portforward;
