//! [`Table`] → one `nft -f` script that creates the whole table: fixed
//! chains (the same for any number of Services) and the elements; and
//! [`full_load`], which rewrites a table in place in one transaction.

use std::fmt::Write as _;

use ipnet::Ipv4Net;

use std::collections::BTreeSet;

use super::table::{affinity_set, Fact, Table, EXACT_MAX, LOCAL_SLOTS, MANY_BASE, MANY_SLOTS};
use crate::nft::fingerprint;
use crate::nft::state::{CANARY_SET, HAIRPIN_SET, MARK_MASQ_CHAIN, MASQ_MARK, REJECT_CHAIN};

const TUPLE: &str = "ip daddr . meta l4proto . th dport";
const NODE_PORT: &str = "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport";
pub(super) const SERVICE_BACKENDS: &str = "service-backends";
pub(super) const NODE_PORT_BACKENDS: &str = "node-port-backends";
pub(super) const FIREWALL_ALLOW: &str = "firewall-allow";
/// Each client's backend per Service tuple, remembered for its timeout.
pub const AFFINITY: &str = "affinity";
/// The chain recording new connections' backends into [`AFFINITY`].
pub(super) const AFFINITY_RECORD: &str = "affinity-record";
/// The client, then the tuple as the dispatch sees it: the daddr and port
/// before DNAT (in postrouting, the connection's original direction).
const AFFINITY_KEY: &str = "ip saddr . ip daddr . meta l4proto . th dport";
const AFFINITY_RECORDED: &str =
    "ip saddr . ct original ip daddr . meta l4proto . ct original proto-dst";
/// Clients a big cluster may have remembered at once; the kernel's default
/// for a dynamic map (65,535) would stop remembering new ones.
const AFFINITY_SIZE: u32 = 1 << 20;

/// The script creating table `ip <name>` with `table`'s content, for a
/// node whose pod CIDR is `pod_cidr` (unknown: masquerade everything).
pub fn render(name: &str, table: &Table, pod_cidr: Option<Ipv4Net>) -> String {
    let mut out = String::new();
    block(&mut out, name, table, pod_cidr, true);
    out
}

/// One transaction that makes table `ip <name>` hold exactly `table` and
/// the canary `generation`, whatever it held: the table, chains and sets
/// are declared (a no-op for those that exist, an error for a foreign
/// object of the same name), chains and sets flushed, then filled. The
/// affinity map keeps the clients it remembers. `replace` deletes the
/// table first (an older agent's layout, whose objects would linger).
pub fn full_load(
    name: &str,
    table: &Table,
    pod_cidr: Option<Ipv4Net>,
    generation: u32,
    replace: bool,
) -> String {
    let mut out = format!("add table ip {name}\n");
    if replace {
        let _ = writeln!(out, "delete table ip {name}");
    }
    let skeleton = Table {
        affinity_timeouts: table.affinity_timeouts.clone(),
        ..Table::default()
    };
    block(&mut out, name, &skeleton, pod_cidr, false);
    for (chain, _, _) in chains(pod_cidr, &table.affinity_timeouts) {
        let _ = writeln!(out, "flush chain ip {name} {chain}");
    }
    for (kind, set) in flushed_sets(&table.affinity_timeouts) {
        let _ = writeln!(out, "flush {kind} ip {name} {set}");
    }
    // nft 1.0.6 cannot check a DNAT rule against a dispatch map it read
    // back from the kernel (its `th dport` data lacks a protocol:
    // "conflicting protocols specified: ip vs. th"), so the maps are made
    // anew, unreferenced now that the chains are empty.
    for map in [SERVICE_BACKENDS, NODE_PORT_BACKENDS] {
        let _ = writeln!(out, "delete map ip {name} {map}");
    }
    block(&mut out, name, table, pod_cidr, true);
    let _ = writeln!(out, "add element ip {name} {CANARY_SET} {{ {generation} }}");
    out
}

/// Every set but the affinity map (whose elements the kernel adds) and
/// the dispatch maps (deleted and made anew).
fn flushed_sets(timeouts: &BTreeSet<u32>) -> Vec<(&'static str, String)> {
    let mut sets: Vec<(&str, String)> = [true, false]
        .into_iter()
        .flat_map(|by_address| {
            Fact::ALL
                .into_iter()
                .filter_map(move |f| f.set_name(by_address))
        })
        .chain([FIREWALL_ALLOW, HAIRPIN_SET, CANARY_SET])
        .map(|set| ("set", set.to_owned()))
        .collect();
    sets.extend(
        timeouts
            .iter()
            .flat_map(|t| [true, false].map(|by_address| ("set", affinity_set(*t, by_address)))),
    );
    sets
}

/// `table ip <name> { … }`: declarations and chains, with elements and
/// rules when `content`, else bare (hooks kept).
fn block(out: &mut String, name: &str, table: &Table, pod_cidr: Option<Ipv4Net>, content: bool) {
    let _ = writeln!(out, "table ip {name} {{");
    declarations(out, table);
    for (chain, hook, rules) in chains(pod_cidr, &table.affinity_timeouts) {
        let _ = writeln!(out, "  chain {chain} {{");
        if let Some(hook) = hook {
            let _ = writeln!(out, "    {hook}; policy accept;");
        }
        for rule in rules.iter().filter(|_| content) {
            let _ = writeln!(out, "    {rule}");
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
}

fn declarations(out: &mut String, table: &Table) {
    for by_address in [true, false] {
        for fact in Fact::ALL {
            let Some(set) = fact.set_name(by_address) else {
                continue;
            };
            let elements: Vec<String> = table
                .tuples
                .iter()
                .filter(|(t, f)| t.addr.is_some() == by_address && f.facts.contains(&fact))
                .map(|(t, _)| t.to_string())
                .collect();
            declare(out, "set", set, tuple_type(by_address), &elements);
        }
    }
    let allow: Vec<String> = table
        .tuples
        .iter()
        .flat_map(|(t, f)| f.allow.iter().map(move |r| format!("{t} . {r}")))
        .collect();
    let allow_type = "type ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval;";
    declare(out, "set", FIREWALL_ALLOW, allow_type, &allow);
    let hairpin: Vec<String> = table
        .hairpin
        .iter()
        .map(|ip| format!("{ip} . {ip}"))
        .collect();
    declare(
        out,
        "set",
        HAIRPIN_SET,
        "type ipv4_addr . ipv4_addr;",
        &hairpin,
    );
    declare(out, "set", CANARY_SET, "type mark;", &[]);
    let decl = format!(
        "type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; \
         size {AFFINITY_SIZE}; flags dynamic,timeout;"
    );
    declare(out, "map", AFFINITY, &decl, &[]);
    for &timeout in &table.affinity_timeouts {
        for by_address in [true, false] {
            let tuples: Vec<String> = table
                .tuples
                .iter()
                .filter(|(t, f)| t.addr.is_some() == by_address && f.affinity == Some(timeout))
                .map(|(t, _)| t.to_string())
                .collect();
            let name = affinity_set(timeout, by_address);
            declare(out, "set", &name, tuple_type(by_address), &tuples);
        }
    }
    // The dispatch maps last: a full load deletes and makes them anew, so
    // declared last they list in the same place before and after one.
    for (map, key, by_address) in [
        (SERVICE_BACKENDS, TUPLE, true),
        (NODE_PORT_BACKENDS, "meta l4proto . th dport", false),
    ] {
        let slots: Vec<String> = table
            .tuples
            .iter()
            .filter(|(t, _)| t.addr.is_some() == by_address)
            .flat_map(|(t, f)| {
                f.slots
                    .iter()
                    .map(move |(k, to)| format!("{t} . {k} : {to}"))
            })
            .collect();
        let decl = format!("typeof {key} . numgen random mod 2 : ip daddr . th dport;");
        declare(out, "map", map, &decl, &slots);
    }
}

/// The declaration of a set of tuples.
pub(super) fn tuple_type(by_address: bool) -> &'static str {
    match by_address {
        true => "type ipv4_addr . inet_proto . inet_service;",
        false => "type inet_proto . inet_service;",
    }
}

/// The rules recording, for every affinity timeout, a new connection's
/// backend when its tuple is in that timeout's sets: per protocol, since
/// `ct original proto-dst` has a port type only where the protocol is known.
fn affinity_record_rules(timeouts: &BTreeSet<u32>) -> Vec<String> {
    let mut rules = Vec::new();
    for timeout in timeouts {
        for by_address in [true, false] {
            let set = affinity_set(*timeout, by_address);
            let tuple = match by_address {
                true => "ct original ip daddr . meta l4proto . ct original proto-dst",
                false => "meta l4proto . ct original proto-dst",
            };
            for protocol in ["tcp", "udp", "sctp"] {
                rules.push(format!(
                    "meta l4proto {protocol} {tuple} @{set} update @{AFFINITY} \
                     {{ {AFFINITY_RECORDED} timeout {timeout}s : ip daddr . th dport }}"
                ));
            }
        }
    }
    rules
}

fn declare(out: &mut String, kind: &str, name: &str, decl: &str, elements: &[String]) {
    let _ = write!(out, "  {kind} {name} {{ {decl}");
    if !elements.is_empty() {
        let _ = write!(out, " elements = {{ {} }};", elements.join(", "));
    }
    out.push_str(" }\n");
}

type Chain = (&'static str, Option<String>, Vec<String>);

/// The fixed chains, top to bottom, each first rule carrying the chain's
/// fingerprint (so a listing shows a hand-edited chain, see `live`); only
/// the affinity record chain has rules per affinity timeout.
pub(super) fn chains(pod_cidr: Option<Ipv4Net>, timeouts: &BTreeSet<u32>) -> Vec<Chain> {
    unstamped_chains(pod_cidr, timeouts)
        .into_iter()
        .map(|(name, hook, rules)| (name, hook, stamped(name, rules)))
        .collect()
}

/// The record chain's rules for `timeouts`, stamped, for a delta.
pub(super) fn affinity_record_chain(timeouts: &BTreeSet<u32>) -> Vec<String> {
    stamped(AFFINITY_RECORD, affinity_record_rules(timeouts))
}

/// `rules` with the fingerprint of all of them on the first.
fn stamped(chain: &str, mut rules: Vec<String>) -> Vec<String> {
    let fingerprint = fingerprint::of(&rules);
    if let Some(first) = rules.first_mut() {
        let comment = fingerprint::comment(&fingerprint, chain);
        *first = format!("{first} comment \"{comment}\"");
    }
    rules
}

fn unstamped_chains(pod_cidr: Option<Ipv4Net>, timeouts: &BTreeSet<u32>) -> Vec<Chain> {
    let base = |kind: &str, hook: &str, priority: i32| {
        Some(format!("type {kind} hook {hook} priority {priority}"))
    };
    let new = |chain: &str| format!("ct state new jump {chain}");
    let mark = format!("jump {MARK_MASQ_CHAIN}");
    let from_pods = |to: &str| pod_cidr.map(|c| format!("ip saddr {c} goto {to}"));
    let mut chains: Vec<Chain> = vec![
        (
            "filter-prerouting",
            base("filter", "prerouting", -110),
            vec![new("firewall-check")],
        ),
        (
            "filter-input",
            base("filter", "input", -110),
            vec![
                new("nodeport-endpoints-check"),
                new("service-endpoints-check"),
            ],
        ),
        (
            "filter-forward",
            base("filter", "forward", -110),
            vec![new("service-endpoints-check")],
        ),
        (
            "filter-output",
            base("filter", "output", -110),
            vec![new("firewall-check"), new("service-endpoints-check")],
        ),
        (
            "nat-prerouting",
            base("nat", "prerouting", -100),
            vec!["jump services".into()],
        ),
        (
            "nat-output",
            base("nat", "output", -100),
            vec!["jump services".into()],
        ),
        (
            "nat-postrouting",
            base("nat", "postrouting", 100),
            vec![
                format!("ct status dnat jump {AFFINITY_RECORD}"),
                "jump masquerading".into(),
            ],
        ),
        (AFFINITY_RECORD, None, affinity_record_rules(timeouts)),
        (
            "services",
            None,
            vec![
                format!("{TUPLE} @cluster-ips goto cluster-ip"),
                format!("{TUPLE} @cluster-ips-local goto local-dispatch"),
                format!("{TUPLE} @external-ips goto external"),
                format!("{TUPLE} @external-ips-local goto external-local"),
                format!("{NODE_PORT} @node-ports goto node-port"),
                format!("{NODE_PORT} @node-ports-local goto node-port-local"),
            ],
        ),
        (
            "cluster-ip",
            None,
            vec![
                match pod_cidr {
                    Some(c) => format!("ip saddr != {c} {mark}"),
                    None => mark.clone(),
                },
                "goto cluster-dispatch".into(),
            ],
        ),
        (
            "external",
            None,
            vec![mark.clone(), "goto cluster-dispatch".into()],
        ),
        (
            "node-port",
            None,
            vec![mark.clone(), "goto node-port-dispatch".into()],
        ),
    ];
    for (chain, any, local) in [
        ("external-local", "cluster-dispatch", "local-dispatch"),
        (
            "node-port-local",
            "node-port-dispatch",
            "node-port-local-dispatch",
        ),
    ] {
        let mut rules: Vec<String> = from_pods(any).into_iter().collect();
        rules.push(format!("fib saddr type local {mark}"));
        rules.push(format!("fib saddr type local goto {any}"));
        rules.push(format!("goto {local}"));
        chains.push((chain, None, rules));
    }
    for (chain, key, map, flavor) in [
        ("cluster-dispatch", TUPLE, SERVICE_BACKENDS, 0),
        ("local-dispatch", TUPLE, SERVICE_BACKENDS, LOCAL_SLOTS),
        (
            "node-port-dispatch",
            "meta l4proto . th dport",
            NODE_PORT_BACKENDS,
            0,
        ),
        (
            "node-port-local-dispatch",
            "meta l4proto . th dport",
            NODE_PORT_BACKENDS,
            LOCAL_SLOTS,
        ),
    ] {
        chains.push((chain, None, dispatch(key, map, flavor)));
    }
    chains.extend([
        (
            "service-endpoints-check",
            None,
            vec![
                format!("{TUPLE} @reject-ips goto {REJECT_CHAIN}"),
                format!("{TUPLE} @drop-ips drop"),
            ],
        ),
        (
            "nodeport-endpoints-check",
            None,
            vec![format!(
                "{NODE_PORT} @reject-node-ports goto {REJECT_CHAIN}"
            )],
        ),
        (
            "firewall-check",
            None,
            vec![format!("{TUPLE} @firewalled-ips goto firewall")],
        ),
        (
            "firewall",
            None,
            vec![
                format!("{TUPLE} . ip saddr @{FIREWALL_ALLOW} return"),
                "drop".into(),
            ],
        ),
        (
            REJECT_CHAIN,
            None,
            vec![
                "meta l4proto tcp reject with tcp reset".into(),
                "reject".into(),
            ],
        ),
        (
            MARK_MASQ_CHAIN,
            None,
            vec![format!("meta mark set meta mark or {MASQ_MARK:#x}")],
        ),
        (
            "masquerading",
            None,
            vec![
                format!("ip saddr . ip daddr @{HAIRPIN_SET} {mark}"),
                format!("meta mark and {MASQ_MARK:#x} == 0 return"),
                format!("meta mark set meta mark xor {MASQ_MARK:#x}"),
                "masquerade fully-random".into(),
            ],
        ),
    ]);
    chains
}

/// The client's remembered backend first (tuples without affinity never
/// have one), then one DNAT per endpoint count, then the many-endpoint
/// rule; a tuple whose slots none finds is dropped (a Local flavour
/// without local endpoints).
fn dispatch(key: &str, map: &str, flavor: u32) -> Vec<String> {
    let rule = |modulus: u32, offset: u32| {
        format!("dnat ip to {key} . numgen random mod {modulus} offset {offset} map @{map}")
    };
    let mut rules = vec![format!("dnat ip to {AFFINITY_KEY} map @{AFFINITY}")];
    rules.extend((1..=EXACT_MAX).map(|n| rule(n, flavor | n << 16)));
    rules.push(rule(MANY_SLOTS, flavor | MANY_BASE));
    rules.push("drop".into());
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chains_do_not_depend_on_the_services() {
        let count = |pod_cidr, timeouts: &[u32]| {
            let chains = chains(pod_cidr, &timeouts.iter().copied().collect());
            let rules: usize = chains.iter().map(|(_, _, r)| r.len()).sum();
            (chains.len(), rules)
        };
        assert_eq!(count(None, &[]), (25, 4 * 67 + 41));
        assert_eq!(
            count(Some("10.244.1.0/24".parse().unwrap()), &[]),
            (25, 4 * 67 + 43),
            "traffic from this node's pods skips the Local dispatch"
        );
        assert_eq!(
            count(None, &[10800, 60]),
            (25, 4 * 67 + 41 + 2 * 6),
            "six record rules per affinity timeout"
        );
        assert_eq!(
            dispatch("meta l4proto . th dport", "node-port-backends", LOCAL_SLOTS)[2],
            "dnat ip to meta l4proto . th dport . numgen random mod 2 offset 2147614720 map @node-port-backends"
        );
    }
}
