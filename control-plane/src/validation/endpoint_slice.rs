//! EndpointSlice validation, after `ValidateEndpointSlice` in Kubernetes'
//! discovery group. Paths have no `spec.` prefix: the fields sit at the top
//! of the object, as in `discovery.k8s.io/v1`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use switchyard_api::resources::{Endpoint, EndpointPort, EndpointSlice};

use super::common::{self, Scope};
use super::field::{FieldError, FieldErrors};
use super::names;

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;

pub(super) fn validate(s: &EndpointSlice) -> FieldErrors {
    let mut errs = FieldErrors::default();
    common::object_meta(
        &mut errs,
        &s.metadata,
        Scope::Namespaced,
        names::dns1123_subdomain,
    );
    address_type(&mut errs, &s.address_type);
    endpoints(&mut errs, &s.endpoints, &s.address_type);
    ports(&mut errs, &s.ports);
    errs
}

fn address_type(errs: &mut FieldErrors, ty: &str) {
    if ty.is_empty() {
        errs.push(FieldError::required("addressType"));
    } else if !ADDRESS_TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("addressType", ty, ADDRESS_TYPES));
    }
}

/// `field.rs` has no "Too many" reason, so size limits read as an invalid
/// count with Kubernetes' own detail text.
fn too_many(errs: &mut FieldErrors, path: &str, count: usize, max: usize) -> bool {
    if count <= max {
        return false;
    }
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    errs.push(FieldError::invalid(
        path,
        count,
        format!("must have at most {max} items"),
    ));
    true
}

fn endpoints(errs: &mut FieldErrors, endpoints: &[Endpoint], ty: &str) {
    if too_many(errs, "endpoints", endpoints.len(), MAX_ENDPOINTS) {
        return;
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        let addresses_path = format!("{path}.addresses");
        if ep.addresses.is_empty() {
            errs.push(FieldError::required_because(
                addresses_path.as_str(),
                "must contain at least 1 address",
            ));
        } else {
            too_many(errs, &addresses_path, ep.addresses.len(), MAX_ADDRESSES);
        }
        for (j, address) in ep.addresses.iter().enumerate() {
            address_of_type(errs, &format!("{addresses_path}[{j}]"), address, ty);
        }
        if let Some(node) = &ep.node_name {
            common::invalid_each(
                errs,
                &format!("{path}.nodeName"),
                node,
                names::dns1123_subdomain(node),
            );
        }
        if let Some(host) = &ep.hostname {
            common::invalid_each(
                errs,
                &format!("{path}.hostname"),
                host,
                names::dns1123_label(host),
            );
        }
    }
}

/// Unknown address types are already reported and their addresses skipped.
fn address_of_type(errs: &mut FieldErrors, path: &str, address: &str, ty: &str) {
    let ip = match ty {
        "IPv4" => common::strict_ipv4(errs, path, address).map(IpAddr::V4),
        "IPv6" => ipv6(errs, path, address),
        "FQDN" => return fqdn(errs, path, address),
        _ => return,
    };
    if let Some(ip) = ip {
        common::non_special_ip(errs, path, address, ip);
    }
}

fn ipv6(errs: &mut FieldErrors, path: &str, address: &str) -> Option<IpAddr> {
    let parsed = address.parse::<std::net::Ipv6Addr>().ok();
    if parsed.is_none() {
        errs.push(FieldError::invalid(
            path,
            address,
            "must be a valid IPv6 address",
        ));
    }
    parsed.map(IpAddr::V6)
}

/// Go's `IsFullyQualifiedDomainName`: the first failure only, messages joined.
fn fqdn(errs: &mut FieldErrors, path: &str, address: &str) {
    let name = address.strip_suffix('.').unwrap_or(address);
    let msgs = names::dns1123_subdomain(name);
    if address.is_empty() {
        errs.push(FieldError::required(path));
    } else if !msgs.is_empty() {
        errs.push(FieldError::invalid(path, name, msgs.join(",")));
    } else if name.split('.').count() < 2 {
        errs.push(FieldError::invalid(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        ));
    } else if let Some((label, msgs)) = name
        .split('.')
        .map(|label| (label, names::dns1123_label(label)))
        .find(|(_, msgs)| !msgs.is_empty())
    {
        errs.push(FieldError::invalid(path, label, msgs.join(",")));
    }
}

fn ports(errs: &mut FieldErrors, ports: &[EndpointPort]) {
    if too_many(errs, "ports", ports.len(), MAX_PORTS) {
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("ports[{i}]");
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            common::invalid_each(
                errs,
                &format!("{path}.name"),
                name,
                names::dns1123_label(name),
            );
        }
        // Unnamed ports collide too: a slice may hold at most one.
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
        match port.protocol.as_deref() {
            None => errs.push(FieldError::required(format!("{path}.protocol"))),
            Some(p) if !common::PROTOCOLS.contains(&p) => {
                errs.push(FieldError::not_supported(
                    format!("{path}.protocol"),
                    p,
                    common::PROTOCOLS,
                ));
            }
            Some(_) => {}
        }
        if let Some(number) = port.port {
            common::port_number(errs, &format!("{path}.port"), number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaulting;
    use switchyard_api::resources::{ObjectMeta, SERVICE_NAME_LABEL};

    fn slice(addresses: &[&str]) -> EndpointSlice {
        let mut s = EndpointSlice {
            metadata: ObjectMeta {
                name: "frontend-abc12".to_string(),
                namespace: Some("default".to_string()),
                ..Default::default()
            },
            endpoints: vec![Endpoint {
                addresses: addresses.iter().map(|a| a.to_string()).collect(),
                node_name: Some("node-1".to_string()),
                ..Default::default()
            }],
            ports: vec![EndpointPort {
                name: Some("http".to_string()),
                port: Some(5000),
                protocol: None,
            }],
            ..Default::default()
        };
        s.metadata
            .labels
            .insert(SERVICE_NAME_LABEL.to_string(), "frontend".to_string());
        defaulting::endpoint_slice(&mut s);
        s
    }

    #[test]
    fn typical_slice_validates_clean() {
        assert_eq!(
            validate(&slice(&["10.244.1.5", "10.244.2.7"])),
            FieldErrors::default()
        );
    }

    #[test]
    fn service_name_label_is_optional() {
        let mut s = slice(&["10.244.1.5"]);
        s.metadata.labels.clear();
        assert_eq!(validate(&s), FieldErrors::default());
    }

    #[test]
    fn address_type_rules() {
        let mut s = slice(&["10.244.1.5"]);
        s.address_type = String::new();
        assert_eq!(validate(&s).to_string(), "addressType: Required value");
        s.address_type = "IP".to_string();
        assert_eq!(
            validate(&s).to_string(),
            "addressType: Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
        );
    }

    #[test]
    fn ipv4_addresses() {
        let s = slice(&["10.244.1", "127.0.0.1", "fd00::1"]);
        assert_eq!(
            validate(&s).to_string(),
            "[endpoints[0].addresses[0]: Invalid value: \"10.244.1\": must be a valid IPv4 address, \
endpoints[0].addresses[1]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128), \
endpoints[0].addresses[2]: Invalid value: \"fd00::1\": must be a valid IPv4 address]"
        );
    }

    #[test]
    fn ipv6_addresses() {
        let mut s = slice(&["fd00::1", "10.0.0.1", "::1"]);
        s.address_type = "IPv6".to_string();
        assert_eq!(
            validate(&s).to_string(),
            "[endpoints[0].addresses[1]: Invalid value: \"10.0.0.1\": must be a valid IPv6 address, \
endpoints[0].addresses[2]: Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)]"
        );
    }

    #[test]
    fn fqdn_addresses() {
        let mut s = slice(&["db.example.com.", "localhost", "Bad_Name.com"]);
        s.address_type = "FQDN".to_string();
        assert_eq!(
            validate(&s).to_string(),
            format!(
                "[endpoints[0].addresses[1]: Invalid value: \"localhost\": should be a domain with at least two segments separated by dots, \
endpoints[0].addresses[2]: Invalid value: \"Bad_Name.com\": {}]",
                names::dns1123_subdomain("Bad_Name.com")[0]
            )
        );
    }

    #[test]
    fn address_counts() {
        assert_eq!(
            validate(&slice(&[])).to_string(),
            "endpoints[0].addresses: Required value: must contain at least 1 address"
        );
        let many: Vec<String> = (0..101)
            .map(|i| format!("10.0.{}.{}", i / 200, i % 200 + 1))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            validate(&slice(&refs)).to_string(),
            "endpoints[0].addresses: Invalid value: 101: must have at most 100 items"
        );
    }

    #[test]
    fn endpoint_node_and_hostname() {
        let mut s = slice(&["10.244.1.5"]);
        s.endpoints[0].node_name = Some("Node_1".to_string());
        s.endpoints[0].hostname = Some("web.0".to_string());
        assert_eq!(
            validate(&s).to_string(),
            format!(
                "[endpoints[0].nodeName: Invalid value: \"Node_1\": {}, endpoints[0].hostname: Invalid value: \"web.0\": must not contain dots]",
                names::dns1123_subdomain("Node_1")[0]
            )
        );
    }

    #[test]
    fn port_rules() {
        let mut s = slice(&["10.244.1.5"]);
        s.ports = vec![
            EndpointPort {
                name: None,
                port: Some(0),
                protocol: Some("TCP".to_string()),
            },
            EndpointPort {
                name: Some(String::new()),
                port: Some(80),
                protocol: Some("ICMP".to_string()),
            },
            EndpointPort {
                name: Some("HTTP".to_string()),
                port: None,
                protocol: None,
            },
        ];
        assert_eq!(
            validate(&s).to_string(),
            format!(
                "[ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, \
ports[1].name: Duplicate value: \"\", \
ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\", \
ports[2].name: Invalid value: \"HTTP\": {}, \
ports[2].protocol: Required value]",
                names::dns1123_label("HTTP")[0]
            )
        );
    }
}
