use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// One allocatable thing. NodePorts are allocated by number regardless of
/// protocol, as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllocKey {
    ClusterIp(IpAddr),
    NodePort(u16),
    LoadBalancerIp(Ipv4Addr),
}

impl fmt::Display for AllocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocKey::ClusterIp(ip) => write!(f, "clusterip/{ip}"),
            AllocKey::NodePort(p) => write!(f, "nodeport/{p}"),
            AllocKey::LoadBalancerIp(ip) => write!(f, "lbip/{ip}"),
        }
    }
}

impl FromStr for AllocKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("malformed allocation key {s:?}");
        let (kind, value) = s.split_once('/').ok_or_else(bad)?;
        match kind {
            "clusterip" => value.parse().map(AllocKey::ClusterIp).map_err(|_| bad()),
            "nodeport" => value.parse().map(AllocKey::NodePort).map_err(|_| bad()),
            "lbip" => value
                .parse()
                .map(AllocKey::LoadBalancerIp)
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// Who holds each allocated value, by owner key (`namespace/name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocationTable(BTreeMap<AllocKey, String>);

impl AllocationTable {
    pub fn owner(&self, key: &AllocKey) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Free, or already held by `owner` (an update keeping its own values).
    pub fn is_free_for(&self, key: &AllocKey, owner: &str) -> bool {
        self.owner(key).is_none_or(|o| o == owner)
    }

    pub fn insert(&mut self, key: AllocKey, owner: String) {
        self.0.insert(key, owner);
    }

    pub fn remove(&mut self, key: &AllocKey) {
        self.0.remove(key);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&AllocKey, &String)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(AllocKey, String)> for AllocationTable {
    fn from_iter<T: IntoIterator<Item = (AllocKey, String)>>(iter: T) -> Self {
        AllocationTable(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for key in [
            AllocKey::ClusterIp(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10))),
            AllocKey::ClusterIp("fd00:10:96::a".parse().unwrap()),
            AllocKey::NodePort(30080),
            AllocKey::LoadBalancerIp(Ipv4Addr::new(172, 18, 0, 200)),
        ] {
            assert_eq!(key.to_string().parse::<AllocKey>(), Ok(key));
        }
        assert!("port/1".parse::<AllocKey>().is_err());
    }
}
