//! The broker's state: which agents hold a tunnel open, which dials are
//! waiting for their agent's data stream, and which connections are open.
//!
//! The control plane never dials agents: a dial is a message on the agent's
//! `Serve` stream, and the agent answers by opening a `Dial` stream that
//! carries the connection id. A pending dial is a oneshot that the `Dial`
//! handler completes; it is removed when the dial finishes or is abandoned,
//! so an agent answering late finds nothing and is told so.
//!
//! An open connection is tracked until its relay ends, so that when its pod
//! is deleted or its node's agent goes away the broker can cut it short:
//! its relay then fails both streams (ABORTED) and both ends reset their
//! sockets, where letting the streams run on (or end cleanly) would make a
//! download cut short look complete.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use switchyard_api::v1::tunnel_broker_message::Message as BrokerMsg;
use switchyard_api::v1::{
    ForwardRoute, TunnelBrokerMessage, TunnelDialRequest, TunnelDialed, TunnelFrame,
};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Status, Streaming};

use super::error::TunnelError;

/// Longer than the agent's connect timeout, so a slow pod is reported as the
/// agent's connect error rather than as a silent agent.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Frames towards one peer of one connection. Bounded: flow control is end to
/// end (credits), so this only smooths bursts; it is never where data piles up.
pub type Outbound = mpsc::Sender<Result<TunnelFrame, Status>>;

/// What the broker sends an agent on its `Serve` stream.
pub type SessionTx = mpsc::Sender<Result<TunnelBrokerMessage, Status>>;

/// An agent's answer to a dial request: its data stream and the outcome.
pub struct Dialed {
    pub error: Option<String>,
    pub inbound: Streaming<TunnelFrame>,
    pub outbound: Outbound,
}

struct Session {
    id: u64,
    tx: SessionTx,
}

struct Pending {
    node: String,
    reply: oneshot::Sender<Dialed>,
}

/// The pod an open connection goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// A pod created again under the same name has another uid.
    pub uid: String,
}

impl PodRef {
    pub fn of(route: &ForwardRoute) -> Self {
        Self {
            namespace: route.namespace.clone(),
            name: route.pod.clone(),
            uid: route.pod_uid.clone(),
        }
    }
}

/// Why the broker cuts an open connection short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    PodDeleted,
    AgentGone,
}

impl Cut {
    /// What both ends of the connection along `route` are failed with.
    fn status(self, route: &ForwardRoute) -> Status {
        let (pod, port) = (route.pod.clone(), route.pod_port);
        match self {
            Cut::PodDeleted => TunnelError::PodDeleted { pod, port },
            Cut::AgentGone => TunnelError::TunnelLost {
                node: route.node.clone(),
                pod,
                port,
            },
        }
        .into()
    }
}

/// An open connection: where it goes, and how its relay is told to cut it.
struct Open {
    route: ForwardRoute,
    cut: watch::Sender<Option<Status>>,
}

#[derive(Default)]
pub struct Broker {
    agents: Mutex<HashMap<String, Session>>,
    pending: Mutex<HashMap<u64, Pending>>,
    open: Mutex<HashMap<u64, Open>>,
    next_session: AtomicU64,
}

/// An open connection's place in the broker, held by its relay: it yields
/// the cut when one comes, and forgets the connection when dropped.
pub struct Tracked {
    broker: Arc<Broker>,
    id: u64,
    cut: watch::Receiver<Option<Status>>,
}

impl Tracked {
    /// Resolves with the status to fail the streams with once the broker
    /// cuts the connection; never before.
    pub fn cut(&self) -> impl Future<Output = Status> + Send + 'static {
        let mut rx = self.cut.clone();
        async move {
            let cut = rx
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|c| c.clone());
            match cut {
                Some(status) => status,
                // The broker forgot the connection: no cut can come.
                None => std::future::pending().await,
            }
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        lock(&self.broker.open).remove(&self.id);
    }
}

/// Locks a map; a panic while holding it cannot leave a plain map torn.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a pending dial however `dial` ends (success, error, cancellation).
struct PendingGuard<'a> {
    broker: &'a Broker,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.broker.pending).remove(&self.id);
    }
}

impl Broker {
    pub fn is_connected(&self, node: &str) -> bool {
        lock(&self.agents)
            .get(node)
            .is_some_and(|s| !s.tx.is_closed())
    }

    /// Connected agents' node names, sorted (for this control plane's
    /// record, which tells the others where each tunnel ends).
    pub fn connected_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = lock(&self.agents)
            .iter()
            .filter(|(_, s)| !s.tx.is_closed())
            .map(|(node, _)| node.clone())
            .collect();
        nodes.sort();
        nodes
    }

    /// Records an agent's tunnel; a newer stream from the same node replaces
    /// the old one (the agent reconnected). Returns the session's id.
    pub fn register(&self, node: &str, tx: SessionTx) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        lock(&self.agents).insert(node.to_string(), Session { id, tx });
        id
    }

    /// Forgets a session unless a newer one already replaced it; returns
    /// whether it did (then, unless the server is stopping, the agent is gone).
    pub fn unregister(&self, node: &str, id: u64) -> bool {
        let mut agents = lock(&self.agents);
        let current = agents.get(node).is_some_and(|s| s.id == id);
        if current {
            agents.remove(node);
        }
        current
    }

    /// Cuts every open connection to a pod on `node`, whose agent is gone;
    /// returns how many there were.
    pub fn cut_node(&self, node: &str) -> usize {
        self.cut_where(Cut::AgentGone, |r| r.node == node)
    }

    /// Tracks the connection `id` along `route` until the returned guard
    /// is dropped. Call it before checking that the pod still exists, so a
    /// deletion is either seen by that check or cuts the connection.
    pub fn track(self: &Arc<Self>, id: u64, route: &ForwardRoute) -> Tracked {
        let (tx, rx) = watch::channel(None);
        lock(&self.open).insert(
            id,
            Open {
                route: route.clone(),
                cut: tx,
            },
        );
        Tracked {
            broker: self.clone(),
            id,
            cut: rx,
        }
    }

    /// The pods open connections go to, each once.
    pub fn open_pods(&self) -> Vec<PodRef> {
        let mut pods: Vec<PodRef> = lock(&self.open)
            .values()
            .map(|o| PodRef::of(&o.route))
            .collect();
        pods.sort();
        pods.dedup();
        pods
    }

    /// Cuts every open connection to `pod`, which was deleted; returns how
    /// many there were.
    pub fn cut_pod(&self, pod: &PodRef) -> usize {
        self.cut_where(Cut::PodDeleted, |r| PodRef::of(r) == *pod)
    }

    fn cut_where(&self, cut: Cut, matches: impl Fn(&ForwardRoute) -> bool) -> usize {
        let open = lock(&self.open);
        let mut n = 0;
        for o in open.values().filter(|o| matches(&o.route)) {
            // The first cut wins: a connection is cut once.
            o.cut.send_if_modified(|c| {
                let first = c.is_none();
                if first {
                    *c = Some(cut.status(&o.route));
                }
                first
            });
            n += 1;
        }
        n
    }

    fn session_tx(&self, node: &str) -> Option<SessionTx> {
        lock(&self.agents).get(node).map(|s| s.tx.clone())
    }

    /// Asks the agent of `route.node` to connect to the pod, and waits for its
    /// data stream.
    pub async fn dial(&self, id: u64, route: &ForwardRoute) -> Result<Dialed, TunnelError> {
        let gone = || TunnelError::AgentGone {
            node: route.node.clone(),
            pod: route.pod.clone(),
        };
        let tx = self.session_tx(&route.node).ok_or_else(gone)?;
        let (reply, answer) = oneshot::channel();
        let _guard = PendingGuard { broker: self, id };
        lock(&self.pending).insert(
            id,
            Pending {
                node: route.node.clone(),
                reply,
            },
        );
        let request = dial_request(id, route);
        let wait = async {
            tx.send(Ok(request)).await.map_err(|_| gone())?;
            answer.await.map_err(|_| gone())
        };
        let dialed = tokio::time::timeout(DIAL_TIMEOUT, wait)
            .await
            .map_err(|_| TunnelError::DialTimeout {
                node: route.node.clone(),
                pod: route.pod.clone(),
                seconds: DIAL_TIMEOUT.as_secs(),
            })??;
        match dialed.error.clone() {
            Some(reason) => Err(TunnelError::Refused {
                pod: route.pod.clone(),
                port: route.pod_port,
                reason,
            }),
            None => Ok(dialed),
        }
    }

    /// Hands an agent's data stream to the dial waiting for it.
    pub fn deliver(
        &self,
        dialed: &TunnelDialed,
        inbound: Streaming<TunnelFrame>,
        outbound: Outbound,
    ) -> Result<(), Status> {
        let pending = {
            let mut map = lock(&self.pending);
            match map.get(&dialed.connection_id) {
                Some(p) if p.node == dialed.node_name => map.remove(&dialed.connection_id),
                _ => None,
            }
        };
        let pending = pending.ok_or_else(|| {
            Status::not_found(format!(
                "no pending connection {} for node \"{}\" (it was abandoned)",
                dialed.connection_id, dialed.node_name
            ))
        })?;
        let error = Some(dialed.error.clone()).filter(|e| !e.is_empty());
        pending
            .reply
            .send(Dialed {
                error,
                inbound,
                outbound,
            })
            .map_err(|_| Status::cancelled("the port-forward client went away"))
    }
}

fn dial_request(id: u64, route: &ForwardRoute) -> TunnelBrokerMessage {
    TunnelBrokerMessage {
        message: Some(BrokerMsg::Dial(TunnelDialRequest {
            connection_id: id,
            ip: route.pod_ip.clone(),
            port: route.pod_port,
            namespace: route.namespace.clone(),
            pod: route.pod.clone(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(node: &str) -> ForwardRoute {
        ForwardRoute {
            namespace: "default".into(),
            pod: "p".into(),
            node: node.into(),
            pod_ip: "127.0.0.1".into(),
            pod_port: 80,
            pod_uid: "uid-p".into(),
        }
    }

    #[test]
    fn a_newer_session_replaces_the_old_one() {
        let broker = Broker::default();
        let (tx1, _rx1) = mpsc::channel(1);
        let (tx2, _rx2) = mpsc::channel(1);
        let old = broker.register("n1", tx1);
        let new = broker.register("n1", tx2);
        broker.unregister("n1", old);
        assert!(broker.is_connected("n1"));
        broker.unregister("n1", new);
        assert!(!broker.is_connected("n1"));
    }

    #[test]
    fn a_session_whose_stream_closed_is_not_connected() {
        let broker = Broker::default();
        let (tx, rx) = mpsc::channel(1);
        broker.register("n1", tx);
        drop(rx);
        assert!(!broker.is_connected("n1"));
    }

    /// Waits briefly for a tracked connection's cut.
    async fn cut_of(t: &Tracked) -> Option<Status> {
        tokio::time::timeout(Duration::from_millis(50), t.cut())
            .await
            .ok()
    }

    #[tokio::test]
    async fn deleting_a_pod_cuts_its_connections_only() {
        let broker = Arc::new(Broker::default());
        let to_p = broker.track(1, &route("n1"));
        // Deleted and created again: same name, another pod.
        let mut again = route("n1");
        again.pod_uid = "uid-p2".into();
        let to_again = broker.track(2, &again);
        assert_eq!(broker.cut_pod(&PodRef::of(&route("n1"))), 1);
        let status = cut_of(&to_p).await.unwrap();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert_eq!(
            status.message(),
            "error forwarding port 80 to pod \"p\": the pod was deleted"
        );
        assert!(cut_of(&to_again).await.is_none());
        drop(to_p);
        assert_eq!(broker.open_pods(), vec![PodRef::of(&again)]);
    }

    #[tokio::test]
    async fn an_agent_gone_cuts_its_nodes_connections_only() {
        let broker = Arc::new(Broker::default());
        let (tx1, _rx1) = mpsc::channel(1);
        let (tx2, _rx2) = mpsc::channel(1);
        let old = broker.register("n1", tx1);
        let on_n1 = broker.track(1, &route("n1"));
        let on_n2 = broker.track(2, &route("n2"));
        // The agent reconnected: the old session ending is not the agent gone.
        let new = broker.register("n1", tx2);
        assert!(!broker.unregister("n1", old));
        assert!(broker.unregister("n1", new));
        assert!(cut_of(&on_n1).await.is_none());
        assert_eq!(broker.cut_node("n1"), 1);
        let status = cut_of(&on_n1).await.unwrap();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert_eq!(
            status.message(),
            "error forwarding port 80 to pod \"p\": lost the tunnel to the agent of node \"n1\""
        );
        assert!(cut_of(&on_n2).await.is_none());
        // The first cut wins.
        assert_eq!(broker.cut_pod(&PodRef::of(&route("n1"))), 2);
        assert_eq!(cut_of(&on_n1).await.unwrap().message(), status.message());
    }

    #[tokio::test]
    async fn dialling_a_node_without_agent_fails_at_once() {
        let broker = Broker::default();
        let err = broker.dial(1, &route("n9")).await.err().unwrap();
        assert!(matches!(err, TunnelError::AgentGone { .. }), "{err}");
        assert!(lock(&broker.pending).is_empty());
    }

    #[tokio::test]
    async fn dialling_sends_a_request_and_cleans_up_when_abandoned() {
        let broker = std::sync::Arc::new(Broker::default());
        let (tx, mut rx) = mpsc::channel(1);
        broker.register("n1", tx);
        let b = broker.clone();
        let dial = tokio::spawn(async move { b.dial(7, &route("n1")).await.is_ok() });
        let msg = rx.recv().await.unwrap().unwrap();
        match msg.message {
            Some(BrokerMsg::Dial(d)) => {
                assert_eq!(
                    (d.connection_id, d.ip.as_str(), d.port),
                    (7, "127.0.0.1", 80)
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lock(&broker.pending).len(), 1);
        dial.abort();
        let _ = dial.await;
        assert!(lock(&broker.pending).is_empty());
    }
}
