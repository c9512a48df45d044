//! Exact script text for small cases: the contract between compiler, differ
//! and nft. Names and fingerprints are pinned on purpose — they must stay
//! stable across agent versions for restart reconciliation to match.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use super::diff::plan;
use super::ruleset::{compile, skeleton};
use super::state::AppliedState;
use crate::model::*;

const T: &str = "switchyard";

fn ctx() -> NodeContext {
    NodeContext {
        zone: None,
        node_name: "node-a".into(),
        node_ips: vec![Ipv4Addr::new(192, 168, 1, 10)],
        pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
    }
}

fn ep(ip: [u8; 4], node: &str, port: u16) -> EndpointEntry {
    EndpointEntry {
        hints: None,
        ip: ip.into(),
        node_name: Some(node.into()),
        ready: true,
        serving: true,
        terminating: false,
        ports: vec![EndpointPortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port,
        }]
        .into(),
    }
}

fn web(endpoints: Vec<EndpointEntry>) -> ServiceEntry {
    ServiceEntry {
        cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
        ports: vec![ServicePortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            node_port: None,
        }],
        endpoints,
        ..Default::default()
    }
}

fn snap(services: Vec<(&str, ServiceEntry)>) -> Snapshot {
    Snapshot {
        version: 1,
        services: services
            .into_iter()
            .map(|(n, s)| (ServiceKey::new("default", n), s))
            .collect(),
    }
}

/// The skeleton is already applied: scripts show only the service's part.
fn base() -> AppliedState {
    AppliedState::from_ruleset(&skeleton(), 1)
}

fn script_from(applied: &AppliedState, s: &Snapshot) -> String {
    plan(T, applied, &compile(&ctx(), s)).script()
}

fn two_endpoints() -> Vec<EndpointEntry> {
    vec![
        ep([10, 244, 1, 5], "node-a", 8080),
        ep([10, 244, 2, 7], "node-b", 8080),
    ]
}

fn assert_script(actual: String, expected: &str) {
    let expected: String = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(actual, expected, "\nactual script:\n{actual}");
}

fn applied(s: &Snapshot) -> AppliedState {
    AppliedState::from_ruleset(&compile(&ctx(), s), 2)
}

#[test]
fn cluster_ip_with_two_endpoints() {
    let s = snap(vec![("web", web(two_endpoints()))]);
    assert_script(
        script_from(&base(), &s),
        r#"
        add chain ip switchyard svc-85208ae619feec63
        add rule ip switchyard svc-85208ae619feec63 ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.1.0/24 jump mark-for-masquerade comment "sy:45a7f9578d2704dd default/web/tcp/80"
        add rule ip switchyard svc-85208ae619feec63 meta l4proto tcp dnat ip to numgen random mod 16384 offset 1292386304 map @backend-ranges-tcp-19
        add element ip switchyard service-ips { 10.96.0.10 . tcp . 80 : goto svc-85208ae619feec63 }
        add element ip switchyard backend-ranges-tcp-19 { 1292386304-1292394495 : 10.244.1.5 . 8080, 1292394496-1292402687 : 10.244.2.7 . 8080 }
        add element ip switchyard hairpin { 10.244.1.5 . 10.244.1.5 }
    "#,
    );
}

#[test]
fn node_port_and_external_ip_enter_through_the_external_chain() {
    let mut svc = web(two_endpoints());
    svc.ports[0].node_port = Some(30080);
    svc.external_ips = vec![Ipv4Addr::new(203, 0, 113, 7)];
    assert_script(
        script_from(&base(), &snap(vec![("web", svc)])),
        r#"
        add chain ip switchyard ext-85208ae619feec63
        add chain ip switchyard svc-85208ae619feec63
        add rule ip switchyard ext-85208ae619feec63 jump mark-for-masquerade comment "sy:a8bdf1f0af56d961 default/web/tcp/80 external"
        add rule ip switchyard ext-85208ae619feec63 goto svc-85208ae619feec63
        add rule ip switchyard svc-85208ae619feec63 ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.1.0/24 jump mark-for-masquerade comment "sy:45a7f9578d2704dd default/web/tcp/80"
        add rule ip switchyard svc-85208ae619feec63 meta l4proto tcp dnat ip to numgen random mod 16384 offset 1292386304 map @backend-ranges-tcp-19
        add element ip switchyard service-ips { 10.96.0.10 . tcp . 80 : goto svc-85208ae619feec63, 203.0.113.7 . tcp . 80 : goto ext-85208ae619feec63 }
        add element ip switchyard service-nodeports { tcp . 30080 : goto ext-85208ae619feec63 }
        add element ip switchyard backend-ranges-tcp-19 { 1292386304-1292394495 : 10.244.1.5 . 8080, 1292394496-1292402687 : 10.244.2.7 . 8080 }
        add element ip switchyard hairpin { 10.244.1.5 . 10.244.1.5 }
    "#,
    );
}

/// Only the LB IP is checked; a range holding this node's address also
/// lets the LB IP itself through, as a node reaching its own LB IP may
/// loop back from it.
#[test]
fn load_balancer_source_ranges_drop_other_sources_before_dnat() {
    let mut svc = web(two_endpoints());
    svc.ports[0].node_port = Some(30080);
    svc.load_balancer_ips = vec![Ipv4Addr::new(172, 18, 0, 201)];
    svc.load_balancer_source_ranges = vec![
        "192.168.0.0/16".parse().unwrap(),
        "10.10.0.0/16".parse().unwrap(),
    ];
    let script = script_from(&base(), &snap(vec![("web", svc)]));
    let firewall: String = script
        .lines()
        .filter(|l| l.contains("fw-") || l.contains("firewall-ips"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_script(
        firewall,
        r#"
        add chain ip switchyard fw-85208ae619feec63
        add rule ip switchyard fw-85208ae619feec63 ip saddr 192.168.0.0/16 return comment "sy:aff70eed22f4d295 default/web/tcp/80 firewall"
        add rule ip switchyard fw-85208ae619feec63 ip saddr 10.10.0.0/16 return
        add rule ip switchyard fw-85208ae619feec63 ip saddr 172.18.0.201 return
        add rule ip switchyard fw-85208ae619feec63 drop
        add element ip switchyard firewall-ips { 172.18.0.201 . tcp . 80 : goto fw-85208ae619feec63 }
    "#,
    );
}

#[test]
fn local_policies_without_local_endpoint_drop_but_short_circuit_pods_and_host() {
    let mut svc = web(vec![ep([10, 244, 2, 7], "node-b", 8080)]);
    svc.internal_traffic_local = true;
    svc.external_traffic_local = true;
    svc.ports[0].node_port = Some(30081);
    assert_script(
        script_from(&base(), &snap(vec![("web", svc)])),
        r#"
        add chain ip switchyard ext-85208ae619feec63
        add chain ip switchyard svc-85208ae619feec63
        add rule ip switchyard ext-85208ae619feec63 ip saddr 10.244.1.0/24 goto svc-85208ae619feec63 comment "sy:4346cca282e2cc97 default/web/tcp/80 external"
        add rule ip switchyard ext-85208ae619feec63 fib saddr type local jump mark-for-masquerade
        add rule ip switchyard ext-85208ae619feec63 fib saddr type local goto svc-85208ae619feec63
        add rule ip switchyard ext-85208ae619feec63 drop
        add rule ip switchyard svc-85208ae619feec63 ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.1.0/24 jump mark-for-masquerade comment "sy:45a7f9578d2704dd default/web/tcp/80"
        add rule ip switchyard svc-85208ae619feec63 meta l4proto tcp dnat ip to numgen random mod 16384 offset 1292386304 map @backend-ranges-tcp-19
        add element ip switchyard service-nodeports { tcp . 30081 : goto ext-85208ae619feec63 }
        add element ip switchyard no-endpoint-services { 10.96.0.10 . tcp . 80 : drop }
        add element ip switchyard backend-ranges-tcp-19 { 1292386304-1292402687 : 10.244.2.7 . 8080 }
    "#,
    );
}

#[test]
fn no_endpoints_rejects() {
    assert_script(
        script_from(&base(), &snap(vec![("web", web(vec![]))])),
        r#"
        add element ip switchyard no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }
    "#,
    );
}

#[test]
fn client_ip_affinity_uses_per_endpoint_timeout_sets() {
    let mut svc = web(two_endpoints());
    svc.session_affinity_timeout = Some(10800);
    assert_script(
        script_from(&base(), &snap(vec![("web", svc)])),
        r#"
        add set ip switchyard aff-a6482ace17e07f66 { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }
        add set ip switchyard aff-fbcb474fb2644e8f { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }
        add chain ip switchyard ep-8dc39eac8cd02869
        add chain ip switchyard ep-b02320497d3c7a4b
        add chain ip switchyard svc-85208ae619feec63
        add rule ip switchyard ep-8dc39eac8cd02869 ip saddr 10.244.2.7 jump mark-for-masquerade comment "sy:cea04efc4cb7197e default/web/tcp/80/10.244.2.7:8080"
        add rule ip switchyard ep-8dc39eac8cd02869 update @aff-fbcb474fb2644e8f { ip saddr }
        add rule ip switchyard ep-8dc39eac8cd02869 meta l4proto tcp dnat to 10.244.2.7:8080
        add rule ip switchyard ep-b02320497d3c7a4b ip saddr 10.244.1.5 jump mark-for-masquerade comment "sy:a69bbee97ef239e5 default/web/tcp/80/10.244.1.5:8080"
        add rule ip switchyard ep-b02320497d3c7a4b update @aff-a6482ace17e07f66 { ip saddr }
        add rule ip switchyard ep-b02320497d3c7a4b meta l4proto tcp dnat to 10.244.1.5:8080
        add rule ip switchyard svc-85208ae619feec63 ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.1.0/24 jump mark-for-masquerade comment "sy:48c69e8e63009178 default/web/tcp/80"
        add rule ip switchyard svc-85208ae619feec63 ip saddr @aff-a6482ace17e07f66 goto ep-b02320497d3c7a4b
        add rule ip switchyard svc-85208ae619feec63 ip saddr @aff-fbcb474fb2644e8f goto ep-8dc39eac8cd02869
        add rule ip switchyard svc-85208ae619feec63 numgen random mod 2 vmap { 0 : goto ep-b02320497d3c7a4b, 1 : goto ep-8dc39eac8cd02869 }
        add element ip switchyard service-ips { 10.96.0.10 . tcp . 80 : goto svc-85208ae619feec63 }
    "#,
    );
}

#[test]
fn removing_a_service_flushes_unreferences_then_deletes() {
    let before = applied(&snap(vec![("web", web(two_endpoints()))]));
    assert_script(
        script_from(&before, &snap(vec![])),
        r#"
        flush chain ip switchyard svc-85208ae619feec63
        delete element ip switchyard service-ips { 10.96.0.10 . tcp . 80 }
        delete element ip switchyard backend-ranges-tcp-19 { 1292386304-1292394495, 1292394496-1292402687 }
        delete element ip switchyard hairpin { 10.244.1.5 . 10.244.1.5 }
        delete chain ip switchyard svc-85208ae619feec63
    "#,
    );
}

#[test]
fn endpoint_change_touches_only_that_endpoint_elements() {
    let before = applied(&snap(vec![("web", web(two_endpoints()))]));
    let changed = web(vec![
        ep([10, 244, 1, 6], "node-a", 8080),
        ep([10, 244, 2, 7], "node-b", 8080),
    ]);
    let tx = plan(T, &before, &compile(&ctx(), &snap(vec![("web", changed)])));
    // Its DNAT target and its hairpin pair; the chain picks by index, so
    // with as many endpoints as before it stays as it is.
    assert_eq!((tx.stats.elements_added, tx.stats.elements_deleted), (2, 2));
    assert_eq!(
        (
            tx.stats.chains_created,
            tx.stats.chains_rewritten,
            tx.stats.chains_deleted
        ),
        (0, 0, 0)
    );
    assert_script(
        tx.script(),
        r#"
        delete element ip switchyard backend-ranges-tcp-19 { 1292386304-1292394495 }
        delete element ip switchyard hairpin { 10.244.1.5 . 10.244.1.5 }
        add element ip switchyard backend-ranges-tcp-19 { 1292386304-1292394495 : 10.244.1.6 . 8080 }
        add element ip switchyard hairpin { 10.244.1.6 . 10.244.1.6 }
    "#,
    );
}

#[test]
fn another_nodes_endpoint_has_no_hairpin_pair() {
    // Its traffic reaches this node from outside the pod CIDR, which the
    // cluster masquerade rule marks already.
    let before = applied(&snap(vec![("web", web(two_endpoints()))]));
    let changed = web(vec![
        ep([10, 244, 1, 5], "node-a", 8080),
        ep([10, 244, 2, 8], "node-b", 8080),
    ]);
    assert_script(
        script_from(&before, &snap(vec![("web", changed)])),
        r#"
        delete element ip switchyard backend-ranges-tcp-19 { 1292394496-1292402687 }
        add element ip switchyard backend-ranges-tcp-19 { 1292394496-1292402687 : 10.244.2.8 . 8080 }
    "#,
    );
}

#[test]
fn without_a_pod_cidr_every_endpoint_has_a_hairpin_pair() {
    let ctx = NodeContext {
        zone: None,
        pod_cidr: None,
        ..ctx()
    };
    let desired = compile(&ctx, &snap(vec![("web", web(two_endpoints()))]));
    assert_eq!(
        desired.hairpin.into_iter().collect::<Vec<_>>(),
        [Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 244, 2, 7)]
    );
}

#[test]
fn losing_all_endpoints_moves_the_element_to_the_reject_map() {
    let before = applied(&snap(vec![("web", web(two_endpoints()))]));
    assert_script(
        script_from(&before, &snap(vec![("web", web(vec![]))])),
        r#"
        flush chain ip switchyard svc-85208ae619feec63
        delete element ip switchyard service-ips { 10.96.0.10 . tcp . 80 }
        delete element ip switchyard backend-ranges-tcp-19 { 1292386304-1292394495, 1292394496-1292402687 }
        delete element ip switchyard hairpin { 10.244.1.5 . 10.244.1.5 }
        add element ip switchyard no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }
        delete chain ip switchyard svc-85208ae619feec63
    "#,
    );
}

#[test]
fn fresh_table_declares_everything_once() {
    let tx = plan(T, &AppliedState::default(), &compile(&ctx(), &snap(vec![])));
    let script = tx.script();
    let backend_maps: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("add map ip switchyard backend-ranges-"))
        .collect();
    assert_eq!(backend_maps.len(), 3 * 64, "64 shards per protocol");
    assert_eq!(
        backend_maps[0],
        "add map ip switchyard backend-ranges-tcp-00 { typeof numgen random mod 1 : ip daddr . tcp dport; flags interval; }"
    );
    let rest: String = script
        .lines()
        .filter(|l| !l.starts_with("add map ip switchyard backend-ranges-"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_script(
        rest,
        r#"
        add table ip switchyard
        add map ip switchyard service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
        add map ip switchyard service-nodeports { type inet_proto . inet_service : verdict; }
        add map ip switchyard no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }
        add map ip switchyard no-endpoint-nodeports { type inet_proto . inet_service : verdict; }
        add map ip switchyard firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
        add set ip switchyard canary { type mark; }
        add set ip switchyard hairpin { type ipv4_addr . ipv4_addr; }
        add chain ip switchyard filter-forward { type filter hook forward priority -110; policy accept; }
        add chain ip switchyard filter-input { type filter hook input priority -110; policy accept; }
        add chain ip switchyard filter-output { type filter hook output priority -110; policy accept; }
        add chain ip switchyard filter-prerouting { type filter hook prerouting priority -110; policy accept; }
        add chain ip switchyard firewall-check
        add chain ip switchyard mark-for-masquerade
        add chain ip switchyard masquerading
        add chain ip switchyard nat-output { type nat hook output priority -100; policy accept; }
        add chain ip switchyard nat-postrouting { type nat hook postrouting priority 100; policy accept; }
        add chain ip switchyard nat-prerouting { type nat hook prerouting priority -100; policy accept; }
        add chain ip switchyard nodeport-endpoints-check
        add chain ip switchyard reject-chain
        add chain ip switchyard service-endpoints-check
        add chain ip switchyard services
        add rule ip switchyard filter-forward ct state new jump service-endpoints-check comment "sy:904d63af87a0c026 filter-forward"
        add rule ip switchyard filter-input ct state new jump nodeport-endpoints-check comment "sy:85d17574aebb322b filter-input"
        add rule ip switchyard filter-input ct state new jump service-endpoints-check
        add rule ip switchyard filter-output ct state new jump firewall-check comment "sy:17cc19c50b3f4790 filter-output"
        add rule ip switchyard filter-output ct state new jump service-endpoints-check
        add rule ip switchyard filter-prerouting ct state new jump firewall-check comment "sy:e2bc8ca33da55765 filter-prerouting"
        add rule ip switchyard firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips comment "sy:5ab22b8c5e877f5c firewall-check"
        add rule ip switchyard mark-for-masquerade meta mark set meta mark or 0x4000 comment "sy:ddd29a11799b2634 mark-for-masquerade"
        add rule ip switchyard masquerading ip saddr . ip daddr @hairpin jump mark-for-masquerade comment "sy:dadcedbc19b6d743 masquerading"
        add rule ip switchyard masquerading meta mark and 0x4000 == 0 return
        add rule ip switchyard masquerading meta mark set meta mark xor 0x4000
        add rule ip switchyard masquerading masquerade fully-random
        add rule ip switchyard nat-output jump services comment "sy:87b8595c58f41768 nat-output"
        add rule ip switchyard nat-postrouting jump masquerading comment "sy:a116ecc118673b26 nat-postrouting"
        add rule ip switchyard nat-prerouting jump services comment "sy:87b8595c58f41768 nat-prerouting"
        add rule ip switchyard nodeport-endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports comment "sy:426d66b602b2b9d9 nodeport-endpoints-check"
        add rule ip switchyard reject-chain meta l4proto tcp reject with tcp reset comment "sy:43e92f89e6a726dc reject-chain"
        add rule ip switchyard reject-chain reject
        add rule ip switchyard service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services comment "sy:33ab4f4f43d2bed6 service-endpoints-check"
        add rule ip switchyard services ip daddr . meta l4proto . th dport vmap @service-ips comment "sy:6648d864424c1dfa services"
        add rule ip switchyard services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
    "#,
    );
}

#[test]
fn unchanged_snapshot_plans_nothing() {
    let s = snap(vec![("web", web(two_endpoints()))]);
    let tx = plan(T, &applied(&s), &compile(&ctx(), &s));
    assert!(tx.is_empty() && tx.stats.is_empty(), "{}", tx.script());
}

#[test]
fn canary_goes_last() {
    let mut tx = plan(
        T,
        &base(),
        &compile(&ctx(), &snap(vec![("web", web(vec![]))])),
    );
    tx.set_generation(9);
    assert!(tx
        .script()
        .ends_with("flush set ip switchyard canary\nadd element ip switchyard canary { 9 }\n"));
}

#[test]
fn headless_services_program_nothing() {
    let mut svc = web(two_endpoints());
    svc.cluster_ip = None;
    assert!(plan(T, &base(), &compile(&ctx(), &snap(vec![("web", svc)]))).is_empty());
}

#[test]
fn unknown_pod_cidr_masquerades_all_cluster_ip_traffic() {
    let mut c = ctx();
    c.pod_cidr = None;
    let rs = compile(&c, &snap(vec![("web", web(two_endpoints()))]));
    let svc = &rs.chains["svc-85208ae619feec63"];
    assert_eq!(
        svc.rules[0],
        "ip daddr 10.96.0.10 tcp dport 80 jump mark-for-masquerade"
    );
}

#[test]
fn conflicting_node_ports_keep_the_first_claim() {
    let mut a = web(two_endpoints());
    a.ports[0].node_port = Some(30080);
    let mut b = a.clone();
    b.cluster_ip = Some(Ipv4Addr::new(10, 96, 0, 11));
    let rs = compile(&ctx(), &snap(vec![("a", a), ("b", b)]));
    assert_eq!(rs.conflicts.len(), 1, "{:?}", rs.conflicts);
    assert!(rs.conflicts[0].starts_with("default/b/tcp/80"));
}
