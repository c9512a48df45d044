//! The answers the cluster zone gives, per the Kubernetes DNS-Based Service
//! Discovery specification (schema 1.1.0), computed purely from the agent's
//! [`ClusterView`]. No IO: the responder ([`super::responder`]) asks
//! [`resolve`] for each question and only serializes what comes back.
//!
//! Shape of an answer, as the specification and RFC 2308 ask:
//! - a name with records of the asked type: those records (NOERROR);
//! - a name that exists but has no record of that type (an AAAA question for
//!   a Service, any question for `svc.<zone>`): NODATA — NOERROR, no
//!   answers, the zone's SOA in the authority section;
//! - a name that does not exist (including a headless Service with no ready
//!   endpoint, which the specification says answers NXDOMAIN): NXDOMAIN with
//!   the SOA;
//! - an ExternalName Service: a CNAME, followed inside the zone here, and
//!   outside it by the responder through its upstreams ([`Answer::chase`]).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use switchyard_api::v1::{Endpoint, ServicePort, ServiceState};

use super::names::{classify, dashed, zone_name, Target};
use crate::model::ServiceKey;
use crate::view::ClusterView;

/// TTL of every record and of negative answers (the SOA minimum). The
/// specification leaves `<ttl>` to the implementation; 30 s is kube-dns's
/// choice, short enough that a changed Service reaches caching clients soon.
pub const TTL: u32 = 30;

/// The specification version this responder implements, served as TXT at
/// `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The cluster domain when the control plane has not sent one yet.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// How many CNAMEs are followed inside the zone before giving up (a loop of
/// ExternalName Services pointing at each other must still terminate).
const MAX_CHAIN: usize = 8;

/// What the responder does with one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The cluster zone (or a reverse name it owns) answers authoritatively.
    Answer(Answer),
    /// Not ours: forward to the upstreams if there are any, else REFUSED.
    NotOurs,
}

/// An authoritative answer's sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR (with or without data) or NXDOMAIN.
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    /// The zone's SOA for NODATA and NXDOMAIN answers (negative caching).
    pub authority: Vec<Record>,
    /// Addresses of the targets of SRV and NS answers.
    pub additionals: Vec<Record>,
    /// The answer ends in a CNAME to this name outside the zone: the
    /// responder should append what its upstreams say about it.
    pub chase: Option<Name>,
}

/// Answers `qname`/`qtype` from `view`.
pub fn resolve(view: &ClusterView, qname: &Name, qtype: RecordType) -> Resolution {
    let zone = Zone::new(view);
    match classify(qname, &zone.origin) {
        Target::Outside => Resolution::NotOurs,
        Target::Reverse(ip) => zone.reverse(qname, ip, qtype),
        target => Resolution::Answer(zone.answer(qname, &target, qtype, 0)),
    }
}

/// Every record at one name, or its absence.
enum Node {
    Missing,
    Present(Vec<Record>),
}

/// The cluster zone as one view of the cluster defines it.
struct Zone<'a> {
    view: &'a ClusterView,
    /// `<zone>.`, lowercase.
    origin: Name,
}

impl<'a> Zone<'a> {
    fn new(view: &'a ClusterView) -> Self {
        let origin = zone_name(&view.cluster.cluster_domain)
            .or_else(|| zone_name(DEFAULT_DOMAIN))
            .unwrap_or_else(Name::root);
        Zone { view, origin }
    }

    fn answer(&self, qname: &Name, target: &Target, qtype: RecordType, depth: usize) -> Answer {
        let records = match self.node(qname, target) {
            Node::Missing => return self.negative(ResponseCode::NXDomain),
            Node::Present(records) => records,
        };
        let (matching, others): (Vec<Record>, Vec<Record>) = records
            .into_iter()
            .partition(|r| qtype == RecordType::ANY || r.record_type() == qtype);
        if !matching.is_empty() {
            let additionals = self.additionals(&matching);
            return Answer {
                rcode: ResponseCode::NoError,
                answers: matching,
                authority: Vec::new(),
                additionals,
                chase: None,
            };
        }
        match others
            .into_iter()
            .find(|r| r.record_type() == RecordType::CNAME)
        {
            Some(cname) => self.follow(cname, qtype, depth),
            None => self.negative(ResponseCode::NoError),
        }
    }

    /// Prepends `cname` to the answer for its target: resolved here when the
    /// target is in the zone, left to the responder when it is not.
    fn follow(&self, cname: Record, qtype: RecordType, depth: usize) -> Answer {
        let RData::CNAME(CNAME(next)) = &cname.data else {
            return self.negative(ResponseCode::NoError);
        };
        let next = next.clone();
        let mut answer = match classify(&next, &self.origin) {
            Target::Outside | Target::Reverse(_) => Answer {
                rcode: ResponseCode::NoError,
                answers: Vec::new(),
                authority: Vec::new(),
                additionals: Vec::new(),
                chase: Some(next),
            },
            _ if depth >= MAX_CHAIN => self.negative(ResponseCode::NoError),
            target => self.answer(&next, &target, qtype, depth + 1),
        };
        answer.answers.insert(0, cname);
        answer
    }

    /// NODATA (`NoError`) or NXDOMAIN, with the SOA for negative caching.
    fn negative(&self, rcode: ResponseCode) -> Answer {
        Answer {
            rcode,
            answers: Vec::new(),
            authority: vec![self.soa()],
            additionals: Vec::new(),
            chase: None,
        }
    }

    /// The address records of the names SRV and NS answers point at.
    fn additionals(&self, answers: &[Record]) -> Vec<Record> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for r in answers {
            let target = match &r.data {
                RData::SRV(srv) => &srv.target,
                RData::NS(NS(name)) => name,
                _ => continue,
            };
            if !seen.insert(target.to_string()) {
                continue;
            }
            if let Node::Present(records) = self.node(target, &classify(target, &self.origin)) {
                out.extend(
                    records
                        .into_iter()
                        .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA)),
                );
            }
        }
        out
    }

    fn node(&self, owner: &Name, target: &Target) -> Node {
        match target {
            Target::Apex => Node::Present(vec![self.soa(), self.ns()]),
            Target::Version => Node::Present(vec![record(
                owner,
                RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
            )]),
            Target::Nameserver => Node::Present(self.nameserver(owner)),
            Target::Interior => Node::Present(Vec::new()),
            Target::Namespace(ns) => self.namespace(ns),
            Target::Service(key) => self.with_service(key, |s| service_node(owner, s)),
            Target::Endpoint { service, host } => {
                self.with_service(service, |s| endpoint_node(owner, s, host))
            }
            Target::SrvProto { service, proto } => {
                self.with_service(service, |s| srv_proto_node(s, proto))
            }
            Target::Srv {
                service,
                port,
                proto,
            } => self.with_service(service, |s| self.srv_node(owner, s, port, proto)),
            Target::Pod(ip) => Node::Present(vec![address(owner, *ip)]),
            Target::Reverse(_) | Target::Unknown | Target::Outside => Node::Missing,
        }
    }

    fn with_service(&self, key: &ServiceKey, f: impl FnOnce(&ServiceState) -> Node) -> Node {
        match self.view.services.get(key) {
            Some(s) => f(s),
            None => Node::Missing,
        }
    }

    /// `<ns>.svc.<zone>` exists while a Service lives in `ns`.
    fn namespace(&self, ns: &str) -> Node {
        let first = self.view.services.range(ServiceKey::new(ns, "")..).next();
        match first {
            Some((k, _)) if *k.namespace == *ns => Node::Present(Vec::new()),
            _ => Node::Missing,
        }
    }

    fn srv_node(&self, owner: &Name, s: &ServiceState, port: &str, proto: &str) -> Node {
        let Some(port) = named_port(s, port, proto) else {
            return Node::Missing;
        };
        let records = if s.headless {
            headless_srv(owner, s, port, &self.service_name(s))
        } else if is_external_name(s) {
            Vec::new()
        } else {
            let target = self.service_name(s);
            vec![record(owner, srv(100, port_number(port.port), target))]
        };
        if records.is_empty() {
            Node::Missing
        } else {
            Node::Present(records)
        }
    }

    /// `<service>.<ns>.svc.<zone>.`
    fn service_name(&self, s: &ServiceState) -> Name {
        self.name(&[&s.name, &s.namespace, "svc"])
    }

    /// `labels` prepended to the zone (labels were validated as DNS labels
    /// by the control plane; the zone itself is returned if one is not).
    fn name(&self, labels: &[&str]) -> Name {
        let mut name = self.origin.clone();
        for label in labels.iter().rev() {
            match name.prepend_label(label.to_ascii_lowercase().as_str()) {
                Ok(n) => name = n,
                Err(_) => return self.origin.clone(),
            }
        }
        name
    }

    fn soa(&self) -> Record {
        let rdata = SOA::new(
            self.name(&["ns", "dns"]),
            self.name(&["hostmaster"]),
            // Serial arithmetic wraps (RFC 1982), so truncation is the intent.
            self.view.version as u32,
            7200,
            1800,
            86400,
            TTL,
        );
        record(&self.origin, RData::SOA(rdata))
    }

    fn ns(&self) -> Record {
        record(&self.origin, RData::NS(NS(self.name(&["ns", "dns"]))))
    }

    /// The address the pods know the responder by: `--cluster-dns`.
    fn nameserver(&self, owner: &Name) -> Vec<Record> {
        Ipv4Addr::from_str(&self.view.cluster.cluster_dns)
            .map(|ip| vec![record(owner, RData::A(A(ip)))])
            .unwrap_or_default()
    }

    /// PTR answers for `ip`; not ours when nothing in the cluster has it,
    /// so the upstreams (or REFUSED) deal with the rest of the reverse space.
    fn reverse(&self, qname: &Name, ip: IpAddr, qtype: RecordType) -> Resolution {
        let targets = self.ptr_targets(ip);
        if targets.is_empty() || !matches!(qtype, RecordType::PTR | RecordType::ANY) {
            return Resolution::NotOurs;
        }
        Resolution::Answer(Answer {
            rcode: ResponseCode::NoError,
            answers: targets
                .into_iter()
                .map(|t| record(qname, RData::PTR(PTR(t))))
                .collect(),
            authority: Vec::new(),
            additionals: Vec::new(),
            chase: None,
        })
    }

    /// The names `ip` has: Services whose ClusterIP it is, and published
    /// endpoints of headless Services. A scan of every Service: reverse
    /// lookups are rare next to forward ones, so no index is kept.
    fn ptr_targets(&self, ip: IpAddr) -> BTreeSet<Name> {
        let mut targets = BTreeSet::new();
        for s in self.view.services.values() {
            if s.headless {
                for (e, _) in published(s).into_iter().filter(|(_, eip)| *eip == ip) {
                    let host = host_label(e, ip);
                    targets.insert(self.name(&[&host, &s.name, &s.namespace, "svc"]));
                }
            } else if !is_external_name(s) && s.ipv4_cluster_ip().map(IpAddr::V4) == Some(ip) {
                targets.insert(self.service_name(s));
            }
        }
        targets
    }
}

fn record(owner: &Name, rdata: RData) -> Record {
    Record::from_rdata(owner.clone(), TTL, rdata)
}

/// An A or AAAA record, by the address's family.
fn address(owner: &Name, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => record(owner, RData::A(A(v4))),
        IpAddr::V6(v6) => record(owner, RData::AAAA(AAAA(v6))),
    }
}

fn srv(weight: u16, port: u16, target: Name) -> RData {
    RData::SRV(SRV::new(0, weight, port, target))
}

fn is_external_name(s: &ServiceState) -> bool {
    s.r#type == "ExternalName"
}

/// Endpoints a headless Service publishes: the ready ones, or all of them
/// with `publishNotReadyAddresses`; each address once. Pods reach each
/// other directly over either family, so both are published (A and AAAA).
fn published(s: &ServiceState) -> Vec<(&Endpoint, IpAddr)> {
    let mut seen = BTreeSet::new();
    s.endpoints
        .iter()
        .filter(|e| e.ready || s.publish_not_ready)
        .filter_map(|e| Some((e, e.ip.parse::<IpAddr>().ok()?)))
        .filter(|(_, ip)| seen.insert(*ip))
        .collect()
}

/// The endpoint's _hostname_ in the specification's sense: its `hostname`,
/// else its dashed address.
fn host_label(e: &Endpoint, ip: IpAddr) -> String {
    if e.hostname.is_empty() {
        dashed(ip)
    } else {
        e.hostname.to_ascii_lowercase()
    }
}

fn service_node(owner: &Name, s: &ServiceState) -> Node {
    if is_external_name(s) {
        return external_name_node(owner, s);
    }
    if s.headless {
        let ips: Vec<Record> = published(s)
            .into_iter()
            .map(|(_, ip)| address(owner, ip))
            .collect();
        // The specification: no ready endpoint → NXDOMAIN.
        return if ips.is_empty() {
            Node::Missing
        } else {
            Node::Present(ips)
        };
    }
    let a = s.ipv4_cluster_ip();
    Node::Present(
        a.map(|ip| record(owner, RData::A(A(ip))))
            .into_iter()
            .collect(),
    )
}

fn external_name_node(owner: &Name, s: &ServiceState) -> Node {
    let target = s.external_name.trim_end_matches('.');
    match Name::from_ascii(target) {
        Ok(mut name) if !target.is_empty() => {
            name.set_fqdn(true);
            Node::Present(vec![record(owner, RData::CNAME(CNAME(name)))])
        }
        _ => Node::Present(Vec::new()),
    }
}

fn endpoint_node(owner: &Name, s: &ServiceState, host: &str) -> Node {
    if !s.headless {
        return Node::Missing;
    }
    let ips: Vec<Record> = published(s)
        .into_iter()
        .filter(|(e, ip)| host_label(e, *ip) == host)
        .map(|(_, ip)| address(owner, ip))
        .collect();
    if ips.is_empty() {
        Node::Missing
    } else {
        Node::Present(ips)
    }
}

/// `_<proto>.<service>…` exists when some SRV name below it does.
fn srv_proto_node(s: &ServiceState, proto: &str) -> Node {
    let has_named = s
        .ports
        .iter()
        .any(|p| !p.name.is_empty() && p.protocol.eq_ignore_ascii_case(proto));
    let served = !is_external_name(s) && (!s.headless || !published(s).is_empty());
    if has_named && served {
        Node::Present(Vec::new())
    } else {
        Node::Missing
    }
}

/// The Service port named `port` with protocol `proto`; unnamed ports have
/// no SRV record.
fn named_port<'s>(s: &'s ServiceState, port: &str, proto: &str) -> Option<&'s ServicePort> {
    s.ports.iter().find(|p| {
        !p.name.is_empty()
            && p.name.eq_ignore_ascii_case(port)
            && p.protocol.eq_ignore_ascii_case(proto)
    })
}

/// One SRV per published endpoint, pointing at its `<host>.<service>…`
/// name. The port is the endpoint's resolved target port (clients of a
/// headless Service connect to the pod directly, not through a proxy),
/// falling back to the Service port when the endpoint does not list one.
fn headless_srv(owner: &Name, s: &ServiceState, port: &ServicePort, service: &Name) -> Vec<Record> {
    let endpoints = published(s);
    let weight = u16::try_from(100 / endpoints.len().max(1))
        .unwrap_or(1)
        .max(1);
    endpoints
        .into_iter()
        .filter_map(|(e, ip)| {
            let target = service.prepend_label(host_label(e, ip).as_str()).ok()?;
            let number = s
                .endpoint_ports(e)
                .iter()
                .find(|p| p.name == port.name && p.protocol.eq_ignore_ascii_case(&port.protocol))
                .map_or(port.port, |p| p.port);
            Some(record(owner, srv(weight, port_number(number), target)))
        })
        .collect()
}

fn port_number(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(0)
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
