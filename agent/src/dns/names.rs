//! Which part of the Kubernetes DNS schema a query name points at.
//!
//! Classifying first keeps record building ([`super::records`]) free of
//! label arithmetic, and lets the two be tested apart. Comparisons are
//! case-insensitive, as the specification requires: labels are lowercased
//! before matching.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::Name;

use crate::model::ServiceKey;

/// What a query name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `<zone>` itself: SOA and NS live here.
    Apex,
    /// `dns-version.<zone>`: the schema version TXT record.
    Version,
    /// `ns.dns.<zone>`: the responder's own name, which the apex NS names.
    Nameserver,
    /// Names that exist only as parents of others (`svc.<zone>`,
    /// `dns.<zone>`, `pod.<zone>`, `<ns>.pod.<zone>`): NODATA, never NXDOMAIN,
    /// so resolvers do not prune the subtree below them (RFC 8020).
    Interior,
    /// `<ns>.svc.<zone>`: exists while some Service lives in the namespace.
    Namespace(String),
    /// `<service>.<ns>.svc.<zone>`.
    Service(ServiceKey),
    /// `<host>.<service>.<ns>.svc.<zone>`: one endpoint of a headless Service.
    Endpoint { service: ServiceKey, host: String },
    /// `_<proto>.<service>.<ns>.svc.<zone>`: the parent of the SRV names.
    SrvProto { service: ServiceKey, proto: String },
    /// `_<port>._<proto>.<service>.<ns>.svc.<zone>`.
    Srv {
        service: ServiceKey,
        port: String,
        proto: String,
    },
    /// `<a>-<b>-<c>-<d>.<ns>.pod.<zone>` (an IPv6 address with its colons
    /// dashed): deprecated by the specification but still required by it.
    Pod(IpAddr),
    /// `<d>.<c>.<b>.<a>.in-addr.arpa.`, or the 32 nibbles of an IPv6
    /// address under `ip6.arpa.`.
    Reverse(IpAddr),
    /// Inside the zone but matching no part of the schema: NXDOMAIN.
    Unknown,
    /// Outside the zone and not a reverse name: forwarded or refused.
    Outside,
}

/// Classifies `qname` against the cluster zone `zone` (lowercase, FQDN).
pub fn classify(qname: &Name, zone: &Name) -> Target {
    let qname = fqdn(qname).to_lowercase();
    if zone.zone_of(&qname) {
        // Counted by iterating: `num_labels` leaves out a leading `*`.
        let relative = label_count(&qname) - label_count(zone);
        let labels = labels(&qname, relative);
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        return in_zone(&labels);
    }
    reverse(&qname).map_or(Target::Outside, Target::Reverse)
}

/// The zone's name as a lowercase FQDN; `None` when `domain` is not a name.
pub fn zone_name(domain: &str) -> Option<Name> {
    let domain = domain.trim_end_matches('.');
    if domain.is_empty() {
        return None;
    }
    let mut name = Name::from_ascii(domain).ok()?;
    name.set_fqdn(true);
    Some(name.to_lowercase())
}

fn fqdn(name: &Name) -> Name {
    let mut name = name.clone();
    name.set_fqdn(true);
    name
}

fn label_count(name: &Name) -> usize {
    name.iter().count()
}

/// The first `n` labels of `name`, leftmost first.
fn labels(name: &Name, n: usize) -> Vec<String> {
    name.iter()
        .take(n)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

fn key(ns: &str, svc: &str) -> ServiceKey {
    ServiceKey::new(ns, svc)
}

fn in_zone(labels: &[&str]) -> Target {
    match labels {
        [] => Target::Apex,
        ["dns-version"] => Target::Version,
        ["ns", "dns"] => Target::Nameserver,
        ["dns" | "svc" | "pod"] | [_, "pod"] => Target::Interior,
        [ns, "svc"] => Target::Namespace(ns.to_string()),
        [svc, ns, "svc"] => Target::Service(key(ns, svc)),
        [label, svc, ns, "svc"] => match label.strip_prefix('_') {
            Some(proto) => Target::SrvProto {
                service: key(ns, svc),
                proto: proto.to_string(),
            },
            None => Target::Endpoint {
                service: key(ns, svc),
                host: label.to_string(),
            },
        },
        [port, proto, svc, ns, "svc"] => srv(port, proto, key(ns, svc)),
        [ip, _, "pod"] => dashed_ip(ip).map_or(Target::Unknown, Target::Pod),
        _ => Target::Unknown,
    }
}

fn srv(port: &str, proto: &str, service: ServiceKey) -> Target {
    match (port.strip_prefix('_'), proto.strip_prefix('_')) {
        (Some(port), Some(proto)) => Target::Srv {
            service,
            port: port.to_string(),
            proto: proto.to_string(),
        },
        _ => Target::Unknown,
    }
}

/// `10-244-1-5` → 10.244.1.5; `fd00-10-244-1--11` → fd00:10:244:1::11.
fn dashed_ip(label: &str) -> Option<IpAddr> {
    let v4 = label.replace('-', ".").parse::<Ipv4Addr>().map(IpAddr::V4);
    v4.or_else(|_| label.replace('-', ":").parse::<Ipv6Addr>().map(IpAddr::V6))
        .ok()
}

/// `5.1.244.10.in-addr.arpa.` → 10.244.1.5, and the nibble form of
/// `ip6.arpa.`; partial reverse names (whole networks) are not ours.
fn reverse(qname: &Name) -> Option<IpAddr> {
    match label_count(qname) {
        6 => reverse_v4(&labels(qname, 6)).map(IpAddr::V4),
        34 => reverse_v6(&labels(qname, 34)).map(IpAddr::V6),
        _ => None,
    }
}

fn reverse_v4(labels: &[String]) -> Option<Ipv4Addr> {
    if labels[4] != "in-addr" || labels[5] != "arpa" {
        return None;
    }
    let octets: Vec<u8> = labels[..4]
        .iter()
        .rev()
        .map(|l| l.parse().ok())
        .collect::<Option<_>>()?;
    Some(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
}

/// 32 one-digit hex labels, least significant first, then `ip6.arpa`.
fn reverse_v6(labels: &[String]) -> Option<Ipv6Addr> {
    if labels[32] != "ip6" || labels[33] != "arpa" {
        return None;
    }
    let mut value: u128 = 0;
    for nibble in labels[..32].iter().rev() {
        if nibble.len() != 1 {
            return None;
        }
        value = value << 4 | u128::from_str_radix(nibble, 16).ok()?;
    }
    Some(Ipv6Addr::from(value))
}

/// `<host-label>` for an endpoint without a hostname: its dashed address,
/// the system-assigned identifier the specification asks for (CoreDNS's
/// form: dots, or an IPv6 address's colons, become dashes).
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// `a.b.c.d` → `d.c.b.a.in-addr.arpa.`; an IPv6 address → its 32 nibbles,
/// least significant first, under `ip6.arpa.`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let hex = format!("{:032x}", u128::from(v6));
            let mut name: String = hex.chars().rev().flat_map(|c| [c, '.']).collect();
            name.push_str("ip6.arpa.");
            name
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn zone() -> Name {
        zone_name("cluster.local").unwrap()
    }

    fn classify_str(q: &str) -> Target {
        classify(&Name::from_ascii(q).unwrap(), &zone())
    }

    #[test]
    fn zone_names_are_lowercase_fqdns() {
        assert_eq!(zone().to_string(), "cluster.local.");
        assert_eq!(
            zone_name("Corp.Example.").unwrap().to_string(),
            "corp.example."
        );
        assert_eq!(zone_name("bad..name"), None);
        assert_eq!(zone_name(""), None);
        assert_eq!(zone_name("."), None);
    }

    #[test]
    fn schema_names() {
        assert_eq!(classify_str("cluster.local."), Target::Apex);
        assert_eq!(classify_str("dns-version.cluster.local."), Target::Version);
        assert_eq!(classify_str("ns.dns.cluster.local."), Target::Nameserver);
        for interior in ["svc", "dns", "pod", "default.pod"] {
            assert_eq!(
                classify_str(&format!("{interior}.cluster.local.")),
                Target::Interior,
                "{interior}"
            );
        }
        assert_eq!(
            classify_str("default.svc.cluster.local."),
            Target::Namespace("default".into())
        );
    }

    #[test]
    fn service_names_are_case_insensitive() {
        let svc = Target::Service(ServiceKey::new("default", "frontend-svc"));
        assert_eq!(classify_str("frontend-svc.default.svc.cluster.local."), svc);
        assert_eq!(classify_str("Frontend-SVC.Default.SVC.Cluster.Local."), svc);
        // A name without the trailing dot is the same name.
        assert_eq!(classify_str("frontend-svc.default.svc.cluster.local"), svc);
    }

    #[test]
    fn endpoint_and_srv_names() {
        let key = ServiceKey::new("db", "pg");
        assert_eq!(
            classify_str("pg-0.pg.db.svc.cluster.local."),
            Target::Endpoint {
                service: key.clone(),
                host: "pg-0".into()
            }
        );
        assert_eq!(
            classify_str("_TCP.pg.db.svc.cluster.local."),
            Target::SrvProto {
                service: key.clone(),
                proto: "tcp".into()
            }
        );
        assert_eq!(
            classify_str("_postgres._tcp.pg.db.svc.cluster.local."),
            Target::Srv {
                service: key,
                port: "postgres".into(),
                proto: "tcp".into()
            }
        );
        assert_eq!(
            classify_str("postgres._tcp.pg.db.svc.cluster.local."),
            Target::Unknown
        );
    }

    #[test]
    fn pod_names() {
        assert_eq!(
            classify_str("10-244-1-5.default.pod.cluster.local."),
            Target::Pod(Ipv4Addr::new(10, 244, 1, 5).into())
        );
        assert_eq!(
            classify_str("10-244-1-500.default.pod.cluster.local."),
            Target::Unknown
        );
    }

    #[test]
    fn wildcards_are_plain_labels() {
        assert_eq!(
            classify_str("*.default.svc.cluster.local."),
            Target::Service(ServiceKey::new("default", "*"))
        );
    }

    #[test]
    fn unknown_names_inside_the_zone() {
        for q in [
            "foo.cluster.local.",
            "a.b.c.d.e.svc.cluster.local.",
            "x.frontend-svc.default.other.cluster.local.",
        ] {
            assert_eq!(classify_str(q), Target::Unknown, "{q}");
        }
    }

    #[test]
    fn names_outside_the_zone() {
        for q in [
            "example.com.",
            "local.",
            "cluster.local.example.com.",
            "xcluster.local.",
            "96.10.in-addr.arpa.",
            "1.0.96.10.ip6.arpa.",
        ] {
            assert_eq!(classify_str(q), Target::Outside, "{q}");
        }
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            classify_str("10.0.96.10.IN-ADDR.ARPA."),
            Target::Reverse(Ipv4Addr::new(10, 96, 0, 10).into())
        );
        assert_eq!(classify_str("300.0.96.10.in-addr.arpa."), Target::Outside);
        assert_eq!(
            reverse_name(Ipv4Addr::new(10, 96, 0, 10).into()),
            "10.0.96.10.in-addr.arpa."
        );
        assert_eq!(dashed(Ipv4Addr::new(10, 244, 1, 5).into()), "10-244-1-5");
    }

    #[test]
    fn ipv6_reverse_and_pod_names() {
        let ip: IpAddr = "fd00:10:244:1::11".parse().unwrap();
        let name = reverse_name(ip);
        assert_eq!(
            name,
            "1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa."
        );
        assert_eq!(classify_str(&name.to_uppercase()), Target::Reverse(ip));
        assert_eq!(
            classify_str("1.1.0.ip6.arpa."),
            Target::Outside,
            "a network"
        );
        assert_eq!(
            classify_str(&name.replacen("1.1.", "11.", 1)),
            Target::Outside
        );
        assert_eq!(dashed(ip), "fd00-10-244-1--11");
        assert_eq!(
            classify_str("fd00-10-244-1--11.default.pod.cluster.local."),
            Target::Pod(ip)
        );
    }

    #[test]
    fn other_cluster_domains() {
        let zone = zone_name("corp.example").unwrap();
        let q = Name::from_ascii("web.prod.svc.corp.example.").unwrap();
        assert_eq!(
            classify(&q, &zone),
            Target::Service(ServiceKey::new("prod", "web"))
        );
        let q = Name::from_ascii("web.prod.svc.cluster.local.").unwrap();
        assert_eq!(classify(&q, &zone), Target::Outside);
    }
}
