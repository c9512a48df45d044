//! Checks shared by every kind: object metadata, labels, ports, protocols
//! and IP addresses, each pushing errors in the API server's words.
//!
//! An unset `Option` is read as Go's zero value (`""`, `0`), so an object
//! that skipped defaulting fails the way Kubernetes would fail it.

use std::net::{IpAddr, Ipv4Addr};

use switchyard_api::resources::{IntOrString, Labels, ObjectMeta};

use super::field::{FieldError, FieldErrors};
use super::names;

/// Port protocols in the sorted order Kubernetes lists them.
pub(super) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
pub(super) const IMMUTABLE: &str = "field is immutable";
const NEGATIVE: &str = "must be greater than or equal to 0";
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const IPV4_MSG: &str = "must be a valid IPv4 address";
const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// A name rule (`names::dns1123_label` etc.) returning its messages.
pub(super) type NameRule = fn(&str) -> Vec<String>;

/// Whether a kind lives in a namespace; cluster-scoped kinds may not name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Namespaced,
    Cluster,
}

/// One `Invalid` error per message, as Kubernetes reports format failures.
pub(super) fn invalid_each(errs: &mut FieldErrors, path: &str, value: &str, msgs: Vec<String>) {
    for msg in msgs {
        errs.push(FieldError::invalid(path, value, msg));
    }
}

/// `Some(s)` when the optional string is set and non-empty.
pub(super) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

pub(super) fn object_meta(errs: &mut FieldErrors, meta: &ObjectMeta, scope: Scope, rule: NameRule) {
    if meta.name.is_empty() {
        errs.push(FieldError::required_because(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        invalid_each(errs, "metadata.name", &meta.name, rule(&meta.name));
    }
    namespace(errs, meta.namespace.as_deref(), scope);
    labels(errs, "metadata.labels", &meta.labels);
    for key in meta.annotations.keys() {
        // Kubernetes checks annotation keys case-insensitively.
        let msgs = names::qualified_name(&key.to_lowercase());
        invalid_each(errs, "metadata.annotations", key, msgs);
    }
}

/// The namespace is filled in by the API layer when omitted, so only a
/// given one is checked.
fn namespace(errs: &mut FieldErrors, ns: Option<&str>, scope: Scope) {
    let Some(ns) = non_empty(ns) else { return };
    match scope {
        Scope::Namespaced => invalid_each(errs, "metadata.namespace", ns, names::dns1123_label(ns)),
        Scope::Cluster => errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        )),
    }
}

pub(super) fn labels(errs: &mut FieldErrors, path: &str, labels: &Labels) {
    for (key, value) in labels {
        invalid_each(errs, path, key, names::qualified_name(key));
        invalid_each(errs, path, value, names::label_value(value));
    }
}

pub(super) fn protocol(errs: &mut FieldErrors, path: &str, protocol: Option<&str>) {
    match non_empty(protocol) {
        None => errs.push(FieldError::required(path)),
        Some(p) if !PROTOCOLS.contains(&p) => {
            errs.push(FieldError::not_supported(path, p, PROTOCOLS));
        }
        Some(_) => {}
    }
}

pub(super) fn port_number(errs: &mut FieldErrors, path: &str, port: i32) {
    if let Some(msg) = names::port_num(port.into()) {
        errs.push(FieldError::invalid(path, port, msg));
    }
}

/// A target or probe port: a number, or the IANA name of a container port.
pub(super) fn port_number_or_name(errs: &mut FieldErrors, path: &str, port: Option<&IntOrString>) {
    match port {
        None => port_number(errs, path, 0),
        Some(IntOrString::Int(n)) => port_number(errs, path, *n),
        Some(IntOrString::String(name)) => invalid_each(errs, path, name, names::port_name(name)),
    }
}

pub(super) fn non_negative(errs: &mut FieldErrors, path: &str, value: Option<i32>) {
    if let Some(v) = value.filter(|v| *v < 0) {
        errs.push(FieldError::invalid(path, v, NEGATIVE));
    }
}

/// Any IP address, as `IsValidIP` accepts it.
pub(super) fn ip(errs: &mut FieldErrors, path: &str, value: &str) -> Option<IpAddr> {
    let parsed = value.parse::<IpAddr>().ok();
    if parsed.is_none() {
        errs.push(FieldError::invalid(path, value, IP_MSG));
    }
    parsed
}

/// An IP the IPv4-only data path can program: anything else is rejected
/// here rather than NACKed by every agent later.
pub(super) fn ipv4(errs: &mut FieldErrors, path: &str, value: &str) -> Option<Ipv4Addr> {
    match ip(errs, path, value)? {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => {
            errs.push(FieldError::invalid(path, value, IPV4_MSG));
            None
        }
    }
}

/// Like `ipv4`, with the IPv4 message for every failure, as EndpointSlices
/// of type IPv4 report it.
pub(super) fn strict_ipv4(errs: &mut FieldErrors, path: &str, value: &str) -> Option<Ipv4Addr> {
    let parsed = value.parse::<Ipv4Addr>().ok();
    if parsed.is_none() {
        errs.push(FieldError::invalid(path, value, IPV4_MSG));
    }
    parsed
}

/// Rejects addresses that make no sense as a service or endpoint address:
/// unspecified, loopback, link-local (often a metadata service).
pub(super) fn non_special_ip(errs: &mut FieldErrors, path: &str, value: &str, ip: IpAddr) {
    let mut reject = |msg: String| errs.push(FieldError::invalid(path, value, msg));
    if ip.is_unspecified() {
        reject(format!("may not be unspecified ({value})"));
    }
    if ip.is_loopback() {
        reject("may not be in the loopback range (127.0.0.0/8, ::1/128)".to_string());
    }
    if is_link_local_unicast(ip) {
        reject("may not be in the link-local range (169.254.0.0/16, fe80::/10)".to_string());
    }
    if is_link_local_multicast(ip) {
        reject(
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".to_string(),
        );
    }
}

fn is_link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Go's `IsLinkLocalMulticast`: 224.0.0.0/24 and ff02::/16 (any flags).
fn is_link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets(), [224, 0, 0, _]),
        IpAddr::V6(v6) => v6.octets()[0] == 0xff && v6.octets()[1] & 0x0f == 0x02,
    }
}

pub(super) fn cidr(errs: &mut FieldErrors, path: &str, value: &str) {
    if value.parse::<ipnet::IpNet>().is_err() {
        errs.push(FieldError::invalid(path, value, CIDR_MSG));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl FnOnce(&mut FieldErrors)) -> String {
        let mut errs = FieldErrors::default();
        f(&mut errs);
        errs.to_string()
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn name_is_required() {
        let out = run(|e| object_meta(e, &meta(""), Scope::Namespaced, names::dns1123_label));
        assert_eq!(
            out,
            "metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn namespace_must_be_a_label_when_given() {
        let mut m = meta("x");
        m.namespace = Some("Prod".to_string());
        let out = run(|e| object_meta(e, &m, Scope::Namespaced, names::dns1123_label));
        assert_eq!(
            out,
            format!(
                "metadata.namespace: Invalid value: \"Prod\": {}",
                names::dns1123_label("Prod")[0]
            )
        );
        m.namespace = None;
        assert_eq!(
            run(|e| object_meta(e, &m, Scope::Namespaced, names::dns1123_label)),
            "[]"
        );
    }

    #[test]
    fn cluster_scoped_kinds_take_no_namespace() {
        let mut m = meta("x");
        m.namespace = Some("default".to_string());
        let out = run(|e| object_meta(e, &m, Scope::Cluster, names::dns1123_label));
        assert_eq!(
            out,
            "metadata.namespace: Forbidden: not allowed on this type"
        );
    }

    #[test]
    fn label_keys_and_values_are_checked() {
        let mut m = meta("x");
        m.labels.insert("app".to_string(), "-bad".to_string());
        m.labels.insert("a/b/c".to_string(), "ok".to_string());
        let out = run(|e| object_meta(e, &m, Scope::Namespaced, names::dns1123_label));
        assert_eq!(
            out,
            format!(
                "[metadata.labels: Invalid value: \"a/b/c\": {}, metadata.labels: Invalid value: \"-bad\": {}]",
                names::qualified_name("a/b/c")[0],
                names::label_value("-bad")[0]
            )
        );
    }

    #[test]
    fn annotation_keys_are_case_insensitive_qualified_names() {
        let mut m = meta("x");
        m.annotations
            .insert("Example.COM/Key".to_string(), "anything at all".to_string());
        assert_eq!(
            run(|e| object_meta(e, &m, Scope::Namespaced, names::dns1123_label)),
            "[]"
        );
        m.annotations.insert("bad key".to_string(), String::new());
        let out = run(|e| object_meta(e, &m, Scope::Namespaced, names::dns1123_label));
        assert_eq!(
            out,
            format!(
                "metadata.annotations: Invalid value: \"bad key\": {}",
                names::qualified_name("bad key")[0]
            )
        );
    }

    #[test]
    fn protocols() {
        assert_eq!(run(|e| protocol(e, "p", None)), "p: Required value");
        assert_eq!(
            run(|e| protocol(e, "p", Some("HTTP"))),
            "p: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        );
        assert_eq!(run(|e| protocol(e, "p", Some("SCTP"))), "[]");
    }

    #[test]
    fn ports_by_number_or_name() {
        let name = IntOrString::String("Http".to_string());
        assert_eq!(
            run(|e| port_number_or_name(e, "t", Some(&name))),
            "t: Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
        );
        assert_eq!(
            run(|e| port_number_or_name(e, "t", Some(&IntOrString::Int(70000)))),
            "t: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            run(|e| port_number_or_name(e, "t", None)),
            "t: Invalid value: 0: must be between 1 and 65535, inclusive"
        );
    }

    #[test]
    fn special_ips_are_rejected() {
        let check = |v: &str| {
            run(|e| {
                if let Some(ip) = ip(e, "x", v) {
                    non_special_ip(e, "x", v, ip);
                }
            })
        };
        assert_eq!(
            check("0.0.0.0"),
            "x: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)"
        );
        assert_eq!(
            check("127.0.0.1"),
            "x: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
        );
        assert_eq!(
            check("169.254.169.254"),
            "x: Invalid value: \"169.254.169.254\": may not be in the link-local range (169.254.0.0/16, fe80::/10)"
        );
        assert_eq!(
            check("224.0.0.5"),
            "x: Invalid value: \"224.0.0.5\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
        );
        assert_eq!(
            check("fe80::1"),
            "x: Invalid value: \"fe80::1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)"
        );
        assert_eq!(
            check("ff02::1"),
            "x: Invalid value: \"ff02::1\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
        );
        assert_eq!(check("203.0.113.7"), "[]");
        assert_eq!(check("239.1.1.1"), "[]");
    }

    #[test]
    fn ipv4_only_fields() {
        assert_eq!(
            run(|e| {
                ipv4(e, "x", "1.2.3");
            }),
            "x: Invalid value: \"1.2.3\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
        assert_eq!(
            run(|e| {
                ipv4(e, "x", "2001:db8::1");
            }),
            "x: Invalid value: \"2001:db8::1\": must be a valid IPv4 address"
        );
        assert_eq!(
            run(|e| {
                strict_ipv4(e, "x", "nope");
            }),
            "x: Invalid value: \"nope\": must be a valid IPv4 address"
        );
    }

    #[test]
    fn cidrs_and_non_negative_numbers() {
        assert_eq!(
            run(|e| cidr(e, "c", "10.0.0.0")),
            "c: Invalid value: \"10.0.0.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        );
        assert_eq!(run(|e| cidr(e, "c", "10.0.0.0/8")), "[]");
        assert_eq!(
            run(|e| non_negative(e, "n", Some(-1))),
            "n: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(run(|e| non_negative(e, "n", Some(0))), "[]");
    }
}
