//! ClusterIPs from the service CIDRs, never a range's network address (nor
//! an IPv4 range's broadcast address), one range per IP family.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use rand::Rng;
use switchyard_daemon::per_family::{self, PerFamilyError};

use super::range::BandedRange;
use crate::ip_family::IpFamily;

/// Kubernetes' limit on an IPv6 service range: a mask of at least /108
/// (2^20 addresses), so the allocator's bitmap stays small.
const MIN_IPV6_PREFIX: u8 = 108;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterIpRange {
    net: IpNet,
    /// The network address as a number; values of `range` are offsets.
    base: u128,
    range: BandedRange,
}

impl ClusterIpRange {
    pub fn new(net: IpNet) -> Self {
        let net = net.trunc();
        let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
        // At most 2^20 addresses for IPv6 (see `MIN_IPV6_PREFIX`), 2^32 for IPv4.
        let addresses = 1u64.checked_shl(host_bits).unwrap_or(u64::MAX);
        let size = match net {
            // Neither the network nor the broadcast address.
            IpNet::V4(_) => addresses.saturating_sub(2),
            // Not the network address (the subnet-router anycast address).
            IpNet::V6(_) => addresses.saturating_sub(1),
        };
        Self {
            net,
            base: to_number(net.network()),
            range: BandedRange::new(1, size, 16, 16, 256),
        }
    }

    pub fn cidr(&self) -> IpNet {
        self.net
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.net.addr())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.offset(ip).is_some_and(|v| self.range.contains(v))
    }

    pub fn allocate(&self, is_used: impl Fn(IpAddr) -> bool, rng: &mut impl Rng) -> Option<IpAddr> {
        self.range
            .pick(|v| is_used(self.address(v)), rng)
            .map(|v| self.address(v))
    }

    fn offset(&self, ip: IpAddr) -> Option<u64> {
        if IpFamily::of(ip) != self.family() || !self.net.contains(&ip) {
            return None;
        }
        u64::try_from(to_number(ip) - self.base).ok()
    }

    fn address(&self, offset: u64) -> IpAddr {
        let n = self.base + u128::from(offset);
        match self.net {
            // Offsets stay inside the range, whose addresses fit the family.
            IpNet::V4(_) => IpAddr::from(u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()),
            IpNet::V6(_) => IpAddr::from(n.to_be_bytes()),
        }
    }
}

fn to_number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The `--service-cidr` ranges: one, or one per family, the first being
/// the cluster's primary family (what a single-stack Service gets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCidrs {
    primary: ClusterIpRange,
    secondary: Option<ClusterIpRange>,
}

impl ServiceCidrs {
    pub fn primary(&self) -> &ClusterIpRange {
        &self.primary
    }

    /// The ranges, primary first.
    pub fn ranges(&self) -> impl Iterator<Item = &ClusterIpRange> {
        std::iter::once(&self.primary).chain(&self.secondary)
    }

    /// The families served, primary first.
    pub fn families(&self) -> Vec<IpFamily> {
        self.ranges().map(ClusterIpRange::family).collect()
    }

    pub fn range_of(&self, family: IpFamily) -> Option<&ClusterIpRange> {
        self.ranges().find(|r| r.family() == family)
    }
}

/// Why a `--service-cidr` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceCidrsError {
    #[error(transparent)]
    PerFamily(#[from] PerFamilyError),
    #[error("{0} is too large: an IPv6 range's mask must be >= {MIN_IPV6_PREFIX}")]
    TooLarge(IpNet),
}

impl FromStr for ServiceCidrs {
    type Err = ServiceCidrsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let nets = per_family::cidrs(s)?;
        if let Some(big) = nets
            .iter()
            .find(|n| matches!(n, IpNet::V6(v6) if v6.prefix_len() < MIN_IPV6_PREFIX))
        {
            return Err(ServiceCidrsError::TooLarge(*big));
        }
        Ok(Self {
            primary: ClusterIpRange::new(nets[0]),
            secondary: nets.get(1).copied().map(ClusterIpRange::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn excludes_network_and_broadcast() {
        let r = ClusterIpRange::new("10.96.0.0/30".parse().unwrap());
        assert!(!r.contains(ip("10.96.0.0")));
        assert!(r.contains(ip("10.96.0.1")));
        assert!(r.contains(ip("10.96.0.2")));
        assert!(!r.contains(ip("10.96.0.3")));
        assert!(!r.contains(ip("fd00::1")));
        let mut rng = StdRng::seed_from_u64(1);
        let a = r.allocate(|_| false, &mut rng).unwrap();
        let b = r.allocate(|ip| ip == a, &mut rng).unwrap();
        assert_ne!(a, b);
        assert_eq!(r.allocate(|ip| ip == a || ip == b, &mut rng), None);
    }

    #[test]
    fn ipv6_excludes_only_the_network_address() {
        let r = ClusterIpRange::new("fd00:10:96::/126".parse().unwrap());
        assert!(!r.contains(ip("fd00:10:96::")));
        assert!(r.contains(ip("fd00:10:96::1")));
        assert!(r.contains(ip("fd00:10:96::3")));
        assert!(!r.contains(ip("fd00:10:96::4")));
        assert!(!r.contains(ip("10.96.0.1")));
        let mut rng = StdRng::seed_from_u64(2);
        let mut got = Vec::new();
        while let Some(next) = r.allocate(|ip| got.contains(&ip), &mut rng) {
            got.push(next);
        }
        got.sort();
        assert_eq!(
            got,
            [
                ip("fd00:10:96::1"),
                ip("fd00:10:96::2"),
                ip("fd00:10:96::3")
            ]
        );
    }

    #[test]
    fn dynamic_allocation_avoids_the_low_band() {
        let r = ClusterIpRange::new("10.96.0.0/12".parse().unwrap());
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let IpAddr::V4(v4) = r.allocate(|_| false, &mut rng).unwrap() else {
                panic!("an IPv4 range gave an IPv6 address");
            };
            assert!(u32::from(v4) >= u32::from_be_bytes([10, 96, 1, 1]), "{v4}");
        }
        let r = ClusterIpRange::new("fd00:10:96::/112".parse().unwrap());
        for _ in 0..100 {
            let got = r.allocate(|_| false, &mut rng).unwrap();
            assert!(r.contains(got), "{got}");
            assert!(got >= ip("fd00:10:96::101"), "{got} in the static band");
        }
    }

    #[test]
    fn service_cidrs_take_one_range_or_one_per_family() {
        let cidrs = |c: &ServiceCidrs| -> Vec<String> {
            c.ranges().map(|r| r.cidr().to_string()).collect()
        };
        let dual: ServiceCidrs = "10.96.0.0/12,fd00:10:96::/112".parse().unwrap();
        assert_eq!(dual.families(), [IpFamily::V4, IpFamily::V6]);
        assert_eq!(cidrs(&dual), ["10.96.0.0/12", "fd00:10:96::/112"]);
        let v6_first: ServiceCidrs = "fd00:10:96::/112, 10.96.0.0/12".parse().unwrap();
        assert_eq!(v6_first.families(), [IpFamily::V6, IpFamily::V4]);
        let v6: ServiceCidrs = "fd00:10:96::5/112".parse().unwrap();
        assert_eq!(cidrs(&v6), ["fd00:10:96::/112"], "truncated to the network");
        let err = |s: &str| s.parse::<ServiceCidrs>().unwrap_err().to_string();
        assert_eq!(
            err("10.96.0.0/12,10.100.0.0/16"),
            "the two ranges must be of different IP families"
        );
        assert_eq!(
            err("10.96.0.0/12,fd00::/112,fd01::/112"),
            "expected one CIDR, or two (one IPv4 and one IPv6) separated by a comma"
        );
        assert_eq!(
            err("fd00::/64"),
            "fd00::/64 is too large: an IPv6 range's mask must be >= 108"
        );
        assert_eq!(err("10.96.0.0/12,"), "\"\" is not a CIDR");
    }
}
