//! Cluster DNS, answered by every agent from its own snapshot.
//!
//! Kubernetes runs DNS as a separate deployment behind the `kube-dns`
//! Service; Switchyard has no such deployment because every agent already
//! holds the whole cluster. Each agent runs a responder on its node and the
//! data path sends the cluster DNS address (`--cluster-dns`, what pods have
//! as `nameserver`) to it through an ordinary DNAT Service
//! ([`dns_service`]), so no extra nftables code exists for DNS.
//!
//! - [`names`]: which part of the DNS schema a query name points at;
//! - [`records`]: the answers (pure, per the Kubernetes DNS specification);
//! - [`forward`]: relaying outside names to `--dns-upstream` resolvers,
//!   at most `--dns-forward-max` at once (REFUSED beyond, counted);
//! - [`server`]: the responder around them, over `udp` and `tcp`, our own
//!   loops that stop without dropping a query read. The cluster zone is
//!   answered without waiting (inline in the UDP read loop); only
//!   forwarded questions get tasks, bounded by the forwarder's cap;
//! - [`service`]: the synthetic Service that routes the cluster DNS address.
//!
//! The agent wires it as:
//! ```ignore
//! let server = dns::bind(listen, views.clone(), upstreams).await?; // fails fast
//! tokio::spawn(server.run());
//! // for every view, next to its Services in the data path's snapshot:
//! if let Some((key, entry)) = dns::dns_service_for(&view, listen, &node_name) {
//!     snapshot.services.insert(key, entry);
//! }
//! ```
//! (The cluster DNS address comes with the pushes, so the synthetic Service
//! is derived per view; [`dns_service`] builds it from an address directly.)

pub mod forward;
pub mod names;
pub mod records;
mod responder;
pub mod server;
pub mod service;
mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

pub use forward::{ForwardMetrics, DEFAULT_FORWARD_MAX};
pub use server::{bind, from_std, DnsServer, Serving};
pub use service::{dns_service, dns_service_for, DNS_SERVICE_NAME, DNS_SERVICE_NAMESPACE};

use crate::view::ClusterView;

/// Why the responder could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen for DNS on {proto} {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the DNS responder stopped: {0}")]
    Stopped(String),
    #[error(
        "--dns-listen {0} cannot receive the cluster DNS address: it must be one specific IPv4 address of this node"
    )]
    NotRoutable(SocketAddr),
}

/// Binds on `listen` and serves until a socket fails. Callers that want to
/// learn bind errors before spawning use [`bind`] then [`DnsServer::run`].
///
/// `view` is the agent's cluster view; `upstreams` are the `--dns-upstream`
/// resolvers for names outside the cluster domain (none: REFUSED).
pub async fn serve(
    listen: SocketAddr,
    view: watch::Receiver<Arc<ClusterView>>,
    upstreams: Vec<SocketAddr>,
) -> Result<(), DnsError> {
    bind(listen, view, upstreams).await?.run().await
}
