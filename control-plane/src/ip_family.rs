//! The two IP families, named as the Kubernetes API names them
//! (`spec.ipFamilies`, an EndpointSlice's `addressType`).

use std::fmt;
use std::net::IpAddr;

use switchyard_api::resources::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    /// The API's values, in the order Kubernetes lists them in errors.
    pub const NAMES: &'static [&'static str] = &["IPv4", "IPv6"];

    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "IPv4" => Some(IpFamily::V4),
            "IPv6" => Some(IpFamily::V6),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }

    /// A Service's `spec.ipFamilies` (the supported values among them).
    pub fn of_service(svc: &Service) -> Vec<Self> {
        svc.ip_family_names()
            .iter()
            .filter_map(|name| Self::parse(name))
            .collect()
    }

    /// The family a dual-stack Service adds to this one.
    pub fn other(self) -> Self {
        match self {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
