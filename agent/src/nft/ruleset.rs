//! Compiles a [`Snapshot`] into the desired [`Ruleset`] of the agent's table.
//!
//! The shape follows kube-proxy's nftables mode, top to bottom:
//!
//! ```text
//! table ip switchyard                                   (only table we touch)
//!   set canary                 { type mark }            generation, for drift checks
//!   map service-ips            { ipv4_addr . inet_proto . inet_service : verdict }
//!   map service-nodeports      { inet_proto . inet_service : verdict }
//!   map no-endpoint-services   { ipv4_addr . inet_proto . inet_service : verdict }
//!   map no-endpoint-nodeports  { inet_proto . inet_service : verdict }
//!   map firewall-ips           { ipv4_addr . inet_proto . inet_service : verdict }
//!
//!   # base chains: filtering runs before DNAT (-110) so it sees service addresses
//!   chain filter-prerouting hook prerouting -110: ct state new jump firewall-check
//!   chain filter-input    hook input   -110: ct state new jump nodeport-endpoints-check
//!                                              ct state new jump service-endpoints-check
//!   chain filter-forward  hook forward -110: ct state new jump service-endpoints-check
//!   chain filter-output   hook output  -110: ct state new jump firewall-check
//!                                              ct state new jump service-endpoints-check
//!   chain nat-prerouting  hook prerouting -100: jump services      (from pods, from outside)
//!   chain nat-output      hook output     -100: jump services      (from the host itself)
//!   chain nat-postrouting hook postrouting 100: jump masquerading
//!
//!   # one O(1) lookup per packet, whatever the number of services
//!   chain services
//!     ip daddr . meta l4proto . th dport vmap @service-ips
//!     fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
//!   chain service-endpoints-check    ip daddr . meta l4proto . th dport vmap @no-endpoint-services
//!   chain nodeport-endpoints-check   fib daddr type local … vmap @no-endpoint-nodeports
//!   chain firewall-check             ip daddr . meta l4proto . th dport vmap @firewall-ips
//!   chain reject-chain               TCP reset, else ICMP port unreachable
//!   chain mark-for-masquerade        meta mark |= 0x4000
//!   chain masquerading               hairpin pairs → mark; unmarked → return; clear mark;
//!                                    masquerade fully-random
//!
//!   # per service port (names are hashes of ns/name/proto/port, see `names`)
//!   chain svc-<h>    cluster policy: mark if the source is outside this node's pod
//!                    CIDR (all sources when unknown); then one DNAT:
//!                    meta l4proto <p> dnat ip to numgen random mod 16384 offset B map @backend-ranges-<p>-<s>
//!   chain local-<h>  local policy: the same DNAT over local endpoints (own key range)
//!   chain ext-<h>    NodePort / external / LB entry:
//!                      Cluster policy: mark; goto svc-<h>
//!                      Local policy:   pods of this node → goto svc-<h>;
//!                                      the host → mark, goto svc-<h>;
//!                                      others → goto local-<h> (drop when none),
//!                                      unmarked, so the client address is kept
//!   chain fw-<h>     loadBalancerSourceRanges: ip saddr <range> return (per
//!                    range, plus the LB IPs when a range holds a node IP:
//!                    a node reaching its own LB IP may loop back from it);
//!                    drop
//!
//!   # endpoints are map elements, not chains
//!   map backend-ranges-<p>-<s>  { numgen range : endpoint . targetPort }   64 shards per protocol,
//!                    flags interval; each dispatching chain owns keys B..B+16383
//!                    (see `Slots`), split evenly among its N endpoints, so the
//!                    rule stays the same when N changes (see `BackendRange`)
//!   set hairpin      { endpoint . endpoint }: masquerading marks traffic whose
//!                    source is the endpoint it was DNATed to (hairpin); only
//!                    this node's endpoints (in its pod CIDR or naming it)
//!                    can send through its hooks unmarked, so only they are
//!                    listed (all of them when the pod CIDR is unknown)
//!
//!   # ClientIP session affinity keeps kube-proxy's per-endpoint shape:
//!   chain svc-<h>    ip saddr @aff-<e> goto ep-<e> (per endpoint); numgen vmap → ep-<e>
//!   chain ep-<e>     ip saddr <ep> jump mark-for-masquerade; update @aff-<e> { ip saddr };
//!                    meta l4proto <p> dnat to <ep>:<targetPort>
//!   set aff-<e>      { type ipv4_addr; flags dynamic,timeout; timeout N }
//! ```
//!
//! Why no chain (or anonymous map) per endpoint: every `nft -f` lists all
//! chains and sets of the table before it runs (nft 1.0), and the kernel
//! resumes that listing from the start for each netlink message, so a delta
//! at 10,000 Services × 10 endpoints cost seconds with 110,000 chains. With
//! one chain per Service port and 192 shared maps it costs tens of ms, and
//! deltas sent as netlink batches (see `netlink`) skip the listing. What is
//! left grows with the table in the kernel: a commit that adds a jump, goto
//! or NAT rule makes nf_tables re-validate every chain reachable from the
//! base chains, walking the verdict maps element by element. Endpoint churn
//! avoids it (only backend ranges change); adding a Service cannot.
//!
//! Map elements per service port:
//! - ClusterIP: `service-ips` → `svc-<h>` (or `local-<h>` with internal policy
//!   Local); with no usable endpoint, `no-endpoint-services` → reject when the
//!   service has no endpoints at all, drop when only the Local set is empty.
//! - externalIPs, LB IPs (`service-ips`) and the NodePort (`service-nodeports`)
//!   → `ext-<h>`; with no endpoint at all, the `no-endpoint-*` maps → reject.
//! - LB IPs of a Service with source ranges (`firewall-ips`) → `fw-<h>`, as
//!   kube-proxy does: only connections to the LB IPs are checked, not those
//!   to NodePorts or externalIPs.
//!
//! Headless and ExternalName services (no ClusterIP) program nothing.
//! The first rule of every chain carries a `sy:<fingerprint>` comment; the
//! differ compares fingerprints to decide which chains to rewrite.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::endpoints::{backends_for, Backend, PortBackends};
use super::names;
use super::state::{
    backends_map, BackendRange, BaseHook, ChainSpec, MapKey, MapName, Ruleset, Slots, Target,
    Verdict, CHAIN_KEYS, HAIRPIN_SET, MARK_MASQ_CHAIN, MASQ_MARK, REJECT_CHAIN,
};
use crate::model::{NodeContext, ServiceEntry, ServiceKey, ServicePortEntry, Snapshot};

/// Compiles the whole desired table. Pure: same inputs, same ruleset.
pub fn compile(ctx: &NodeContext, snap: &Snapshot) -> Ruleset {
    let mut rs = skeleton();
    let mut slots = Slots::default();
    for (key, svc) in &snap.services {
        compile_service(ctx, key, svc, &mut rs, &mut slots);
    }
    rs
}

/// Adds what one Service contributes: the unit an incremental apply
/// recompiles (see [`super::index`]). `slots` hands out backend-map keys.
pub fn compile_service(
    ctx: &NodeContext,
    key: &ServiceKey,
    svc: &ServiceEntry,
    rs: &mut Ruleset,
    slots: &mut Slots,
) {
    let Some(vip) = svc.cluster_ip else {
        return;
    };
    for port in &svc.ports {
        PortCompiler::new(ctx, key, svc, vip, port).compile(rs, slots);
    }
}

/// The fixed part: base chains, dispatch chains, empty maps.
pub fn skeleton() -> Ruleset {
    let mut rs = Ruleset::default();
    for map in MapName::ALL {
        rs.maps.insert(map, BTreeMap::new());
    }
    let jump_new = |chain: &str| format!("ct state new jump {chain}");
    let base = [
        (
            "filter-prerouting",
            "filter",
            "prerouting",
            -110,
            vec![jump_new("firewall-check")],
        ),
        (
            "filter-input",
            "filter",
            "input",
            -110,
            vec![
                jump_new("nodeport-endpoints-check"),
                jump_new("service-endpoints-check"),
            ],
        ),
        (
            "filter-forward",
            "filter",
            "forward",
            -110,
            vec![jump_new("service-endpoints-check")],
        ),
        (
            "filter-output",
            "filter",
            "output",
            -110,
            vec![
                jump_new("firewall-check"),
                jump_new("service-endpoints-check"),
            ],
        ),
        (
            "nat-prerouting",
            "nat",
            "prerouting",
            -100,
            vec!["jump services".to_owned()],
        ),
        (
            "nat-output",
            "nat",
            "output",
            -100,
            vec!["jump services".to_owned()],
        ),
        (
            "nat-postrouting",
            "nat",
            "postrouting",
            100,
            vec!["jump masquerading".to_owned()],
        ),
    ];
    for (name, kind, hook, priority, rules) in base {
        let mut spec = ChainSpec::new(name, rules);
        spec.base = Some(BaseHook {
            kind,
            hook,
            priority,
        });
        rs.chains.insert(name.to_owned(), spec);
    }
    let local_dst = "fib daddr type local ip daddr != 127.0.0.0/8";
    let tuple = "meta l4proto . th dport";
    let fixed = [
        (
            "services",
            vec![
                format!("ip daddr . {tuple} vmap @{}", MapName::ServiceIps.as_str()),
                format!(
                    "{local_dst} {tuple} vmap @{}",
                    MapName::ServiceNodePorts.as_str()
                ),
            ],
        ),
        (
            "service-endpoints-check",
            vec![format!(
                "ip daddr . {tuple} vmap @{}",
                MapName::NoEndpointServices.as_str()
            )],
        ),
        (
            "firewall-check",
            vec![format!(
                "ip daddr . {tuple} vmap @{}",
                MapName::FirewallIps.as_str()
            )],
        ),
        (
            "nodeport-endpoints-check",
            vec![format!(
                "{local_dst} {tuple} vmap @{}",
                MapName::NoEndpointNodePorts.as_str()
            )],
        ),
        (
            REJECT_CHAIN,
            vec![
                "meta l4proto tcp reject with tcp reset".to_owned(),
                "reject".to_owned(),
            ],
        ),
        (
            MARK_MASQ_CHAIN,
            vec![format!("meta mark set meta mark or {MASQ_MARK:#x}")],
        ),
        (
            "masquerading",
            vec![
                format!("ip saddr . ip daddr @{HAIRPIN_SET} jump {MARK_MASQ_CHAIN}"),
                format!("meta mark and {MASQ_MARK:#x} == 0 return"),
                format!("meta mark set meta mark xor {MASQ_MARK:#x}"),
                "masquerade fully-random".to_owned(),
            ],
        ),
    ];
    for (name, rules) in fixed {
        rs.chains
            .insert(name.to_owned(), ChainSpec::new(name, rules));
    }
    rs
}

/// Compiles one Service port: its chains and its map elements.
struct PortCompiler<'a> {
    ctx: &'a NodeContext,
    svc: &'a ServiceEntry,
    vip: Ipv4Addr,
    port: &'a ServicePortEntry,
    id: String,
    backends: PortBackends,
}

impl<'a> PortCompiler<'a> {
    fn new(
        ctx: &'a NodeContext,
        key: &ServiceKey,
        svc: &'a ServiceEntry,
        vip: Ipv4Addr,
        port: &'a ServicePortEntry,
    ) -> Self {
        Self {
            ctx,
            svc,
            vip,
            port,
            id: names::service_port_id(key, port),
            backends: backends_for(svc, port, ctx),
        }
    }

    fn compile(&self, rs: &mut Ruleset, slots: &mut Slots) {
        let cluster_chain = names::cluster_chain(&self.id);
        let local_chain = names::local_chain(&self.id);
        if self.needs_cluster_chain() {
            let mut rules = vec![self.cluster_masquerade_rule()];
            rules.extend(self.dispatch(rs, slots, &cluster_chain, &self.backends.cluster));
            rs.chains
                .insert(cluster_chain.clone(), ChainSpec::new(&self.id, rules));
        }
        if self.needs_local_chain() {
            let rules = self.dispatch(rs, slots, &local_chain, &self.backends.local);
            rs.chains.insert(
                local_chain.clone(),
                ChainSpec::new(format!("{} local", self.id), rules),
            );
        }
        self.add_cluster_ip_element(rs, &cluster_chain, &local_chain);
        if self.has_external() {
            self.add_external(rs, &cluster_chain, &local_chain);
        }
        self.add_firewall(rs);
    }

    /// Drops connections to the LB IPs from outside the source ranges,
    /// endpoints or not (a refused source must not learn whether there are).
    fn add_firewall(&self, rs: &mut Ruleset) {
        let ranges = &self.svc.load_balancer_source_ranges;
        if ranges.is_empty() || self.svc.load_balancer_ips.is_empty() {
            return;
        }
        let chain = names::firewall_chain(&self.id);
        let mut rules: Vec<String> = ranges
            .iter()
            .map(|r| format!("ip saddr {r} return"))
            .collect();
        let holds_node = ranges
            .iter()
            .any(|r| self.ctx.node_ips.iter().any(|ip| r.contains(ip)));
        if holds_node {
            rules.extend(
                self.svc
                    .load_balancer_ips
                    .iter()
                    .map(|ip| format!("ip saddr {ip} return")),
            );
        }
        rules.push("drop".to_owned());
        rs.chains.insert(
            chain.clone(),
            ChainSpec::new(format!("{} firewall", self.id), rules),
        );
        for ip in &self.svc.load_balancer_ips {
            let key = MapKey {
                addr: Some(*ip),
                protocol: self.port.protocol,
                port: self.port.port,
            };
            rs.insert_element(
                MapName::FirewallIps,
                key,
                Verdict::Goto(chain.clone()),
                &self.id,
            );
        }
    }

    fn has_external(&self) -> bool {
        self.port.node_port.is_some()
            || !self.svc.external_ips.is_empty()
            || !self.svc.load_balancer_ips.is_empty()
    }

    /// Used by ClusterIP traffic with policy Cluster, and by external traffic
    /// (policy Cluster, or the pod/host short-circuit of policy Local).
    fn needs_cluster_chain(&self) -> bool {
        !self.backends.cluster.is_empty()
            && (!self.svc.internal_traffic_local || self.has_external())
    }

    fn needs_local_chain(&self) -> bool {
        let external_local = self.has_external() && self.svc.external_traffic_local;
        !self.backends.local.is_empty() && (self.svc.internal_traffic_local || external_local)
    }

    /// ClusterIP traffic that may leave for another node is masqueraded unless
    /// it comes from this node's pods, so replies come back through us.
    fn cluster_masquerade_rule(&self) -> String {
        let (vip, proto, port) = (self.vip, self.port.protocol, self.port.port);
        match self.ctx.pod_cidr {
            Some(cidr) => format!(
                "ip daddr {vip} {proto} dport {port} ip saddr != {cidr} jump {MARK_MASQ_CHAIN}"
            ),
            None => format!("ip daddr {vip} {proto} dport {port} jump {MARK_MASQ_CHAIN}"),
        }
    }

    /// The rules that pick an endpoint, plus what they refer to: with
    /// ClientIP affinity, per-endpoint chains and sets; otherwise one DNAT
    /// through the chain's key range of a backend map, no chain per endpoint
    /// (every extra chain or set makes each later nft run list it).
    fn dispatch(
        &self,
        rs: &mut Ruleset,
        slots: &mut Slots,
        chain: &str,
        backends: &[Backend],
    ) -> Vec<String> {
        if self.svc.session_affinity_timeout.is_some() {
            self.add_endpoint_chains(rs, backends);
            return self.affinity_rules(backends);
        }
        let max = CHAIN_KEYS as usize;
        if backends.len() > max {
            tracing::warn!(
                chain,
                endpoints = backends.len(),
                max,
                "too many endpoints for one chain; using the first"
            );
        }
        let backends = &backends[..backends.len().min(max)];
        let base = slots.base(chain);
        for (b, (first, last)) in backends.iter().zip(split_range(base, backends.len())) {
            let target = Target {
                ip: b.ip,
                port: b.port,
                protocol: self.port.protocol,
            };
            rs.backends.insert(first, BackendRange { last, target });
            if self.backends.may_hairpin(self.ctx, b) {
                rs.hairpin.insert(b.ip);
            }
        }
        vec![format!(
            "meta l4proto {} dnat ip to numgen random mod {CHAIN_KEYS} offset {base} map @{}",
            self.port.protocol,
            backends_map(self.port.protocol, base)
        )]
    }

    /// Affinity lookups (one per endpoint) then a uniform random choice.
    fn affinity_rules(&self, backends: &[Backend]) -> Vec<String> {
        let mut rules = Vec::new();
        if let Some(timeout) = self.svc.session_affinity_timeout {
            for b in backends {
                let ep_id = self.endpoint_id(b);
                let set = names::affinity_set(&ep_id, timeout);
                rules.push(format!(
                    "ip saddr @{set} goto {}",
                    names::endpoint_chain(&ep_id)
                ));
            }
        }
        let arms: Vec<String> = backends
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{i} : goto {}", names::endpoint_chain(&self.endpoint_id(b))))
            .collect();
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            backends.len(),
            arms.join(", ")
        ));
        rules
    }

    fn add_endpoint_chains(&self, rs: &mut Ruleset, backends: &[Backend]) {
        for b in backends {
            let ep_id = self.endpoint_id(b);
            let mut rules = vec![format!("ip saddr {} jump {MARK_MASQ_CHAIN}", b.ip)];
            if let Some(timeout) = self.svc.session_affinity_timeout {
                let set = names::affinity_set(&ep_id, timeout);
                rules.push(format!("update @{set} {{ ip saddr }}"));
                rs.affinity_sets.insert(set, timeout);
            }
            rules.push(format!(
                "meta l4proto {} dnat to {}:{}",
                self.port.protocol, b.ip, b.port
            ));
            rs.chains
                .insert(names::endpoint_chain(&ep_id), ChainSpec::new(ep_id, rules));
        }
    }

    fn endpoint_id(&self, b: &Backend) -> String {
        names::endpoint_id(&self.id, b.ip, b.port)
    }

    fn add_cluster_ip_element(&self, rs: &mut Ruleset, cluster_chain: &str, local_chain: &str) {
        let key = MapKey {
            addr: Some(self.vip),
            protocol: self.port.protocol,
            port: self.port.port,
        };
        let (internal, target) = match self.svc.internal_traffic_local {
            true => (&self.backends.local, local_chain),
            false => (&self.backends.cluster, cluster_chain),
        };
        if !internal.is_empty() {
            rs.insert_element(
                MapName::ServiceIps,
                key,
                Verdict::Goto(target.to_owned()),
                &self.id,
            );
        } else {
            rs.insert_element(
                MapName::NoEndpointServices,
                key,
                self.no_endpoint_verdict(),
                &self.id,
            );
        }
    }

    /// Reject when the service has no endpoint at all; drop when endpoints
    /// exist but none may be used under a Local policy (as kube-proxy does).
    fn no_endpoint_verdict(&self) -> Verdict {
        match self.backends.cluster.is_empty() {
            true => Verdict::reject(),
            false => Verdict::Drop,
        }
    }

    fn add_external(&self, rs: &mut Ruleset, cluster_chain: &str, local_chain: &str) {
        let ext_chain = names::external_chain(&self.id);
        let reachable = !self.backends.cluster.is_empty();
        let (ip_map, port_map, verdict) = match reachable {
            true => (
                MapName::ServiceIps,
                MapName::ServiceNodePorts,
                Verdict::Goto(ext_chain.clone()),
            ),
            false => (
                MapName::NoEndpointServices,
                MapName::NoEndpointNodePorts,
                Verdict::reject(),
            ),
        };
        let mut ips: Vec<Ipv4Addr> = self
            .svc
            .external_ips
            .iter()
            .chain(&self.svc.load_balancer_ips)
            .copied()
            .collect();
        ips.sort();
        ips.dedup();
        let (protocol, port) = (self.port.protocol, self.port.port);
        for ip in ips {
            rs.insert_element(
                ip_map,
                MapKey {
                    addr: Some(ip),
                    protocol,
                    port,
                },
                verdict.clone(),
                &self.id,
            );
        }
        if let Some(node_port) = self.port.node_port {
            rs.insert_element(
                port_map,
                MapKey {
                    addr: None,
                    protocol,
                    port: node_port,
                },
                verdict,
                &self.id,
            );
        }
        if reachable {
            let rules = self.external_rules(cluster_chain, local_chain);
            rs.chains.insert(
                ext_chain,
                ChainSpec::new(format!("{} external", self.id), rules),
            );
        }
    }

    fn external_rules(&self, cluster_chain: &str, local_chain: &str) -> Vec<String> {
        if !self.svc.external_traffic_local {
            return vec![
                format!("jump {MARK_MASQ_CHAIN}"),
                format!("goto {cluster_chain}"),
            ];
        }
        let mut rules = Vec::new();
        if let Some(cidr) = self.ctx.pod_cidr {
            // Pods of this node reaching an external address are treated as if
            // they went out and came back through a load balancer: any endpoint.
            rules.push(format!("ip saddr {cidr} goto {cluster_chain}"));
        }
        // The host's own traffic carries a local source address: masquerade it.
        rules.push(format!("fib saddr type local jump {MARK_MASQ_CHAIN}"));
        rules.push(format!("fib saddr type local goto {cluster_chain}"));
        match self.backends.local.is_empty() {
            true => rules.push("drop".to_owned()),
            false => rules.push(format!("goto {local_chain}")),
        }
        rules
    }
}

/// Splits the chain range starting at `base` into `n` contiguous
/// `(first, last)` ranges whose sizes differ by at most one key, so each
/// of `n` endpoints gets its share of `numgen random mod CHAIN_KEYS`
/// within 1/16,384. `n` is at most `CHAIN_KEYS`.
fn split_range(base: u32, n: usize) -> impl Iterator<Item = (u32, u32)> {
    let n = n as u64;
    // In u64: the last chain's range ends at u32::MAX.
    let boundary = move |i: u64| u64::from(base) + i * u64::from(CHAIN_KEYS) / n.max(1);
    (0..n).map(move |i| (boundary(i) as u32, (boundary(i + 1) - 1) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_the_chain_range_evenly() {
        let ranges: Vec<(u32, u32)> = split_range(16384, 3).collect();
        assert_eq!(
            ranges,
            [(16384, 21844), (21845, 27305), (27306, 32767)],
            "5461, 5461 and 5462 keys"
        );
        assert_eq!(split_range(0, 1).collect::<Vec<_>>(), [(0, 16383)]);
        let last_chain = u32::MAX - CHAIN_KEYS + 1;
        let all: Vec<(u32, u32)> = split_range(last_chain, CHAIN_KEYS as usize).collect();
        assert_eq!(all.len(), 16384);
        assert!(all.iter().all(|(first, last)| first == last));
        assert_eq!(all.last(), Some(&(u32::MAX, u32::MAX)));
    }
}
