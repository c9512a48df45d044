//! Flags that take one value per IP family, as Kubernetes' components
//! take them for dual-stack (`--service-cluster-ip-range`,
//! `--cluster-cidr`): one value, or an IPv4 and an IPv6 one separated by a
//! comma, the first being the primary family.

use std::net::IpAddr;

use ipnet::IpNet;

/// Why a per-family list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PerFamilyError {
    #[error("{0:?} is not a CIDR")]
    NotCidr(String),
    #[error("expected one CIDR, or two (one IPv4 and one IPv6) separated by a comma")]
    Count,
    #[error("the two ranges must be of different IP families")]
    SameFamily,
}

/// One or two CIDRs of different families, primary first, each truncated
/// to its network.
pub fn cidrs(s: &str) -> Result<Vec<IpNet>, PerFamilyError> {
    let nets = s
        .split(',')
        .map(|part| {
            let part = part.trim();
            part.parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| PerFamilyError::NotCidr(part.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match nets[..] {
        [_] => Ok(nets),
        [a, b] if a.addr().is_ipv6() == b.addr().is_ipv6() => Err(PerFamilyError::SameFamily),
        [_, _] => Ok(nets),
        _ => Err(PerFamilyError::Count),
    }
}

/// The IPv4 address among `ips`, for what serves IPv4 only.
pub fn ipv4_of(ips: &[IpAddr]) -> impl Iterator<Item = std::net::Ipv4Addr> + '_ {
    ips.iter().filter_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cidr_or_one_per_family() {
        assert_eq!(
            cidrs("10.244.1.7/24").unwrap(),
            ["10.244.1.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            cidrs("fd00:10:244:1::/64, 10.244.1.0/24").unwrap(),
            [
                "fd00:10:244:1::/64".parse::<IpNet>().unwrap(),
                "10.244.1.0/24".parse().unwrap()
            ]
        );
        let err = |s: &str| cidrs(s).unwrap_err().to_string();
        assert_eq!(
            err("10.244.1.0/24,10.244.2.0/24"),
            "the two ranges must be of different IP families"
        );
        assert_eq!(
            err("10.0.0.0/8,fd00::/64,fd01::/64"),
            "expected one CIDR, or two (one IPv4 and one IPv6) separated by a comma"
        );
        assert_eq!(err("10.244.1.0"), "\"10.244.1.0\" is not a CIDR");
    }
}
