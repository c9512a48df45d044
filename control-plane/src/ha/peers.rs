//! The other control planes on the store, as the election loop last read
//! their records: which agents' tunnels each holds, and the client identity
//! this control plane reaches them with, so a port-forward arriving here
//! for a pod whose agent streams elsewhere is passed on to that control
//! plane.

use std::sync::{Arc, RwLock};

use super::Member;

pub struct Peers {
    members: RwLock<Vec<Member>>,
    /// This control plane's client identity for the others (`None` with
    /// `--insecure`, where they take plaintext).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Peers {
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Arc<Peers> {
        Arc::new(Peers {
            members: RwLock::new(Vec::new()),
            tls,
        })
    }

    /// Replaces the other control planes' records.
    pub fn set(&self, others: Vec<Member>) {
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = others;
    }

    /// The address of the control plane holding `node`'s tunnel, if another does.
    pub fn tunnel_of(&self, node: &str) -> Option<String> {
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        members
            .iter()
            .find(|m| m.tunnels.iter().any(|n| n == node))
            .map(|m| m.address.clone())
    }

    pub fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, tunnels: &[&str]) -> Member {
        Member {
            name: name.into(),
            address: format!("https://{name}:7443"),
            started: String::new(),
            revision: 0,
            agents: 0,
            nodes: Default::default(),
            tunnels: tunnels.iter().map(|s| s.to_string()).collect(),
            announced_unix_ms: 0,
        }
    }

    #[test]
    fn finds_the_control_plane_holding_a_tunnel() {
        let peers = Peers::new(None);
        assert_eq!(peers.tunnel_of("node-1"), None);
        peers.set(vec![
            member("cp-2", &["node-2"]),
            member("cp-3", &["node-1"]),
        ]);
        assert_eq!(
            peers.tunnel_of("node-1").as_deref(),
            Some("https://cp-3:7443")
        );
        assert_eq!(peers.tunnel_of("node-9"), None);
    }
}
