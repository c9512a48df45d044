//! # switchyard-lab: a multi-node network-namespace lab
//!
//! Builds a small "cluster" of Linux network namespaces on one machine, so the
//! demo and every end-to-end test can run a control plane and one agent per
//! node against real nftables, without touching the host's own network:
//! no address, route, rule or veth end is ever placed in the root namespace,
//! and no namespace has an uplink.
//!
//! ## Topology (`<p>` = the lab's unique prefix, e.g. `sy1234x0`)
//! | namespace | role | address |
//! | --- | --- | --- |
//! | `<p>-br` | Linux bridge `br0` joining all hosts | none |
//! | `<p>-cp` | control plane | 172.18.0.2/24 on `eth0` |
//! | `<p>-n<i>` | node i (1-based), owns pod CIDR 10.244.i.0/24 | 172.18.0.(10+i)/24 on `eth0` |
//! | `<p>-n<i>-p<j>` | pod j of node i | 10.244.i.(10+j)/32 on `eth0` |
//! | `<p>-client` | external client | 172.18.0.100/24 on `eth0` |
//!
//! Every host is dual-stack: the IPv6 address spells the IPv4 one's last
//! octet in its last group — control plane fd00:172:18::2/64, node i
//! fd00:172:18::(10+i)/64 owning pod CIDR fd00:10:244:i::/64, its pod j
//! fd00:10:244:i::(10+j)/128, client fd00:172:18::100/64 — wired and routed
//! the same way (node-side pod gateway fd00:10:244:i::1, default routes via
//! fd00:172:18::1, IPv6 forwarding on nodes, no duplicate address detection).
//!
//! Each pod hangs off its node on a point-to-point veth (node side `vp<j>`,
//! address 10.244.i.1/32 plus a host route to the pod; pod default route via
//! 10.244.i.1 onlink). Nodes forward (`ip_forward=1`), all namespaces have
//! `rp_filter=0`, and nodes and the control plane route every other node's pod
//! CIDR via that node's address: pods reach pods on any node and every node
//! IP; nodes reach all pods. Nodes have a default route via 172.18.0.1, where
//! nothing answers: it only makes node-local traffic to service VIPs routable
//! (the route lookup precedes nftables output DNAT), as on a real host. A node talks to its own pods from 10.244.i.1 and
//! to other nodes' pods from its node IP. The client reaches node IPs only
//! (NodePorts) until a test adds a route with [`Lab::add_route_via`].
//!
//! ## API
//! - [`Lab::new`]`(`[`LabConfig`]` { nodes, pods_per_node })` builds it all (defaults 2 and 2);
//!   dropping the [`Lab`] stops spawned processes, then deletes every namespace
//!   (errors are logged to stderr, never raised). [`Lab::with_prefix`] picks
//!   the prefix explicitly.
//! - [`Lab::node`]`(i)`, [`Lab::pod`]`(i, j)`, [`Lab::control_plane`], [`Lab::client`]
//!   return a [`Host`] `{ name, ns, ip, pod_cidr, node, .. }`; [`Lab::prefix`].
//! - [`Lab::exec`]`(ns, &[args])` runs `ip netns exec ns args…` and returns
//!   the [`std::process::Output`]; [`Lab::exec_ok`] returns stdout or an error
//!   carrying stderr.
//! - [`Lab::spawn`]`(ns, &[args])` starts a background process whose output goes
//!   to a log file; the returned [`ChildGuard`] stops it on drop and offers
//!   [`ChildGuard::log`] and [`ChildGuard::wait_for_log`] for readiness and
//!   failure messages.
//! - [`Lab::add_route_via`]`(ns, cidr, via)` adds a route inside a lab namespace.
//! - [`require_root`]`(test_name)` gates e2e tests: skip loudly, or panic when
//!   `SWITCHYARD_E2E=1`.
//! - [`down`]`(prefix)` removes leftover namespaces (after a `kill -9`).
//!
//! Logs of spawned processes live in `$TMPDIR/switchyard-lab-<prefix>/`; they
//! are kept when the lab drops during a panic or with `SWITCHYARD_LAB_KEEP_LOGS`.
//!
//! ```no_run
//! use switchyard_lab::{require_root, Lab, LabConfig};
//!
//! # fn main() -> Result<(), switchyard_lab::LabError> {
//! if !require_root("example") {
//!     return Ok(());
//! }
//! let lab = Lab::new(LabConfig { nodes: 2, pods_per_node: 2 })?;
//! let pod = lab.pod(2, 1);
//! let backend = lab.spawn(&pod.ns, &["switchyard-lab", "backend", "--name", "b1", "--listen", "0.0.0.0:8080"])?;
//! backend.wait_for_log("ready", std::time::Duration::from_secs(5))?;
//! let url = format!("http://{}:8080/", pod.ip);
//! let body = lab.exec_ok(&lab.node(1).ns, &["curl", "-sS", url.as_str()])?;
//! assert!(body.starts_with("b1 172.18.0.11:"));
//! # Ok(())
//! # }
//! ```

mod child;
mod cleanup;
pub mod cluster;
mod cmd;
mod dns_queries;
mod dns_tally;
mod error;
pub mod etcd;
mod lab;
mod root;
pub mod service_manager;
mod topology;

pub use child::ChildGuard;
pub use cleanup::{down, list_namespaces, namespaces_with_prefix};
pub use cmd::find_tool;
pub use dns_queries::DnsQueries;
pub use dns_tally::DnsTally;
pub use error::{LabError, Result};
pub use lab::Lab;
pub use root::{
    is_root, missing_requirement, require_etcd, require_kubectl, require_packaging, require_root,
};
pub use service_manager::ServiceManager;
pub use topology::{
    node_ip, pod_cidr, pod_gateway, pod_ip, Host, LabConfig, CLIENT_IP, CONTROL_PLANE_IP,
    MAX_NODES, MAX_PODS_PER_NODE, NODE_GATEWAY,
};

/// Polls `check` every 100 ms until it yields a value, for at most
/// `timeout`; panics naming `what` past it. For tests waiting on a state
/// they cannot be told about (a node turning Ready, a port answering).
pub fn eventually<T>(
    what: &str,
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
