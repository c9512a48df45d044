//! Node lifecycle: a node is `Ready` while its agent is heard from, and
//! turns `NotReady` once it has been silent for the grace period
//! (`--node-monitor-grace-period`); its pods then turn unready, so their
//! endpoints leave every data path (Kubernetes' node lifecycle controller).
//!
//! Only the leader judges, so every control plane of a shared store shows
//! the same verdict: it combines the agents it hears itself with the
//! last-heard times the others announce in their member records (heartbeats
//! cost the store nothing; only a transition is written). A control plane
//! that starts or takes over leadership gives every node a full grace
//! period first, and a record too old to tell (its control plane or the
//! store is down) neither kills nor revives the nodes it lists, so a
//! restart, a failover or a store outage never flaps a healthy node.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use switchyard_api::resources::{Kind, Node, Object};

use crate::metrics::{Metrics, ReadyLabel};
use crate::registry::Registry;
use crate::sync::nodes::Heard;
use crate::sync::NodeTable;

/// How often the leader judges.
const JUDGE_EVERY: Duration = Duration::from_secs(1);
/// The shortest grace period allowed: a few heartbeats and the member
/// records' refresh must fit in it.
pub const MIN_GRACE: Duration = Duration::from_secs(5);

/// How often agents send a heartbeat for a given grace period: ten per
/// grace period, at most every 2 s, so a few lost or late ones never make
/// a live node look dead.
pub fn heartbeat_interval(grace: Duration) -> Duration {
    (grace / 10).clamp(Duration::from_millis(500), Duration::from_secs(2))
}

/// What the leader knows of one node when it judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The Ready condition as stored: `None` before any judgement.
    pub ready: Option<bool>,
    /// When it last turned not ready (the condition's transition time).
    pub not_ready_since: Option<SystemTime>,
    /// When its agent was last heard from, by any control plane.
    pub heard: Option<SystemTime>,
    /// Listed by a control plane whose record is too old to tell: no
    /// verdict of NotReady for now.
    pub unknown: bool,
}

/// The Ready status a node must turn to now, if it must change.
///
/// - Heard within the grace period (and, for a node judged not ready, after
///   that judgement): Ready.
/// - Silent for longer than the grace period, counted from the later of
///   its last sign of life and the moment this leader started leading:
///   NotReady.
pub fn verdict(
    now: SystemTime,
    grace: Duration,
    leading_since: SystemTime,
    seen: Seen,
) -> Option<bool> {
    let age = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    // Transition times are stored to the second: "after" means a second later.
    let heard_since_judged = |heard: SystemTime| {
        seen.not_ready_since
            .is_none_or(|t| heard > t + Duration::from_secs(1))
    };
    let alive = seen
        .heard
        .is_some_and(|h| age(h) <= grace && (seen.ready != Some(false) || heard_since_judged(h)));
    if alive {
        return (seen.ready != Some(true)).then_some(true);
    }
    if seen.unknown {
        return None;
    }
    let silent_since = seen.heard.map_or(leading_since, |h| h.max(leading_since));
    (age(silent_since) > grace && seen.ready != Some(false)).then_some(false)
}

/// What the leader knows of `node`.
fn seen(node: &Node, heard: &HashMap<String, Heard>) -> Seen {
    let condition = node.ready_condition();
    let not_ready_since = condition
        .filter(|c| c.status != "True")
        .and_then(|c| c.last_transition_time.as_deref())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(SystemTime::from);
    let heard = heard.get(&node.metadata.name).copied();
    Seen {
        ready: node.is_ready(),
        not_ready_since,
        heard: match heard {
            Some(Heard::At(at)) => Some(at),
            _ => None,
        },
        unknown: heard == Some(Heard::Unknown),
    }
}

/// Runs on every control plane; judges while it leads.
pub async fn run(
    registry: Weak<Registry>,
    nodes: Arc<NodeTable>,
    metrics: Arc<Metrics>,
    grace: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(JUDGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_since: Option<SystemTime> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        let Some(registry) = registry.upgrade() else {
            return;
        };
        if !registry.is_leader() {
            leading_since = None;
            continue;
        }
        let since = *leading_since.get_or_insert_with(SystemTime::now);
        judge(&registry, &nodes, &metrics, grace, since).await;
    }
}

#[tracing::instrument(skip_all)]
async fn judge(
    registry: &Registry,
    nodes: &NodeTable,
    metrics: &Metrics,
    grace: Duration,
    leading_since: SystemTime,
) {
    let now = SystemTime::now();
    let heard = nodes.last_heard(now);
    let (changes, not_ready) = registry.with_state(|state| {
        let mut not_ready = 0;
        let mut changes = Vec::new();
        for obj in state.in_namespace(Kind::Node, None) {
            let Object::Node(node) = &**obj else { continue };
            let seen = seen(node, &heard);
            let change = verdict(now, grace, leading_since, seen);
            if change.or(seen.ready) == Some(false) {
                not_ready += 1;
            }
            if let Some(ready) = change {
                changes.push((node.metadata.name.clone(), ready));
            }
        }
        (changes, not_ready)
    });
    metrics.nodes_not_ready.set(not_ready);
    for (node, ready) in changes {
        match registry.set_node_ready(&node, ready).await {
            Ok(true) => {
                metrics
                    .node_transitions
                    .get_or_create(&ReadyLabel {
                        ready: ready.to_string(),
                    })
                    .inc();
                if ready {
                    tracing::info!(%node, "node is Ready: its agent is heard from");
                } else {
                    tracing::warn!(%node, ?grace, "node is NotReady: its agent has not been heard from within the grace period; its pods are not ready");
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%node, ready, error = %e, "cannot record the node's readiness")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(20);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn seen(ready: Option<bool>, heard: Option<u64>) -> Seen {
        Seen {
            ready,
            not_ready_since: None,
            heard: heard.map(at),
            unknown: false,
        }
    }

    #[test]
    fn a_node_heard_within_the_grace_period_is_ready() {
        assert_eq!(
            verdict(at(100), GRACE, at(0), seen(None, Some(99))),
            Some(true)
        );
        assert_eq!(
            verdict(at(100), GRACE, at(0), seen(Some(true), Some(80))),
            None
        );
    }

    #[test]
    fn a_node_silent_past_the_grace_period_turns_not_ready_once() {
        assert_eq!(
            verdict(at(100), GRACE, at(0), seen(Some(true), Some(79))),
            Some(false)
        );
        assert_eq!(
            verdict(at(100), GRACE, at(0), seen(None, None)),
            Some(false)
        );
        assert_eq!(
            verdict(at(100), GRACE, at(0), seen(Some(false), Some(79))),
            None
        );
    }

    #[test]
    fn a_new_leader_gives_every_node_a_full_grace_period() {
        // Last heard long ago (the old leader was down), but this leader
        // has led for less than the grace period: no verdict yet.
        assert_eq!(
            verdict(at(100), GRACE, at(90), seen(Some(true), Some(10))),
            None
        );
        assert_eq!(
            verdict(at(100), GRACE, at(90), seen(Some(true), None)),
            None
        );
        assert_eq!(
            verdict(at(111), GRACE, at(90), seen(Some(true), None)),
            Some(false)
        );
        // Nor does it call a node judged dead alive again without hearing it.
        assert_eq!(
            verdict(at(100), GRACE, at(90), seen(Some(false), None)),
            None
        );
    }

    #[test]
    fn a_not_ready_node_comes_back_only_when_heard_after_the_judgement() {
        let judged = Seen {
            ready: Some(false),
            not_ready_since: Some(at(50)),
            heard: Some(at(45)),
            unknown: false,
        };
        // Heard 5 s before the judgement (a record read late): still not ready.
        assert_eq!(verdict(at(55), GRACE, at(0), judged), None);
        let back = Seen {
            heard: Some(at(52)),
            ..judged
        };
        assert_eq!(verdict(at(55), GRACE, at(0), back), Some(true));
    }

    #[test]
    fn a_node_only_a_stale_record_lists_is_neither_judged_dead_nor_revived() {
        let unknown = |ready| Seen {
            ready,
            not_ready_since: Some(at(10)),
            heard: None,
            unknown: true,
        };
        assert_eq!(verdict(at(100), GRACE, at(0), unknown(Some(true))), None);
        assert_eq!(verdict(at(100), GRACE, at(0), unknown(Some(false))), None);
    }

    #[test]
    fn heartbeats_fit_the_grace_period() {
        assert_eq!(
            heartbeat_interval(Duration::from_secs(20)),
            Duration::from_secs(2)
        );
        assert_eq!(
            heartbeat_interval(Duration::from_secs(5)),
            Duration::from_millis(500)
        );
        assert_eq!(
            heartbeat_interval(Duration::from_secs(300)),
            Duration::from_secs(2)
        );
    }
}
