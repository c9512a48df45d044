//! The agent's table: its chains and rules are the same for one Service or
//! 100,000, every per-Service and per-endpoint
//! fact being a set or map element. Adding, removing or changing a Service
//! only adds and deletes elements, which never makes the kernel re-validate
//! the table (a new chain, rule or jump element does, at a cost that grows
//! with every chain and verdict element reachable from the base chains).
//!
//! Each Service address is a tuple `T = daddr . proto . dport` (a NodePort:
//! `proto . dport`), and what the Service wants for it is which sets `T` is
//! in ([`Fact`]) plus its DNAT slots:
//!
//! ```text
//! services           T @cluster-ips        goto cluster-ip      masquerade unless from this node's pods
//!                    T @cluster-ips-local  goto local-dispatch  internal policy Local
//!                    T @external-ips       goto external        externalIPs, LB IPs: masquerade
//!                    T @external-ips-local goto external-local  external policy Local
//!                    fib daddr type local, N @node-ports(-local) goto node-port(-local)
//! cluster-dispatch   dnat ip to saddr . T map @affinity          a remembered client's backend
//!                    dnat ip to T . numgen random mod n offset n<<16 map @service-backends   n = 1..64
//!                    dnat ip to T . numgen random mod 16384 offset 1<<24 map @service-backends
//!                    drop
//! ```
//!
//! The `numgen` offset names the endpoint count: a tuple with n endpoints
//! has the slots `n<<16 | i` (i < n), so only the rule with its own n finds
//! a key; the others miss and fall through. Uniform among exactly n, with
//! one fixed rule per n instead of a chain (or a verdict element) per
//! Service. Above 64 endpoints a tuple gets 16,384 slots filled in turn
//! (relative skew at most 1/⌊16384/n⌋). Local dispatch keys carry bit 31.
//! Filtering runs before DNAT (priority -110): `@reject-ips`, `@drop-ips`,
//! `@reject-node-ports` (no usable endpoint) and `@firewalled-ips` with one
//! `T . saddr` interval set for `loadBalancerSourceRanges`.
//!
//! ClientIP affinity: every dispatch chain first looks the client and
//! tuple up in the dynamic map `@affinity` (`saddr . daddr . proto . port
//! : backend`), which nat postrouting fills for tuples in an affinity
//! timeout's sets (`@affinity-<seconds>`, `@affinity-node-ports-<seconds>`,
//! one record rule per protocol and set: a timeout is a constant of the
//! rule writing it). So the record chain, alone, grows with the number of
//! distinct timeouts (6 rules each; kube's default, 10800 s, is the one
//! most clusters have), never with Services. A backend that goes has its
//! remembered clients deleted ([`stranded`]).
//!
//! The agent adds and deletes elements over netlink ([`delta`] of an
//! [`Index`] update); a full load is one `nft -f` script
//! ([`full_load`]) that rewrites the table in place, and a listing reads
//! back into a [`Live`] for the periodic full resync.

mod affinity;
mod compile;
mod delta;
mod index;
mod live;
mod render;
mod table;

pub use affinity::{may_strand, read as read_remembered, stranded, Remembered};
pub use compile::{compile, service, Wanted};
pub use delta::delta;
pub use index::{Change, Index};
pub use live::{read as read_live, Live};
pub use render::{full_load, render, AFFINITY};
pub use table::{dispatch_slots, Fact, Table, TupleFacts, EXACT_MAX, LOCAL_SLOTS, MANY_SLOTS};
