//! LoadBalancer ingress addresses from `--lb-pool`, lowest free first, as
//! bare-metal load-balancer controllers hand them out.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LbPool(Ipv4Net);

impl LbPool {
    pub fn new(net: Ipv4Net) -> Self {
        Self(net)
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.0
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.0.contains(&ip)
    }

    /// Usable addresses: a /31 or /32 pool is all usable, larger pools skip
    /// their network and broadcast addresses (`hosts()` knows both rules).
    pub fn allocate(&self, is_used: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        self.0.hosts().find(|ip| !is_used(*ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_first() {
        let pool = LbPool::new("172.18.0.200/29".parse().unwrap());
        assert_eq!(
            pool.allocate(|_| false),
            Some(Ipv4Addr::new(172, 18, 0, 201))
        );
        let used = Ipv4Addr::new(172, 18, 0, 201);
        assert_eq!(
            pool.allocate(|ip| ip == used),
            Some(Ipv4Addr::new(172, 18, 0, 202))
        );
        assert_eq!(pool.allocate(|_| true), None);
    }

    #[test]
    fn single_address_pool() {
        let pool = LbPool::new("172.18.0.250/32".parse().unwrap());
        assert_eq!(
            pool.allocate(|_| false),
            Some(Ipv4Addr::new(172, 18, 0, 250))
        );
    }
}
