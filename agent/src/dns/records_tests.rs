//! Record building against the specification's examples, rendered in zone
//! file form so each expectation reads like `dig` output.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use switchyard_api::v1::{ClusterConfig, Endpoint, EndpointPort, ServicePort};

use super::*;

const SOA: &str =
    "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 30";

fn port(name: &str, protocol: &str, port: u32) -> ServicePort {
    ServicePort {
        name: name.into(),
        protocol: protocol.into(),
        port,
        node_port: 0,
    }
}

/// An endpoint and its resolved `pg` target port.
fn endpoint(ip: &str, hostname: &str, ready: bool, target_port: u32) -> (Endpoint, u32) {
    let endpoint = Endpoint {
        ip: ip.into(),
        node_name: "node-1".into(),
        ready,
        serving: ready,
        hostname: hostname.into(),
        ..Default::default()
    };
    (endpoint, target_port)
}

fn cluster_ip(ns: &str, name: &str, ip: &str, ports: Vec<ServicePort>) -> ServiceState {
    ServiceState {
        namespace: ns.into(),
        name: name.into(),
        r#type: "ClusterIP".into(),
        cluster_ip: ip.into(),
        ports,
        ..Default::default()
    }
}

fn headless(name: &str, endpoints: Vec<(Endpoint, u32)>) -> ServiceState {
    let mut s = ServiceState {
        namespace: "db".into(),
        name: name.into(),
        r#type: "ClusterIP".into(),
        headless: true,
        ports: vec![port("pg", "TCP", 5432)],
        ..Default::default()
    };
    for (mut e, target_port) in endpoints {
        e.port_set = s.port_set_index(vec![EndpointPort {
            name: "pg".into(),
            protocol: "TCP".into(),
            port: target_port,
        }]);
        s.endpoints.push(e);
    }
    s
}

fn external(name: &str, target: &str) -> ServiceState {
    ServiceState {
        namespace: "default".into(),
        name: name.into(),
        r#type: "ExternalName".into(),
        external_name: target.into(),
        ..Default::default()
    }
}

fn view_of(services: Vec<ServiceState>) -> ClusterView {
    ClusterView {
        version: 42,
        cluster: ClusterConfig {
            cluster_domain: "cluster.local".into(),
            cluster_dns: "10.96.0.10".into(),
            ..Default::default()
        },
        services: services
            .into_iter()
            .map(|s| {
                (
                    ServiceKey::new(s.namespace.as_str(), s.name.as_str()),
                    Arc::new(s),
                )
            })
            .collect(),
        ..Default::default()
    }
}

fn view() -> ClusterView {
    view_of(vec![
        cluster_ip(
            "default",
            "frontend-svc",
            "10.96.0.20",
            vec![port("http", "TCP", 80), port("", "UDP", 8125)],
        ),
        cluster_ip("other", "api", "10.96.0.30", vec![port("", "TCP", 443)]),
        headless(
            "pg",
            vec![
                endpoint("10.244.1.10", "pg-0", true, 5432),
                endpoint("10.244.2.10", "", true, 6432),
                endpoint("10.244.3.10", "pg-2", false, 5432),
            ],
        ),
        headless("empty", vec![endpoint("10.244.4.10", "x", false, 5432)]),
        external("ext", "www.example.com"),
        external("alias", "frontend-svc.default.svc.cluster.local."),
        external("loop-a", "loop-b.default.svc.cluster.local"),
        external("loop-b", "loop-a.default.svc.cluster.local"),
    ])
}

fn ask_in(view: &ClusterView, q: &str, t: RecordType) -> Answer {
    match resolve(view, &Name::from_ascii(q).unwrap(), t) {
        Resolution::Answer(a) => a,
        Resolution::NotOurs => panic!("{q} {t}: not ours"),
    }
}

fn ask(q: &str, t: RecordType) -> Answer {
    ask_in(&view(), q, t)
}

fn lines(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.to_string()).collect()
}

/// The answer section, asserting NOERROR.
fn answers(q: &str, t: RecordType) -> Vec<String> {
    let a = ask(q, t);
    assert_eq!(a.rcode, ResponseCode::NoError, "{q} {t}");
    assert!(a.authority.is_empty(), "{q} {t}: {:?}", a.authority);
    lines(&a.answers)
}

fn assert_nodata(q: &str, t: RecordType) {
    let a = ask(q, t);
    assert_eq!(a.rcode, ResponseCode::NoError, "{q} {t}");
    assert!(a.answers.is_empty(), "{q} {t}: {:?}", a.answers);
    assert_eq!(lines(&a.authority), [SOA], "{q} {t}");
}

fn assert_nxdomain(q: &str, t: RecordType) {
    let a = ask(q, t);
    assert_eq!(a.rcode, ResponseCode::NXDomain, "{q} {t}");
    assert!(a.answers.is_empty(), "{q} {t}: {:?}", a.answers);
    assert_eq!(lines(&a.authority), [SOA], "{q} {t}");
}

#[test]
fn cluster_ip_a_record() {
    assert_eq!(
        answers("frontend-svc.default.svc.cluster.local.", RecordType::A),
        ["frontend-svc.default.svc.cluster.local. 30 IN A 10.96.0.20"]
    );
    assert_eq!(
        answers("api.other.svc.cluster.local.", RecordType::A),
        ["api.other.svc.cluster.local. 30 IN A 10.96.0.30"]
    );
}

#[test]
fn names_match_case_insensitively_and_echo_the_question() {
    assert_eq!(
        answers("FrontEnd-Svc.DEFAULT.svc.Cluster.Local.", RecordType::A),
        ["FrontEnd-Svc.DEFAULT.svc.Cluster.Local. 30 IN A 10.96.0.20"]
    );
}

#[test]
fn existing_names_without_the_type_are_nodata() {
    assert_nodata("frontend-svc.default.svc.cluster.local.", RecordType::AAAA);
    assert_nodata("frontend-svc.default.svc.cluster.local.", RecordType::TXT);
    assert_nodata("pg.db.svc.cluster.local.", RecordType::AAAA);
    assert_nodata("pg-0.pg.db.svc.cluster.local.", RecordType::AAAA);
    assert_nodata(
        "_tcp.frontend-svc.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_nodata("dns-version.cluster.local.", RecordType::A);
    assert_nodata("cluster.local.", RecordType::A);
}

#[test]
fn interior_names_are_nodata() {
    assert_nodata("svc.cluster.local.", RecordType::A);
    assert_nodata("default.svc.cluster.local.", RecordType::A);
    assert_nodata("db.svc.cluster.local.", RecordType::A);
    assert_nodata("pod.cluster.local.", RecordType::A);
}

#[test]
fn missing_names_are_nxdomain() {
    assert_nxdomain("nope.default.svc.cluster.local.", RecordType::A);
    assert_nxdomain("nope.default.svc.cluster.local.", RecordType::AAAA);
    assert_nxdomain("nope.svc.cluster.local.", RecordType::A);
    assert_nxdomain("frontend-svc.nope.svc.cluster.local.", RecordType::A);
    assert_nxdomain("random.cluster.local.", RecordType::A);
    // The search path's first tries for `frontend-svc.default`.
    assert_nxdomain(
        "frontend-svc.default.default.svc.cluster.local.",
        RecordType::A,
    );
}

#[test]
fn srv_for_named_ports_of_a_cluster_ip_service() {
    let a = ask(
        "_http._tcp.frontend-svc.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(
        lines(&a.answers),
        ["_http._tcp.frontend-svc.default.svc.cluster.local. 30 IN SRV 0 100 80 frontend-svc.default.svc.cluster.local."]
    );
    assert_eq!(
        lines(&a.additionals),
        ["frontend-svc.default.svc.cluster.local. 30 IN A 10.96.0.20"]
    );
    // Port names and protocols match case-insensitively.
    assert_eq!(
        answers(
            "_HTTP._TCP.frontend-svc.default.svc.cluster.local.",
            RecordType::SRV
        )
        .len(),
        1
    );
}

#[test]
fn srv_names_that_do_not_exist() {
    // Wrong protocol for the named port.
    assert_nxdomain(
        "_http._udp.frontend-svc.default.svc.cluster.local.",
        RecordType::SRV,
    );
    // Unnamed ports have no SRV record.
    assert_nxdomain(
        "_._udp.frontend-svc.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_nxdomain(
        "_udp.frontend-svc.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_nxdomain("_tcp.api.other.svc.cluster.local.", RecordType::SRV);
    assert_nxdomain("_http._tcp.ext.default.svc.cluster.local.", RecordType::SRV);
    // An SRV name asked for an A record: the name exists, the type does not.
    assert_nodata(
        "_http._tcp.frontend-svc.default.svc.cluster.local.",
        RecordType::A,
    );
}

#[test]
fn headless_a_records_are_the_ready_endpoints() {
    assert_eq!(
        answers("pg.db.svc.cluster.local.", RecordType::A),
        [
            "pg.db.svc.cluster.local. 30 IN A 10.244.1.10",
            "pg.db.svc.cluster.local. 30 IN A 10.244.2.10",
        ]
    );
}

#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    assert_nxdomain("empty.db.svc.cluster.local.", RecordType::A);
    assert_nxdomain("x.empty.db.svc.cluster.local.", RecordType::A);
    assert_nxdomain("_pg._tcp.empty.db.svc.cluster.local.", RecordType::SRV);
    assert_nxdomain("_tcp.empty.db.svc.cluster.local.", RecordType::SRV);
}

#[test]
fn publish_not_ready_publishes_every_endpoint() {
    let mut s = headless(
        "pg",
        vec![
            endpoint("10.244.1.10", "pg-0", false, 5432),
            endpoint("10.244.1.10", "pg-0", false, 5432),
            endpoint("10.244.3.10", "pg-2", true, 5432),
        ],
    );
    s.publish_not_ready = true;
    let a = ask_in(&view_of(vec![s]), "pg.db.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        [
            "pg.db.svc.cluster.local. 30 IN A 10.244.1.10",
            "pg.db.svc.cluster.local. 30 IN A 10.244.3.10",
        ]
    );
}

#[test]
fn headless_endpoint_names() {
    assert_eq!(
        answers("pg-0.pg.db.svc.cluster.local.", RecordType::A),
        ["pg-0.pg.db.svc.cluster.local. 30 IN A 10.244.1.10"]
    );
    // Without a hostname, the dashed address names the endpoint.
    assert_eq!(
        answers("10-244-2-10.pg.db.svc.cluster.local.", RecordType::A),
        ["10-244-2-10.pg.db.svc.cluster.local. 30 IN A 10.244.2.10"]
    );
    // Not ready, unknown, or named by address despite a hostname.
    assert_nxdomain("pg-2.pg.db.svc.cluster.local.", RecordType::A);
    assert_nxdomain("pg-9.pg.db.svc.cluster.local.", RecordType::A);
    assert_nxdomain("10-244-1-10.pg.db.svc.cluster.local.", RecordType::A);
    // Endpoint names exist only for headless Services.
    assert_nxdomain("x.frontend-svc.default.svc.cluster.local.", RecordType::A);
}

#[test]
fn headless_srv_has_one_record_per_ready_endpoint() {
    let a = ask("_pg._tcp.pg.db.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        lines(&a.answers),
        [
            "_pg._tcp.pg.db.svc.cluster.local. 30 IN SRV 0 50 5432 pg-0.pg.db.svc.cluster.local.",
            "_pg._tcp.pg.db.svc.cluster.local. 30 IN SRV 0 50 6432 10-244-2-10.pg.db.svc.cluster.local.",
        ]
    );
    assert_eq!(
        lines(&a.additionals),
        [
            "pg-0.pg.db.svc.cluster.local. 30 IN A 10.244.1.10",
            "10-244-2-10.pg.db.svc.cluster.local. 30 IN A 10.244.2.10",
        ]
    );
}

#[test]
fn ptr_for_cluster_ips_and_headless_endpoints() {
    assert_eq!(
        answers("20.0.96.10.in-addr.arpa.", RecordType::PTR),
        ["20.0.96.10.in-addr.arpa. 30 IN PTR frontend-svc.default.svc.cluster.local."]
    );
    assert_eq!(
        answers("10.1.244.10.in-addr.arpa.", RecordType::PTR),
        ["10.1.244.10.in-addr.arpa. 30 IN PTR pg-0.pg.db.svc.cluster.local."]
    );
    assert_eq!(
        answers("10.2.244.10.in-addr.arpa.", RecordType::PTR),
        ["10.2.244.10.in-addr.arpa. 30 IN PTR 10-244-2-10.pg.db.svc.cluster.local."]
    );
}

#[test]
fn reverse_names_not_owned_are_not_ours() {
    let v = view();
    let q = |name: &str, t| resolve(&v, &Name::from_ascii(name).unwrap(), t);
    // An address nothing in the cluster has.
    assert_eq!(
        q("1.1.168.192.in-addr.arpa.", RecordType::PTR),
        Resolution::NotOurs
    );
    // A not-ready headless endpoint.
    assert_eq!(
        q("10.3.244.10.in-addr.arpa.", RecordType::PTR),
        Resolution::NotOurs
    );
    // Other types at a reverse name.
    assert_eq!(
        q("20.0.96.10.in-addr.arpa.", RecordType::A),
        Resolution::NotOurs
    );
}

#[test]
fn external_name_is_a_cname_chased_by_the_responder() {
    let a = ask("ext.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(
        lines(&a.answers),
        ["ext.default.svc.cluster.local. 30 IN CNAME www.example.com."]
    );
    assert_eq!(a.chase, Some(Name::from_ascii("www.example.com.").unwrap()));
    // Asked for the CNAME itself: nothing to chase.
    let a = ask("ext.default.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(
        lines(&a.answers),
        ["ext.default.svc.cluster.local. 30 IN CNAME www.example.com."]
    );
    assert_eq!(a.chase, None);
}

#[test]
fn external_name_inside_the_zone_is_followed_here() {
    let a = ask("alias.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(
        lines(&a.answers),
        [
            "alias.default.svc.cluster.local. 30 IN CNAME frontend-svc.default.svc.cluster.local.",
            "frontend-svc.default.svc.cluster.local. 30 IN A 10.96.0.20",
        ]
    );
    assert_eq!(a.chase, None);
    // A CNAME to a missing in-zone name carries the target's NXDOMAIN (RFC 6604).
    let v = view_of(vec![external("dangling", "gone.default.svc.cluster.local")]);
    let a = ask_in(&v, "dangling.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert_eq!(a.answers.len(), 1);
}

#[test]
fn cname_loops_terminate() {
    let a = ask("loop-a.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(a.answers.len(), MAX_CHAIN + 1);
    assert!(a
        .answers
        .iter()
        .all(|r| r.record_type() == RecordType::CNAME));
}

#[test]
fn schema_version_txt() {
    assert_eq!(
        answers("dns-version.cluster.local.", RecordType::TXT),
        // hickory renders TXT strings unquoted; dig shows "1.1.0".
        ["dns-version.cluster.local. 30 IN TXT 1.1.0"]
    );
}

#[test]
fn apex_soa_ns_and_the_nameserver_address() {
    assert_eq!(answers("cluster.local.", RecordType::SOA), [SOA]);
    let a = ask("cluster.local.", RecordType::NS);
    assert_eq!(
        lines(&a.answers),
        ["cluster.local. 30 IN NS ns.dns.cluster.local."]
    );
    assert_eq!(
        lines(&a.additionals),
        ["ns.dns.cluster.local. 30 IN A 10.96.0.10"]
    );
    assert_nodata("dns.cluster.local.", RecordType::A);
}

#[test]
fn pod_records() {
    assert_eq!(
        answers("10-244-1-5.default.pod.cluster.local.", RecordType::A),
        ["10-244-1-5.default.pod.cluster.local. 30 IN A 10.244.1.5"]
    );
}

#[test]
fn any_returns_every_record_at_the_name() {
    assert_eq!(
        answers("frontend-svc.default.svc.cluster.local.", RecordType::ANY),
        ["frontend-svc.default.svc.cluster.local. 30 IN A 10.96.0.20"]
    );
}

#[test]
fn names_outside_the_zone_are_not_ours() {
    let v = view();
    for q in ["example.com.", "frontend-svc.default.svc.cluster.remote."] {
        assert_eq!(
            resolve(&v, &Name::from_ascii(q).unwrap(), RecordType::A),
            Resolution::NotOurs,
            "{q}"
        );
    }
}

#[test]
fn the_zone_follows_the_cluster_domain() {
    let mut v = view();
    v.cluster.cluster_domain = "corp.example".into();
    let a = ask_in(&v, "frontend-svc.default.svc.corp.example.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        ["frontend-svc.default.svc.corp.example. 30 IN A 10.96.0.20"]
    );
    assert_eq!(
        resolve(
            &v,
            &Name::from_ascii("frontend-svc.default.svc.cluster.local.").unwrap(),
            RecordType::A
        ),
        Resolution::NotOurs
    );
}

#[test]
fn before_the_first_push_the_default_domain_is_empty() {
    let v = ClusterView::default();
    let a = ask_in(&v, "frontend-svc.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert_nodata_in(&v, "svc.cluster.local.");
}

fn assert_nodata_in(v: &ClusterView, q: &str) {
    let a = ask_in(v, q, RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.answers.is_empty());
}

/// A dual-stack headless Service: each pod is an endpoint in the IPv4 and
/// the IPv6 slice.
fn dual_stack_view() -> ClusterView {
    let mut dual = cluster_ip(
        "default",
        "web",
        "fd00:10:96::20",
        vec![port("http", "TCP", 80)],
    );
    dual.cluster_ips = vec!["fd00:10:96::20".into(), "10.96.0.20".into()];
    view_of(vec![
        headless(
            "pg",
            vec![
                endpoint("10.244.1.10", "pg-0", true, 5432),
                endpoint("fd00:10:244:1::10", "pg-0", true, 5432),
                endpoint("fd00:10:244:2::10", "", true, 5432),
            ],
        ),
        dual,
    ])
}

#[test]
fn dual_stack_headless_services_answer_a_and_aaaa() {
    let view = dual_stack_view();
    let ask = |q: &str, t| lines(&ask_in(&view, q, t).answers);
    assert_eq!(
        ask("pg.db.svc.cluster.local.", RecordType::AAAA),
        [
            "pg.db.svc.cluster.local. 30 IN AAAA fd00:10:244:1::10",
            "pg.db.svc.cluster.local. 30 IN AAAA fd00:10:244:2::10"
        ]
    );
    assert_eq!(
        ask("pg-0.pg.db.svc.cluster.local.", RecordType::AAAA),
        ["pg-0.pg.db.svc.cluster.local. 30 IN AAAA fd00:10:244:1::10"]
    );
    assert_eq!(
        ask("pg-0.pg.db.svc.cluster.local.", RecordType::A),
        ["pg-0.pg.db.svc.cluster.local. 30 IN A 10.244.1.10"]
    );
    assert_eq!(
        ask(
            "fd00-10-244-2--10.pg.db.svc.cluster.local.",
            RecordType::AAAA
        ),
        ["fd00-10-244-2--10.pg.db.svc.cluster.local. 30 IN AAAA fd00:10:244:2::10"]
    );
    assert_eq!(
        ask(
            "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.",
            RecordType::PTR
        ),
        ["0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa. 30 IN PTR pg-0.pg.db.svc.cluster.local."]
    );
    assert_eq!(
        ask("fd00-10-244-1--10.db.pod.cluster.local.", RecordType::AAAA),
        ["fd00-10-244-1--10.db.pod.cluster.local. 30 IN AAAA fd00:10:244:1::10"]
    );
}

#[test]
fn a_dual_stack_cluster_ip_service_is_named_by_its_ipv4_address_only() {
    // Agents serve IPv4 only: an AAAA answer would send clients to an
    // address no node forwards.
    let view = dual_stack_view();
    let a = ask_in(&view, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        ["web.default.svc.cluster.local. 30 IN A 10.96.0.20"]
    );
    let aaaa = ask_in(&view, "web.default.svc.cluster.local.", RecordType::AAAA);
    assert!(aaaa.answers.is_empty(), "{:?}", aaaa.answers);
    assert_eq!(lines(&aaaa.authority), [SOA]);
}
