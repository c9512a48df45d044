//! Which of a Service's cluster IPs an IPv4 data path serves.

use std::net::Ipv4Addr;

use crate::v1::ServiceState;

impl ServiceState {
    /// The IPv4 cluster IP, whichever family is primary: a dual-stack
    /// Service is reachable over IPv4 even when its first address is
    /// IPv6. `cluster_ips` is empty from control planes before it.
    pub fn ipv4_cluster_ip(&self) -> Option<Ipv4Addr> {
        self.cluster_ips
            .iter()
            .chain(std::iter::once(&self.cluster_ip))
            .find_map(|ip| ip.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_address_of_either_family_order() {
        let mut s = ServiceState {
            cluster_ip: "fd00:10:96::5".into(),
            cluster_ips: vec!["fd00:10:96::5".into(), "10.96.0.5".into()],
            ..Default::default()
        };
        assert_eq!(s.ipv4_cluster_ip(), Some(Ipv4Addr::new(10, 96, 0, 5)));
        s.cluster_ips.truncate(1);
        assert_eq!(s.ipv4_cluster_ip(), None);
        s.cluster_ips.clear();
        s.cluster_ip = "10.96.0.6".into();
        assert_eq!(s.ipv4_cluster_ip(), Some(Ipv4Addr::new(10, 96, 0, 6)));
    }
}
