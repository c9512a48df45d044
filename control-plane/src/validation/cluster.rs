//! Cluster-scoped kinds: Namespaces, and Nodes as their agents register them.

use std::collections::BTreeSet;

use switchyard_api::resources::{Namespace, Node, NodeAddress};

use super::common::{self, non_empty, Scope};
use super::field::{FieldError, FieldErrors};
use super::{golang, names};

pub(super) fn namespace(ns: &Namespace) -> FieldErrors {
    let mut errs = FieldErrors::default();
    common::object_meta(
        &mut errs,
        &ns.metadata,
        Scope::Cluster,
        names::dns1123_label,
    );
    errs
}

pub(super) fn node(n: &Node) -> FieldErrors {
    let mut errs = FieldErrors::default();
    common::object_meta(
        &mut errs,
        &n.metadata,
        Scope::Cluster,
        names::dns1123_subdomain,
    );
    if let Some(cidr) = non_empty(n.spec.pod_cidr.as_deref()) {
        common::cidr(&mut errs, "spec.podCIDR", cidr);
    }
    pod_cidrs(&mut errs, &n.spec.pod_cidrs);
    addresses(&mut errs, &n.status.addresses);
    errs
}

/// Snapshots route to these addresses, so IP types must hold IPs and DNS
/// types DNS names; other types are informational and pass through.
fn addresses(errs: &mut FieldErrors, addresses: &[NodeAddress]) {
    let mut seen = BTreeSet::new();
    for (i, a) in addresses.iter().enumerate() {
        let path = format!("status.addresses[{i}]");
        let address_path = format!("{path}.address");
        match a.type_.as_str() {
            "InternalIP" | "ExternalIP" => {
                common::ip(errs, &address_path, &a.address);
            }
            "Hostname" | "InternalDNS" | "ExternalDNS" => {
                let msgs = names::dns1123_subdomain(&a.address);
                common::invalid_each(errs, &address_path, &a.address, msgs);
            }
            _ => {}
        }
        if !seen.insert((a.type_.as_str(), a.address.as_str())) {
            let rendered = golang::node_address(&a.type_, &a.address);
            errs.push(FieldError::duplicate(path, golang::value(rendered)));
        }
    }
}

/// One CIDR per family at most, as Kubernetes allows a node.
fn pod_cidrs(errs: &mut FieldErrors, cidrs: &[String]) {
    for (i, cidr) in cidrs.iter().enumerate() {
        common::cidr(errs, &format!("spec.podCIDRs[{i}]"), cidr);
    }
    let v6: Vec<bool> = cidrs.iter().map(|c| c.contains(':')).collect();
    if cidrs.len() > 2 || (v6.len() == 2 && v6[0] == v6[1]) {
        errs.push(FieldError::invalid(
            "spec.podCIDRs",
            golang::value(golang::string_slice(cidrs)),
            "may specify no more than one CIDR for each IP family",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::ObjectMeta;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.to_string(),
            ..Default::default()
        }
    }

    fn node_with(addresses: &[(&str, &str)]) -> Node {
        let mut n = Node {
            metadata: meta("node-1.example.com"),
            ..Default::default()
        };
        n.spec.pod_cidr = Some("10.244.1.0/24".to_string());
        n.status.addresses = addresses
            .iter()
            .map(|(t, a)| NodeAddress {
                type_: t.to_string(),
                address: a.to_string(),
            })
            .collect();
        n
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        let ok = Namespace {
            metadata: meta("team-a"),
            ..Default::default()
        };
        assert_eq!(namespace(&ok), FieldErrors::default());
        let bad = Namespace {
            metadata: meta("team.a"),
            ..Default::default()
        };
        assert_eq!(
            namespace(&bad).to_string(),
            "metadata.name: Invalid value: \"team.a\": must not contain dots"
        );
    }

    #[test]
    fn namespace_name_required() {
        assert_eq!(
            namespace(&Namespace::default()).to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn registered_node_validates_clean() {
        let n = node_with(&[("InternalIP", "192.168.1.10"), ("Hostname", "node-1")]);
        assert_eq!(node(&n), FieldErrors::default());
    }

    #[test]
    fn node_names_are_dns_subdomains() {
        let mut n = node_with(&[]);
        n.metadata.name = "Node_1".to_string();
        assert_eq!(
            node(&n).to_string(),
            format!(
                "metadata.name: Invalid value: \"Node_1\": {}",
                names::dns1123_subdomain("Node_1")[0]
            )
        );
    }

    #[test]
    fn node_addresses_must_fit_their_type() {
        let n = node_with(&[("InternalIP", "192.168.1.300"), ("Hostname", "Node_1")]);
        assert_eq!(
            node(&n).to_string(),
            format!(
                "[status.addresses[0].address: Invalid value: \"192.168.1.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff), status.addresses[1].address: Invalid value: \"Node_1\": {}]",
                names::dns1123_subdomain("Node_1")[0]
            )
        );
    }

    #[test]
    fn duplicate_node_addresses() {
        let n = node_with(&[
            ("InternalIP", "192.168.1.10"),
            ("InternalIP", "192.168.1.10"),
        ]);
        assert_eq!(
            node(&n).to_string(),
            r#"status.addresses[1]: Duplicate value: core.NodeAddress{Type:"InternalIP", Address:"192.168.1.10"}"#
        );
    }

    #[test]
    fn node_pod_cidr_and_namespace() {
        let mut n = node_with(&[]);
        n.spec.pod_cidr = Some("10.244.1.0".to_string());
        n.metadata.namespace = Some("default".to_string());
        assert_eq!(
            node(&n).to_string(),
            "[metadata.namespace: Forbidden: not allowed on this type, spec.podCIDR: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)]"
        );
    }

    #[test]
    fn a_dual_stack_node_has_one_pod_cidr_per_family() {
        let mut n = node_with(&[
            ("InternalIP", "172.18.0.11"),
            ("InternalIP", "fd00:172:18::11"),
        ]);
        n.spec.pod_cidr = Some("10.244.1.0/24".to_string());
        n.spec.pod_cidrs = vec![
            "10.244.1.0/24".to_string(),
            "fd00:10:244:1::/64".to_string(),
        ];
        assert!(node(&n).is_empty(), "{}", node(&n));
        n.spec.pod_cidrs[1] = "10.244.2.0/24".to_string();
        assert_eq!(
            node(&n).to_string(),
            r#"spec.podCIDRs: Invalid value: []string{"10.244.1.0/24", "10.244.2.0/24"}: may specify no more than one CIDR for each IP family"#
        );
    }
}
