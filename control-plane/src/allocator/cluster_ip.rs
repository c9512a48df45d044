//! ClusterIPs from the service CIDR, never its network or broadcast address.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::Rng;

use super::range::BandedRange;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterIpRange {
    net: Ipv4Net,
    range: BandedRange,
}

impl ClusterIpRange {
    pub fn new(net: Ipv4Net) -> Self {
        let first = u64::from(u32::from(net.network())) + 1;
        let size = (u64::from(u32::from(net.broadcast())) + 1).saturating_sub(first + 1);
        Self {
            net,
            range: BandedRange::new(first, size, 16, 16, 256),
        }
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.net
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.range.contains(u64::from(u32::from(ip)))
    }

    pub fn allocate(
        &self,
        is_used: impl Fn(Ipv4Addr) -> bool,
        rng: &mut impl Rng,
    ) -> Option<Ipv4Addr> {
        self.range.pick(|v| is_used(to_ip(v)), rng).map(to_ip)
    }
}

fn to_ip(v: u64) -> Ipv4Addr {
    // Values come from a range built out of Ipv4Addr bounds, so they fit in u32.
    Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn excludes_network_and_broadcast() {
        let r = ClusterIpRange::new("10.96.0.0/30".parse().unwrap());
        assert!(!r.contains("10.96.0.0".parse().unwrap()));
        assert!(r.contains("10.96.0.1".parse().unwrap()));
        assert!(r.contains("10.96.0.2".parse().unwrap()));
        assert!(!r.contains("10.96.0.3".parse().unwrap()));
        let mut rng = StdRng::seed_from_u64(1);
        let a = r.allocate(|_| false, &mut rng).unwrap();
        let b = r.allocate(|ip| ip == a, &mut rng).unwrap();
        assert_ne!(a, b);
        assert_eq!(r.allocate(|ip| ip == a || ip == b, &mut rng), None);
    }

    #[test]
    fn dynamic_allocation_avoids_the_low_band() {
        let r = ClusterIpRange::new("10.96.0.0/12".parse().unwrap());
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let ip = r.allocate(|_| false, &mut rng).unwrap();
            assert!(
                u32::from(ip) >= u32::from(Ipv4Addr::new(10, 96, 1, 1)),
                "{ip}"
            );
        }
    }
}
