//! Forgetting clients' remembered backends that are gone.
//!
//! The kernel fills the affinity map (client . tuple → backend) as
//! connections are made; the agent never writes it. When a tuple loses a
//! backend its clients must stop landing there, so after such a change
//! the map is listed and every entry whose backend is no longer one of
//! its tuple's is deleted. A connection made between the change and the
//! deletion may refresh a doomed entry; the deletion still removes it,
//! since the listing is taken after the change committed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use super::index::{Change, Index};
use super::render::AFFINITY;
use crate::model::Protocol;
use crate::nft::command::Element;
use crate::nft::error::NftError;
use crate::nft::listing::{self, Reader};
use crate::nft::state::{MapKey, Target};

/// One remembered client: the tuple as it reached the dispatch (with the
/// address it was sent to, also for a NodePort) and its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub client: Ipv4Addr,
    pub tuple: MapKey,
    pub backend: Target,
}

/// Whether `change` took a backend from a tuple with affinity (or the
/// tuple itself): then some remembered client may point at it.
pub fn may_strand(change: &Change) -> bool {
    change.before.tuples.iter().any(|(tuple, before)| {
        before.affinity.is_some() && {
            let after: BTreeSet<&Target> = change
                .after
                .tuples
                .get(tuple)
                .map(|f| f.slots.values().collect())
                .unwrap_or_default();
            before.slots.values().any(|t| !after.contains(t))
        }
    })
}

/// The entries of `remembered` whose backend their tuple no longer has,
/// as elements to delete. A tuple is looked up with its address first,
/// then as a NodePort.
pub fn stranded(remembered: &[Remembered], index: &Index) -> Vec<Element> {
    remembered
        .iter()
        .filter(|r| {
            let node_port = MapKey {
                addr: None,
                ..r.tuple
            };
            let tuple = match index.has(&r.tuple) {
                true => r.tuple,
                false => node_port,
            };
            !index
                .targets(&tuple)
                .is_some_and(|targets| targets.contains(&r.backend))
        })
        .map(|r| Element::Remembered(r.client, r.tuple))
        .collect()
}

/// Reads a listing of the affinity map of table `ip <name>`.
pub fn read(listing: impl std::io::Read, name: &str) -> Result<Vec<Remembered>, NftError> {
    let mut reader = RememberedReader {
        name,
        found: Vec::new(),
    };
    listing::read(serde_json::Deserializer::from_reader(listing), &mut reader)?;
    Ok(reader.found)
}

struct RememberedReader<'t> {
    name: &'t str,
    found: Vec<Remembered>,
}

impl Reader for RememberedReader<'_> {
    fn element(&mut self, kind: &str, head: &Map<String, Value>, element: Value) {
        let text = |key| head.get(key).and_then(Value::as_str);
        if kind == "map" && text("table") == Some(self.name) && text("name") == Some(AFFINITY) {
            self.found.extend(remembered(&element));
        }
    }

    fn object(&mut self, _kind: &str, _obj: Map<String, Value>) {}
}

/// `[{"elem": {"val": {"concat": [client, daddr, proto, port]}, …}},
/// {"concat": [backend, port]}]` (the key bare when it has no timeout).
fn remembered(element: &Value) -> Option<Remembered> {
    let [key, data] = element.as_array()?.as_slice() else {
        return None;
    };
    let key = key.get("elem").and_then(|e| e.get("val")).unwrap_or(key);
    let [client, daddr, protocol, port] = key.get("concat")?.as_array()?.as_slice() else {
        return None;
    };
    let [ip, target_port] = data.get("concat")?.as_array()?.as_slice() else {
        return None;
    };
    let address = |v: &Value| v.as_str()?.parse::<Ipv4Addr>().ok();
    let port_of = |v: &Value| u16::try_from(v.as_u64()?).ok();
    let protocol = Protocol::from_nft(protocol.as_str()?)?;
    Some(Remembered {
        client: address(client)?,
        tuple: MapKey {
            addr: Some(address(daddr)?),
            protocol,
            port: port_of(port)?,
        },
        backend: Target {
            ip: address(ip)?,
            port: port_of(target_port)?,
            protocol,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceKey, Snapshot};
    use crate::nft::layout::compile::tests::{ctx, endpoint, web};

    /// `web` (10.96.0.10:80, NodePort 30080) with affinity over `backends`.
    fn sticky(backends: &[[u8; 4]]) -> Snapshot {
        let mut svc = web(backends.iter().map(|ip| endpoint(*ip, "node-2")).collect());
        svc.session_affinity_timeout = Some(60);
        Snapshot {
            version: 1,
            services: [(ServiceKey::new("default", "sticky"), svc)].into(),
        }
    }

    #[test]
    fn entries_pointing_at_a_removed_backend_are_stranded() {
        let mut index = Index::build(&ctx(), &sticky(&[[10, 244, 1, 5], [10, 244, 2, 5]]));
        let changed = [ServiceKey::new("default", "sticky")].into();
        let change = index.update(&ctx(), &sticky(&[[10, 244, 1, 5]]), &changed);
        assert!(may_strand(&change));
        let listing = r#"{"nftables": [{"map": {"family": "ip", "name": "affinity", "table": "sy", "elem": [
            [{"elem": {"val": {"concat": ["192.0.2.1", "10.96.0.10", "tcp", 80]}, "timeout": 60}}, {"concat": ["10.244.1.5", 8080]}],
            [{"elem": {"val": {"concat": ["192.0.2.2", "10.96.0.10", "tcp", 80]}, "timeout": 60}}, {"concat": ["10.244.2.5", 8080]}],
            [{"elem": {"val": {"concat": ["192.0.2.3", "172.18.0.11", "tcp", 30080]}, "timeout": 60}}, {"concat": ["10.244.2.5", 8080]}],
            [{"elem": {"val": {"concat": ["192.0.2.4", "172.18.0.11", "tcp", 30080]}, "timeout": 60}}, {"concat": ["10.244.1.5", 8080]}]
        ]}}]}"#;
        let remembered = read(listing.as_bytes(), "sy").unwrap();
        assert_eq!(remembered.len(), 4);
        let stale: Vec<String> = stranded(&remembered, &index)
            .iter()
            .map(Element::key)
            .collect();
        assert_eq!(
            stale,
            [
                "192.0.2.2 . 10.96.0.10 . tcp . 80",
                "192.0.2.3 . 172.18.0.11 . tcp . 30080"
            ]
        );
        let unchanged = index.update(&ctx(), &sticky(&[[10, 244, 1, 5]]), &changed);
        assert!(!may_strand(&unchanged));
    }
}
