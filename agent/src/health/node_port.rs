//! Health check node ports: for every LoadBalancer Service with the Local
//! external policy, this agent answers HTTP on its `healthCheckNodePort`
//! (all addresses, as kube-proxy does by default) with how many ready
//! endpoints of it run on this node: 200 with at least one while the data
//! path is healthy, 503 otherwise. Cloud load balancers probe it to send
//! outside traffic only to nodes that can serve it without a second hop.
//!
//! Listeners follow the view; each answers from a shared table read at
//! request time, so an endpoint change costs no rebinding. A push touches
//! only the ports of the Services it changed (the table is patched in
//! place, not copied): a cluster of 10,000 such Services must not cost
//! 10,000 steps per push. Ports that could not be bound, or whose server
//! stopped, are swept on a slow timer instead. Listeners are bound with
//! `SO_REUSEPORT`, so an agent taking over from a running one binds them
//! while its predecessor still holds them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use imbl::ordmap::DiffItem;
use serde::Serialize;
use switchyard_api::v1::ServiceState;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::server::json_response;
use super::ProxyHealth;
use crate::view::ClusterView;

/// How often ports that could not be bound are tried again.
const REBIND: Duration = Duration::from_secs(5);

/// What one health check port answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub namespace: String,
    pub name: String,
    pub local_endpoints: usize,
}

impl Check {
    fn names_same(&self, other: &Check) -> bool {
        self.namespace == other.namespace && self.name == other.name
    }
}

/// The health check port of one Service, with its count of ready
/// endpoints on `node`; `None` without one.
fn check_of(s: &ServiceState, node: &str) -> Option<(u16, Check)> {
    if s.proxied_elsewhere {
        return None;
    }
    let port = u16::try_from(s.health_check_node_port)
        .ok()
        .filter(|p| *p != 0)?;
    // A dual-stack pod is an endpoint in each family's slice; the count is
    // of what the (IPv4) data path sends traffic to.
    let local_endpoints = s
        .endpoints
        .iter()
        .filter(|e| e.ready && e.node_name == node)
        .filter(|e| e.ip.parse::<std::net::Ipv4Addr>().is_ok())
        .count();
    let check = Check {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        local_endpoints,
    };
    Some((port, check))
}

/// Brings `checks` from what `before` asks for to what `after` does,
/// visiting only the Services that differ: the two views share every
/// unchanged entry, which the persistent map's diff skips, so a push
/// costs its own size, not the cluster's. Returns the ports whose check
/// appeared, changed or went, so the caller touches only their listeners.
pub fn update(
    checks: &mut BTreeMap<u16, Check>,
    before: &ClusterView,
    after: &ClusterView,
    node: &str,
) -> BTreeSet<u16> {
    let mut touched = BTreeSet::new();
    for change in before.services.diff(&after.services) {
        let (old, new) = match change {
            DiffItem::Add(_, new) => (None, Some(new)),
            DiffItem::Update { old, new } => (Some(old.1), Some(new.1)),
            DiffItem::Remove(_, old) => (Some(old), None),
        };
        let old = old.and_then(|s| check_of(s, node));
        let new = new.and_then(|s| check_of(s, node));
        if old == new {
            continue;
        }
        // The port may already be another Service's: one freed and taken
        // again within a push, by a Service the diff visited first.
        if let Some((port, gone)) = old {
            if checks.get(&port).is_some_and(|held| held.names_same(&gone)) {
                checks.remove(&port);
            }
            touched.insert(port);
        }
        if let Some((port, check)) = new {
            checks.insert(port, check);
            touched.insert(port);
        }
    }
    touched
}

type Table = Arc<RwLock<BTreeMap<u16, Check>>>;

/// Keeps one listener per health check port of the latest view until the
/// process exits.
pub async fn run(
    mut views: watch::Receiver<Arc<ClusterView>>,
    node: String,
    health: Arc<ProxyHealth>,
) {
    let table: Table = Arc::default();
    let mut servers: BTreeMap<u16, JoinHandle<()>> = BTreeMap::new();
    let mut rebind = tokio::time::interval(REBIND);
    let mut seen = Arc::<ClusterView>::default();
    loop {
        tokio::select! {
            changed = views.changed() => {
                if changed.is_err() {
                    return;
                }
                let view = views.borrow_and_update().clone();
                let touched = {
                    let mut checks = table.write().unwrap_or_else(|e| e.into_inner());
                    update(&mut checks, &seen, &view, &node)
                };
                seen = view;
                for port in touched {
                    follow(port, &mut servers, &table, &health);
                }
            }
            _ = rebind.tick() => sweep(&mut servers, &table, &health),
        }
    }
}

/// Starts or stops the listener of `port` as the table now asks.
fn follow(
    port: u16,
    servers: &mut BTreeMap<u16, JoinHandle<()>>,
    table: &Table,
    health: &Arc<ProxyHealth>,
) {
    let wanted = table
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&port);
    match (wanted, servers.contains_key(&port)) {
        (true, false) => {
            if let Some(server) = start(port, table.clone(), health.clone()) {
                servers.insert(port, server);
            }
        }
        (false, true) => {
            if let Some(server) = servers.remove(&port) {
                server.abort();
            }
        }
        _ => {}
    }
}

/// Binds the ports that failed to bind and restarts stopped listeners:
/// a walk of every port, on the slow timer only.
fn sweep(servers: &mut BTreeMap<u16, JoinHandle<()>>, table: &Table, health: &Arc<ProxyHealth>) {
    servers.retain(|_, server| !server.is_finished());
    let missing: Vec<u16> = table
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .filter(|port| !servers.contains_key(port))
        .copied()
        .collect();
    for port in missing {
        follow(port, servers, table, health);
    }
}

fn start(port: u16, table: Table, health: Arc<ProxyHealth>) -> Option<JoinHandle<()>> {
    let listener = match bind(port) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(port, error = %e, "cannot listen on a health check node port; retrying");
            return None;
        }
    };
    tracing::info!(port, "serving a health check node port");
    let app = axum::Router::new().fallback(move || {
        let (table, health) = (table.clone(), health.clone());
        async move { answer(port, &table, &health) }
    });
    Some(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(port, error = %e, "health check node port failed");
        }
    }))
}

fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))?;
    socket.listen(1024)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    service: ServiceName<'a>,
    local_endpoints: usize,
    service_proxy_healthy: bool,
}

#[derive(Serialize)]
struct ServiceName<'a> {
    namespace: &'a str,
    name: &'a str,
}

fn answer(port: u16, table: &Table, health: &ProxyHealth) -> Response {
    let table = table.read().unwrap_or_else(|e| e.into_inner());
    let Some(check) = table.get(&port) else {
        return json_response(StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let healthy = health.status().healthy;
    let body = Body {
        service: ServiceName {
            namespace: &check.namespace,
            name: &check.name,
        },
        local_endpoints: check.local_endpoints,
        service_proxy_healthy: healthy,
    };
    let code = match check.local_endpoints > 0 && healthy {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    // Serializing strings, a count and a bool cannot fail.
    let mut response = json_response(code, serde_json::to_string(&body).unwrap_or_default());
    response.headers_mut().insert(
        HeaderName::from_static("x-load-balancing-endpoint-weight"),
        HeaderValue::from(check.local_endpoints),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceKey;
    use switchyard_api::v1::Endpoint;

    fn service(name: &str, port: u32, endpoints: &[(&str, bool)]) -> Arc<ServiceState> {
        Arc::new(ServiceState {
            namespace: "default".into(),
            name: name.into(),
            health_check_node_port: port,
            endpoints: endpoints
                .iter()
                .enumerate()
                .map(|(i, (node, ready))| Endpoint {
                    ip: format!("10.244.0.{}", i + 1),
                    node_name: node.to_string(),
                    ready: *ready,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    #[test]
    fn a_dual_stack_pod_counts_once() {
        let mut dual = (*service("web", 30500, &[("node-1", true), ("node-1", true)])).clone();
        dual.endpoints[1].ip = "fd00:10:244::1".into();
        let (_, check) = check_of(&dual, "node-1").unwrap();
        assert_eq!(check.local_endpoints, 1);
    }

    #[test]
    fn each_port_counts_the_ready_endpoints_on_this_node() {
        let mut view = ClusterView::default();
        let services = [
            service(
                "web",
                30500,
                &[("node-1", true), ("node-1", false), ("node-2", true)],
            ),
            service("idle", 30501, &[("node-2", true)]),
            service("cluster-policy", 0, &[("node-1", true)]),
        ];
        for s in services {
            view.services
                .insert(ServiceKey::new("default", s.name.clone()), s);
        }
        let mut checks = BTreeMap::new();
        update(&mut checks, &ClusterView::default(), &view, "node-1");
        assert_eq!(
            checks.into_iter().collect::<Vec<_>>(),
            [
                (
                    30500,
                    Check {
                        namespace: "default".into(),
                        name: "web".into(),
                        local_endpoints: 1
                    }
                ),
                (
                    30501,
                    Check {
                        namespace: "default".into(),
                        name: "idle".into(),
                        local_endpoints: 0
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_change_updates_only_its_port_and_a_removed_service_frees_its() {
        let mut before = ClusterView::default();
        for (name, port) in [("web", 30500), ("api", 30501)] {
            let s = service(name, port, &[("node-1", true)]);
            before.services.insert(ServiceKey::new("default", name), s);
        }
        let mut checks = BTreeMap::new();
        update(&mut checks, &ClusterView::default(), &before, "node-1");
        let mut after = before.clone();
        let moved = service("web", 30502, &[("node-1", true), ("node-1", true)]);
        after
            .services
            .insert(ServiceKey::new("default", "web"), moved);
        after.services.remove(&ServiceKey::new("default", "api"));
        let touched = update(&mut checks, &before, &after, "node-1");
        assert_eq!(touched, BTreeSet::from([30500, 30501, 30502]));
        assert_eq!(
            checks.into_iter().collect::<Vec<_>>(),
            [(
                30502,
                Check {
                    namespace: "default".into(),
                    name: "web".into(),
                    local_endpoints: 2
                }
            )]
        );
    }

    #[test]
    fn a_port_freed_and_taken_again_in_one_push_stays_served() {
        let mut before = ClusterView::default();
        let old = service("zeta", 30500, &[("node-1", true)]);
        before
            .services
            .insert(ServiceKey::new("default", "zeta"), old);
        let mut checks = BTreeMap::new();
        update(&mut checks, &ClusterView::default(), &before, "node-1");
        // "alpha" takes the port "zeta" gave up; the diff visits alpha first.
        let mut after = before.clone();
        after.services.remove(&ServiceKey::new("default", "zeta"));
        let new = service("alpha", 30500, &[("node-1", true), ("node-1", true)]);
        after
            .services
            .insert(ServiceKey::new("default", "alpha"), new);
        let touched = update(&mut checks, &before, &after, "node-1");
        assert_eq!(touched, BTreeSet::from([30500]));
        assert_eq!(
            checks.into_iter().collect::<Vec<_>>(),
            [(
                30500,
                Check {
                    namespace: "default".into(),
                    name: "alpha".into(),
                    local_endpoints: 2
                }
            )]
        );
    }

    #[test]
    fn a_change_elsewhere_touches_no_port() {
        let mut before = ClusterView::default();
        let web = service("web", 30500, &[("node-1", true), ("node-2", true)]);
        before
            .services
            .insert(ServiceKey::new("default", "web"), web);
        let mut checks = BTreeMap::new();
        update(&mut checks, &ClusterView::default(), &before, "node-1");
        let mut after = before.clone();
        let moved = service("web", 30500, &[("node-1", true), ("node-2", false)]);
        after
            .services
            .insert(ServiceKey::new("default", "web"), moved);
        assert_eq!(
            update(&mut checks, &before, &after, "node-1"),
            BTreeSet::new()
        );
        assert_eq!(checks[&30500].local_endpoints, 1);
    }

    /// Every check of `view`, computed from scratch.
    fn all_checks(view: &ClusterView, node: &str) -> BTreeMap<u16, Check> {
        view.services
            .values()
            .filter_map(|s| check_of(s, node))
            .collect()
    }

    /// One view of a small universe of Services: each slot absent or
    /// present with one of two ports (or none) and some endpoints. A port
    /// another slot already holds is left out, as the allocator would.
    fn views() -> impl proptest::strategy::Strategy<Value = ClusterView> {
        use proptest::prelude::*;
        let slot = proptest::option::of((
            0u32..3,
            proptest::collection::vec(
                (prop_oneof![Just("node-1"), Just("node-2")], any::<bool>()),
                0..4,
            ),
        ));
        proptest::collection::vec(slot, 6).prop_map(|slots| {
            let mut view = ClusterView::default();
            let mut taken = BTreeSet::new();
            for (i, slot) in slots.into_iter().enumerate() {
                let Some((choice, endpoints)) = slot else {
                    continue;
                };
                let port = match choice {
                    0 => 0,
                    c => 30500 + i as u32 + c,
                };
                let port = if taken.insert(port) { port } else { 0 };
                let name = format!("svc-{i}");
                let s = service(&name, port, &endpoints);
                view.services.insert(ServiceKey::new("default", name), s);
            }
            view
        })
    }

    proptest::proptest! {
        #[test]
        fn incremental_checks_equal_a_from_scratch_count(
            steps in proptest::collection::vec(views(), 1..20),
        ) {
            let mut checks = BTreeMap::new();
            let mut before = ClusterView::default();
            for step in steps {
                // Folded onto the last view, as pushes are, so entries are shared.
                let mut after = before.clone();
                for (key, s) in &step.services {
                    if before.services.get(key) != Some(s) {
                        after.services.insert(key.clone(), s.clone());
                    }
                }
                for key in before.services.keys() {
                    if !step.services.contains_key(key) {
                        after.services.remove(key);
                    }
                }
                let touched = update(&mut checks, &before, &after, "node-1");
                let (old, new) = (all_checks(&before, "node-1"), all_checks(&after, "node-1"));
                proptest::prop_assert_eq!(&checks, &new);
                let differing: BTreeSet<u16> = old
                    .keys()
                    .chain(new.keys())
                    .filter(|p| old.get(p) != new.get(p))
                    .copied()
                    .collect();
                proptest::prop_assert!(differing.is_subset(&touched), "{differing:?} not in {touched:?}");
                before = after;
            }
        }
    }
}
