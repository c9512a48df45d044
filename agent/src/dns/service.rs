//! The synthetic Service that carries the cluster DNS address to this
//! node's responder: ClusterIP `--cluster-dns`, ports 53/UDP and 53/TCP, one
//! ready endpoint — the responder's listen address on this node. Added to
//! the nftables snapshot like any Service, it makes `nameserver 10.96.0.10`
//! in a pod's resolv.conf reach the local agent through the existing DNAT.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::DnsError;
use crate::model::{
    EndpointEntry, EndpointPortEntry, Protocol, ServiceEntry, ServiceKey, ServicePortEntry,
};
use crate::view::ClusterView;

/// The key the synthetic Service has in the data path's snapshot, where
/// Kubernetes keeps its `kube-dns` Service.
pub const DNS_SERVICE_NAMESPACE: &str = "kube-system";
pub const DNS_SERVICE_NAME: &str = "switchyard-dns";

/// The synthetic DNS Service for this node. `listen` must be a specific
/// IPv4 address: the data path DNATs to it.
pub fn dns_service(
    cluster_dns: Ipv4Addr,
    listen: SocketAddr,
    node_name: &str,
) -> Result<(ServiceKey, ServiceEntry), DnsError> {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => ip,
        _ => return Err(DnsError::NotRoutable(listen)),
    };
    let ports = [("dns", Protocol::Udp), ("dns-tcp", Protocol::Tcp)];
    let entry = ServiceEntry {
        cluster_ip: Some(cluster_dns),
        ports: ports
            .iter()
            .map(|(name, protocol)| ServicePortEntry {
                name: name.to_string(),
                protocol: *protocol,
                port: 53,
                node_port: None,
            })
            .collect(),
        endpoints: vec![EndpointEntry {
            hints: None,
            ip,
            node_name: Some(node_name.to_string()),
            ready: true,
            serving: true,
            terminating: false,
            ports: ports
                .iter()
                .map(|(name, protocol)| EndpointPortEntry {
                    name: name.to_string(),
                    protocol: *protocol,
                    port: listen.port(),
                })
                .collect(),
        }],
        ..Default::default()
    };
    Ok((
        ServiceKey::new(DNS_SERVICE_NAMESPACE, DNS_SERVICE_NAME),
        entry,
    ))
}

/// [`dns_service`] for the cluster DNS address the control plane pushed
/// (`ClusterConfig.cluster_dns`): what the data path adds on every view.
/// `None` before the first push, or when the address or `listen` cannot be
/// used (the caller checked `listen` with [`dns_service`] at startup).
pub fn dns_service_for(
    view: &ClusterView,
    listen: SocketAddr,
    node_name: &str,
) -> Option<(ServiceKey, ServiceEntry)> {
    let cluster_dns = view.cluster.cluster_dns.parse().ok()?;
    dns_service(cluster_dns, listen, node_name).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn routes_the_cluster_dns_address_to_the_listener() {
        let (key, entry) = dns_service(
            Ipv4Addr::new(10, 96, 0, 10),
            "192.168.50.2:5353".parse().unwrap(),
            "node-1",
        )
        .unwrap();
        assert_eq!(key.to_string(), "kube-system/switchyard-dns");
        assert_eq!(entry.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 10)));
        let ports: Vec<_> = entry
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.protocol, p.port))
            .collect();
        assert_eq!(
            ports,
            [("dns", Protocol::Udp, 53), ("dns-tcp", Protocol::Tcp, 53)]
        );
        let [ep] = entry.endpoints.as_slice() else {
            panic!("one endpoint expected: {:?}", entry.endpoints);
        };
        assert_eq!(ep.ip, Ipv4Addr::new(192, 168, 50, 2));
        assert_eq!(ep.node_name.as_deref(), Some("node-1"));
        assert!(ep.ready && ep.serving && !ep.terminating);
        let targets: Vec<_> = ep.ports.iter().map(|p| (p.name.as_str(), p.port)).collect();
        assert_eq!(targets, [("dns", 5353), ("dns-tcp", 5353)]);
        assert!(!entry.internal_traffic_local && !entry.external_traffic_local);
        assert_eq!(entry.session_affinity_timeout, None);
    }

    #[test]
    fn follows_the_pushed_cluster_dns_address() {
        let listen: SocketAddr = "192.168.50.2:53".parse().unwrap();
        let mut view = ClusterView::default();
        assert_eq!(dns_service_for(&view, listen, "n"), None);
        view.cluster.cluster_dns = "10.100.0.10".into();
        let (_, entry) = dns_service_for(&view, listen, "n").unwrap();
        assert_eq!(entry.cluster_ip, Some(Ipv4Addr::new(10, 100, 0, 10)));
    }

    #[test]
    fn wildcard_and_ipv6_listeners_cannot_be_endpoints() {
        for listen in ["0.0.0.0:53", "[::1]:53"] {
            let err = dns_service(Ipv4Addr::new(10, 96, 0, 10), listen.parse().unwrap(), "n")
                .unwrap_err();
            assert!(matches!(err, DnsError::NotRoutable(_)), "{listen}: {err}");
        }
    }
}
