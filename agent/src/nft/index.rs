//! The desired ruleset kept between applies, indexed by the Service each
//! part came from, so a change to a few Services recompiles and diffs only
//! those: the cost of a push grows with the change, not with the table.
//!
//! Chains and affinity sets are named after their Service, so only map
//! elements can be wanted by two Services (two Services listing the same
//! external IP and port). Each element remembers every claimant; the first
//! in Service order wins, exactly as a full [`compile`](super::compile)
//! decides, so an incremental result always equals a full one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::ruleset::{compile_service, skeleton};
use super::state::{ElementId, Ruleset, Slots, Touched, Verdict};
use crate::model::{NodeContext, ServiceKey, Snapshot};

/// What a Service contributed to the desired ruleset.
#[derive(Debug, Clone, Default)]
struct Owned {
    chains: Vec<String>,
    elements: Vec<ElementId>,
    sets: Vec<String>,
    backends: Vec<u32>,
    hairpin: Vec<Ipv4Addr>,
}

impl Owned {
    /// Kept for the life of the Service: no room for growth.
    fn shrink_to_fit(&mut self) {
        self.chains.shrink_to_fit();
        self.elements.shrink_to_fit();
        self.sets.shrink_to_fit();
        self.backends.shrink_to_fit();
        self.hairpin.shrink_to_fit();
    }
}

/// The Services wanting one element, in Service order: the first wins.
/// Nearly always exactly one, so a sorted list rather than a map (whose
/// smallest node holds room for eleven: megabytes at 10,000 Services).
#[derive(Debug, Clone, Default)]
struct Claimants(Vec<(ServiceKey, Verdict)>);

impl Claimants {
    fn insert(&mut self, key: ServiceKey, verdict: Verdict) {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.0[i].1 = verdict,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (key, verdict));
            }
        }
    }

    fn remove(&mut self, key: &ServiceKey) {
        if let Ok(i) = self.0.binary_search_by(|(k, _)| k.cmp(key)) {
            self.0.remove(i);
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn winner(&self) -> Option<&Verdict> {
        self.0.first().map(|(_, verdict)| verdict)
    }

    fn losers(&self) -> impl Iterator<Item = &ServiceKey> {
        self.0.iter().skip(1).map(|(key, _)| key)
    }
}

/// The desired ruleset plus who owns what in it.
#[derive(Debug, Clone)]
pub struct Index {
    desired: Ruleset,
    owned: BTreeMap<ServiceKey, Owned>,
    /// Every Service that wants an element, with the verdict it wants.
    claims: BTreeMap<ElementId, Claimants>,
    /// Elements with more than one claimant, so reporting conflicts after
    /// a change does not walk every claim.
    contested: BTreeSet<ElementId>,
    /// How many Services have each hairpin address as an endpoint.
    hairpin_users: BTreeMap<Ipv4Addr, usize>,
    /// Backend-map key ranges of the chains in `desired`.
    slots: Slots,
}

impl Index {
    /// Compiles every Service of `snap`.
    pub fn build(ctx: &NodeContext, snap: &Snapshot) -> Index {
        let mut index = Index {
            desired: skeleton(),
            owned: BTreeMap::new(),
            claims: BTreeMap::new(),
            contested: BTreeSet::new(),
            hairpin_users: BTreeMap::new(),
            slots: Slots::default(),
        };
        let all: BTreeSet<ServiceKey> = snap.services.keys().cloned().collect();
        index.update(ctx, snap, &all);
        index
    }

    pub fn desired(&self) -> &Ruleset {
        &self.desired
    }

    /// Recompiles the Services in `changed` from `snap` (absent = removed).
    pub fn update(
        &mut self,
        ctx: &NodeContext,
        snap: &Snapshot,
        changed: &BTreeSet<ServiceKey>,
    ) -> Touched {
        let mut touched = Touched::default();
        for key in changed {
            self.remove(key, &mut touched);
            if let Some(svc) = snap.services.get(key) {
                let mut part = Ruleset::default();
                compile_service(ctx, key, svc, &mut part, &mut self.slots);
                self.insert(key, part, &mut touched);
            }
        }
        self.desired.conflicts = self.conflicts();
        touched
    }

    fn remove(&mut self, key: &ServiceKey, touched: &mut Touched) {
        let Some(owned) = self.owned.remove(key) else {
            return;
        };
        for chain in owned.chains {
            self.desired.chains.remove(&chain);
            self.slots.release(&chain);
            touched.chains.insert(chain);
        }
        for k in owned.backends {
            self.desired.backends.remove(&k);
            touched.backends.insert(k);
        }
        for ip in owned.hairpin {
            let users = self.hairpin_users.entry(ip).or_default();
            *users = users.saturating_sub(1);
            if *users == 0 {
                self.hairpin_users.remove(&ip);
                self.desired.hairpin.remove(&ip);
            }
            touched.hairpin.insert(ip);
        }
        for set in owned.sets {
            self.desired.affinity_sets.remove(&set);
            touched.sets.insert(set);
        }
        for id in owned.elements {
            if let Some(claimants) = self.claims.get_mut(&id) {
                claimants.remove(key);
            }
            self.settle(&id);
            touched.elements.insert(id);
        }
    }

    fn insert(&mut self, key: &ServiceKey, part: Ruleset, touched: &mut Touched) {
        let mut owned = Owned::default();
        for (name, spec) in part.chains {
            self.desired.chains.insert(name.clone(), spec);
            touched.chains.insert(name.clone());
            owned.chains.push(name);
        }
        for (k, range) in part.backends {
            self.desired.backends.insert(k, range);
            touched.backends.insert(k);
            owned.backends.push(k);
        }
        for ip in part.hairpin {
            *self.hairpin_users.entry(ip).or_default() += 1;
            self.desired.hairpin.insert(ip);
            touched.hairpin.insert(ip);
            owned.hairpin.push(ip);
        }
        for (name, timeout) in part.affinity_sets {
            self.desired.affinity_sets.insert(name.clone(), timeout);
            touched.sets.insert(name.clone());
            owned.sets.push(name);
        }
        for (map, elements) in part.maps {
            for (k, verdict) in elements {
                let id = (map, k);
                self.claims
                    .entry(id)
                    .or_default()
                    .insert(key.clone(), verdict);
                self.settle(&id);
                touched.elements.insert(id);
                owned.elements.push(id);
            }
        }
        owned.shrink_to_fit();
        self.owned.insert(key.clone(), owned);
    }

    /// Gives an element to its first claimant, or drops it when none is left.
    fn settle(&mut self, id: &ElementId) {
        match self.claims.get(id).is_some_and(|c| c.len() > 1) {
            true => self.contested.insert(*id),
            false => self.contested.remove(id),
        };
        let winner = self.claims.get(id).and_then(|c| c.winner().cloned());
        let elements = self.desired.maps.entry(id.0).or_default();
        match winner {
            Some(verdict) => {
                elements.insert(id.1, verdict);
            }
            None => {
                elements.remove(&id.1);
                self.claims.remove(id);
            }
        }
    }

    /// Keys wanted by more than one Service (only the first gets them).
    fn conflicts(&self) -> Vec<String> {
        self.contested
            .iter()
            .filter_map(|id| Some((id, self.claims.get(id)?)))
            .flat_map(|((map, k), c)| {
                c.losers()
                    .map(move |svc| format!("{svc}: {k} in {} already taken", map.as_str()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{
        EndpointEntry, EndpointPortEntry, Protocol, ServiceEntry, ServicePortEntry,
    };
    use crate::nft::compile;

    fn ctx() -> NodeContext {
        NodeContext {
            zone: None,
            node_name: "a".into(),
            node_ips: vec![],
            pod_cidr: "10.244.1.0/24".parse().ok(),
        }
    }

    fn svc(vip: u8, node_port: Option<u16>, eps: &[u8]) -> ServiceEntry {
        ServiceEntry {
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, vip)),
            external_ips: vec![Ipv4Addr::new(192, 0, 2, 1)],
            ports: vec![ServicePortEntry {
                name: String::new(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port,
            }],
            endpoints: eps
                .iter()
                .map(|e| EndpointEntry {
                    hints: None,
                    ip: Ipv4Addr::new(10, 244, 1, *e),
                    node_name: Some("a".into()),
                    ready: true,
                    serving: true,
                    terminating: false,
                    ports: vec![EndpointPortEntry {
                        name: String::new(),
                        protocol: Protocol::Tcp,
                        port: 8080,
                    }]
                    .into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Equal tables (conflict messages name ports in a full compile).
    fn same(a: &Ruleset, b: &Ruleset) -> bool {
        a.chains == b.chains
            && a.maps == b.maps
            && a.affinity_sets == b.affinity_sets
            && a.backends == b.backends
            && a.hairpin == b.hairpin
    }

    fn snap(services: Vec<(&str, ServiceEntry)>) -> Snapshot {
        Snapshot {
            version: 1,
            services: services
                .into_iter()
                .map(|(n, s)| (ServiceKey::new("default", n), s))
                .collect(),
        }
    }

    #[test]
    fn updates_equal_a_full_compile_even_through_conflicts() {
        // b and c both list 192.0.2.1:80 as an external IP; b wins until it goes.
        let before = snap(vec![
            ("b", svc(2, Some(30001), &[1, 2])),
            ("c", svc(3, None, &[3])),
        ]);
        let mut index = Index::build(&ctx(), &before);
        assert!(same(index.desired(), &compile(&ctx(), &before)));
        assert_eq!(index.desired().conflicts.len(), 1);

        let after = snap(vec![
            ("a", svc(1, None, &[4])),
            ("c", svc(3, None, &[3, 5])),
        ]);
        let changed: BTreeSet<ServiceKey> = ["a", "b", "c"]
            .into_iter()
            .map(|n| ServiceKey::new("default", n))
            .collect();
        let touched = index.update(&ctx(), &after, &changed);
        assert!(same(index.desired(), &compile(&ctx(), &after)));
        assert!(touched.chains.iter().any(|c| c.starts_with("svc-")));
        assert!(!touched.elements.is_empty());
    }

    #[test]
    fn unchanged_services_are_not_touched() {
        let s = snap(vec![("a", svc(1, None, &[1])), ("b", svc(2, None, &[2]))]);
        let mut index = Index::build(&ctx(), &s);
        let mut next = s.clone();
        next.services
            .insert(ServiceKey::new("default", "b"), svc(2, None, &[2, 3]));
        let only_b = BTreeSet::from([ServiceKey::new("default", "b")]);
        let touched = index.update(&ctx(), &next, &only_b);
        let a_chain = index
            .desired()
            .chains
            .iter()
            .find(|(_, spec)| spec.description.starts_with("default/a/"))
            .map(|(name, _)| name.clone())
            .unwrap();
        assert!(!touched.chains.contains(&a_chain));
        assert!(same(index.desired(), &compile(&ctx(), &next)));
    }
}
