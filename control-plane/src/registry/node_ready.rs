//! The leader's Ready judgements as writes: a Node's `Ready` condition and,
//! with it, the readiness of the pods bound to it — Kubernetes' node
//! lifecycle controller marking pods not ready, so their endpoints leave
//! every data path through the endpoints controller, which already follows
//! pod readiness.

use switchyard_api::resources::{Kind, Node, NodeCondition, Object, Pod};

use super::prepare::{now_rfc3339, write_ready_condition};
use super::state::{State, Txn};
use super::{Attempt, Registry, RegistryError, Result};
use crate::controller::slices::reconcile_endpoints;
use crate::store::object_key;

/// Why a pod was marked not ready: its node stopped being heard from.
pub const NODE_NOT_READY: &str = "NodeNotReady";

impl Registry {
    /// Sets `node`'s Ready condition and its pods' readiness, as the leader
    /// only (fenced on its lease). Returns `false` when the node was already
    /// so.
    #[tracing::instrument(skip(self))]
    pub async fn set_node_ready(&self, node: &str, ready: bool) -> Result<bool> {
        let lease = self
            .leader_lease()
            .ok_or_else(|| RegistryError::Forbidden {
                kind: Kind::Node,
                name: node.to_string(),
                reason: "this control plane does not lead".to_string(),
            })?;
        let key = object_key(Kind::Node, "", node);
        self.run(|state, _| {
            let Some(Object::Node(n)) = state.get(Kind::Node, &key).map(|o| (**o).clone()) else {
                return Err(RegistryError::NotFound {
                    kind: Kind::Node,
                    name: node.to_string(),
                });
            };
            if n.is_ready() == Some(ready) {
                return Ok(Attempt::Done(false));
            }
            let now = now_rfc3339();
            let mut txn = Txn::new(state);
            txn.put(Object::Node(Box::new(with_ready_condition(*n, ready, &now))));
            let bound = |o: &Object| matches!(o, Object::Pod(p) if p.spec.node_name.as_deref() == Some(node));
            for old in txn.list_all_where(Kind::Pod, bound) {
                let Object::Pod(pod) = &old else { continue };
                if let Some(pod) = pod_on_node_change(pod, ready, &now) {
                    let new = Object::Pod(pod);
                    txn.put(new.clone());
                    reconcile_endpoints(&mut txn, Some(&old), Some(&new));
                }
            }
            let mut prepared = txn.finish();
            prepared.batch.fence = Some(lease).filter(|l| *l != 0);
            Ok(Attempt::Write(prepared, true))
        })
        .await
    }
}

/// The node with its Ready condition set as kubelet and the node lifecycle
/// controller word it.
pub fn with_ready_condition(mut node: Node, ready: bool, now: &str) -> Node {
    let (status, reason, message) = match ready {
        true => (
            "True",
            "AgentReady",
            "switchyard-agent is posting ready status",
        ),
        false => (
            "Unknown",
            "NodeStatusUnknown",
            "switchyard-agent stopped posting node status.",
        ),
    };
    node.status.conditions.retain(|c| c.type_ != "Ready");
    node.status.conditions.push(NodeCondition {
        type_: "Ready".to_string(),
        status: status.to_string(),
        last_heartbeat_time: None,
        last_transition_time: Some(now.to_string()),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
    });
    node
}

/// A pod written for a node judged NotReady is not ready either, until
/// its node is back (then [`pod_on_node_change`] takes over).
pub fn hold_on_unready_node(pod: &mut Pod, state: &State, now: &str) {
    let Some(node) = pod.spec.node_name.as_deref() else {
        return;
    };
    let unready = match state
        .get(Kind::Node, &object_key(Kind::Node, "", node))
        .map(|o| &**o)
    {
        Some(Object::Node(n)) => n.is_ready() == Some(false),
        _ => false,
    };
    if unready {
        if let Some(held) = pod_on_node_change(pod, false, now) {
            *pod = held;
        }
    }
}

/// What becomes of a pod when its node turns Ready or not: a ready pod
/// turns unready with its node; coming back, a pod without a probe is
/// ready again at once, while a probed one waits for its agent's probe
/// (which reports whenever the server's view differs from its own).
/// `None` when the pod stays as it is.
pub fn pod_on_node_change(pod: &Pod, node_ready: bool, now: &str) -> Option<Pod> {
    let marked = pod
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.reason.as_deref() == Some(NODE_NOT_READY));
    let mut pod = pod.clone();
    match node_ready {
        false if pod.is_ready() => {
            write_ready_condition(&mut pod, false, now.to_string());
            if let Some(c) = pod
                .status
                .conditions
                .iter_mut()
                .find(|c| c.type_ == "Ready")
            {
                c.reason = Some(NODE_NOT_READY.to_string());
                c.message = Some("the pod's node is not ready".to_string());
            }
            Some(pod)
        }
        true if marked && !pod.has_readiness_probe() => {
            write_ready_condition(&mut pod, true, now.to_string());
            Some(pod)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::{
        Container, IntOrString, PodCondition, PodSpec, PodStatus, Probe, TcpSocketAction,
    };

    fn pod(ready: bool, probed: bool) -> Pod {
        let probe = Probe {
            tcp_socket: Some(TcpSocketAction {
                port: IntOrString::Int(80),
            }),
            ..Default::default()
        };
        Pod {
            spec: PodSpec {
                node_name: Some("node-2".into()),
                containers: vec![Container {
                    name: "web".into(),
                    readiness_probe: probed.then(|| Box::new(probe)),
                    ..Default::default()
                }],
                ..Default::default()
            },
            status: PodStatus {
                conditions: vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some("2026-12-07T10:00:00Z".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn ready_of(p: &Pod) -> (String, Option<String>, Option<String>) {
        let c = p
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .unwrap_or_default();
        (c.status, c.reason, c.last_transition_time)
    }

    const NOW: &str = "2026-12-07T11:00:00Z";

    #[test]
    fn a_ready_pod_turns_unready_with_its_node_and_back_without_a_probe() {
        let down = pod_on_node_change(&pod(true, false), false, NOW).unwrap();
        assert_eq!(
            ready_of(&down),
            (
                "False".into(),
                Some(NODE_NOT_READY.into()),
                Some(NOW.into())
            )
        );
        let later = "2026-12-07T11:00:30Z";
        let up = pod_on_node_change(&down, true, later).unwrap();
        assert_eq!(ready_of(&up), ("True".into(), None, Some(later.into())));
    }

    #[test]
    fn a_probed_pod_waits_for_its_probe_and_an_unready_pod_stays_unmarked() {
        let down = pod_on_node_change(&pod(true, true), false, NOW).unwrap();
        assert_eq!(ready_of(&down).0, "False");
        assert_eq!(pod_on_node_change(&down, true, NOW), None);
        // Unready before its node went: not the node's doing, left alone both ways.
        assert_eq!(pod_on_node_change(&pod(false, false), false, NOW), None);
        assert_eq!(pod_on_node_change(&pod(false, false), true, NOW), None);
    }

    #[test]
    fn the_node_condition_is_worded_as_kubernetes_words_it() {
        let node = with_ready_condition(Node::default(), false, NOW);
        let c = node.ready_condition().unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
            (
                "Unknown",
                Some("NodeStatusUnknown"),
                Some("switchyard-agent stopped posting node status.")
            )
        );
        assert_eq!(node.is_ready(), Some(false));
        let node = with_ready_condition(node, true, NOW);
        assert_eq!(node.status.conditions.len(), 1);
        assert_eq!(node.is_ready(), Some(true));
    }
}
