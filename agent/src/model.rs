//! Plain data the snapshot client fills from the wire and the data path reads.
//!
//! These types carry no IO and no generated protobuf code: the snapshot client
//! converts `switchyard.v1` messages into them in one place, so the nftables
//! compiler (and its tests) never see the wire format.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;

/// The node label that names the node's zone, as in Kubernetes.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What this agent knows about the host it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeContext {
    /// Matched against `EndpointEntry::node_name` for `Local` traffic policies.
    pub node_name: String,
    /// The node's own addresses (informational: NodePorts match any local
    /// address through `fib daddr type local`, as kube-proxy does).
    pub node_ips: Vec<Ipv4Addr>,
    /// Pods on this node live here. Traffic from outside it is masqueraded when
    /// it may be sent to another node; `None` masquerades everything (kube-proxy's
    /// `masqueradeAll`), the safe choice when the pod network is unknown.
    pub pod_cidr: Option<Ipv4Net>,
    /// The node's `topology.kubernetes.io/zone` label: endpoints hinted for
    /// it are preferred under `trafficDistribution`.
    pub zone: Option<String>,
}

/// One complete, versioned view of every Service the node must serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    pub services: BTreeMap<ServiceKey, ServiceEntry>,
}

/// `namespace/name` of a Service; ordered so compilation is deterministic.
/// Shared strings: keys are cloned into every map node a change copies (the
/// view is a persistent map), so a clone must not allocate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service as the data path needs it: addresses, ports, policies, endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// `None` for headless and ExternalName services: nothing is programmed.
    pub cluster_ip: Option<Ipv4Addr>,
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    pub ports: Vec<ServicePortEntry>,
    /// `Some(seconds)` when `sessionAffinity: ClientIP`.
    pub session_affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy: Local`.
    pub internal_traffic_local: bool,
    /// `externalTrafficPolicy: Local`.
    pub external_traffic_local: bool,
    pub endpoints: Vec<EndpointEntry>,
    /// `spec.loadBalancerSourceRanges`: the only sources the LB IPs
    /// accept; empty accepts any.
    pub load_balancer_source_ranges: Vec<Ipv4Net>,
}

/// An endpoint's EndpointSlice hints: the zones and nodes that should use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    pub zones: Vec<String>,
    pub nodes: Vec<String>,
}

/// One `spec.ports[]` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortEntry {
    /// May be empty for single-port services; endpoints match it by name.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
}

/// One endpoint address with its conditions, as an EndpointSlice carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    /// Where `trafficDistribution` wants it used; `None` for no hints
    /// (nearly always: shared, so unhinted endpoints cost one pointer).
    pub hints: Option<Arc<Hints>>,
    pub ip: Ipv4Addr,
    pub node_name: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// The resolved target ports; a service port is served by the endpoint port
    /// with the same name and protocol (how EndpointSlices resolve named
    /// `targetPort`s per pod). Shared by the endpoints of a Service that
    /// resolve to the same list, which is nearly all of them.
    pub ports: Arc<[EndpointPortEntry]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPortEntry {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// Transport protocols a Service port may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The keyword nft uses (also the `inet_proto` spelling in map keys).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// Parses nft's spelling, including the numeric form it prints for
    /// protocols it has no name for.
    pub fn from_nft(s: &str) -> Option<Self> {
        match s {
            "tcp" | "6" => Some(Protocol::Tcp),
            "udp" | "17" => Some(Protocol::Udp),
            "sctp" | "132" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
