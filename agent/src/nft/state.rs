//! The words every part of the data path shares: a Service address tuple,
//! a DNAT target, and the names of the table's fixed sets and chains.

use std::fmt;
use std::net::Ipv4Addr;

use crate::model::Protocol;

/// Name of the set holding the drift-detection generation (see `DataPath`).
pub const CANARY_SET: &str = "canary";
/// Chain refusing connections to a Service without endpoints: reset / port unreachable.
pub const REJECT_CHAIN: &str = "reject-chain";
/// Chain that sets [`MASQ_MARK`]; the postrouting hook masquerades marked packets.
pub const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
/// The packet-mark bit meaning "masquerade me" (kube-proxy's value).
pub const MASQ_MARK: u32 = 0x4000;
/// `endpoint . endpoint` pairs: traffic an endpoint sends to a Service
/// that lands back on itself (hairpin) must be masqueraded.
pub const HAIRPIN_SET: &str = "hairpin";

/// One DNAT target: `address . port` (of a protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} . {}", self.ip, self.port)
    }
}

/// A Service address tuple: `addr . proto . port`, or `proto . port` for
/// a NodePort (any local address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapKey {
    pub addr: Option<Ipv4Addr>,
    pub protocol: Protocol,
    pub port: u16,
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(addr) = self.addr {
            write!(f, "{addr} . ")?;
        }
        write!(f, "{} . {}", self.protocol, self.port)
    }
}
