//! Per-agent sync state, the control plane's answer to "is every node's data
//! path current?" (`swctl get nodes`, like `istioctl proxy-status`).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_api::resources::NodeStatus;

use crate::store::coordination::{Member, NodeReport};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSync {
    pub connected: bool,
    /// Sessions opened by this node; a new stream supersedes an old one.
    pub session: u64,
    pub applied_version: u64,
    pub last_error: Option<String>,
    /// When the agent last sent anything on its stream (wall clock: the
    /// leader compares it with what other control planes announce).
    pub last_heard: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Synced,
    Stale,
    Nacked,
    Disconnected,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "SYNCED",
            SyncState::Stale => "STALE",
            SyncState::Nacked => "NACKED",
            SyncState::Disconnected => "DISCONNECTED",
        }
    }
}

impl NodeSync {
    pub fn state(&self, current_version: u64) -> SyncState {
        if !self.connected {
            SyncState::Disconnected
        } else if self.last_error.is_some() {
            SyncState::Nacked
        } else if self.applied_version >= current_version {
            SyncState::Synced
        } else {
            SyncState::Stale
        }
    }
}

#[derive(Debug, Default)]
pub struct NodeTable {
    nodes: RwLock<HashMap<String, NodeSync>>,
    /// Agents streaming from other control planes on the same store, as
    /// those last announced them (a few seconds old at most).
    elsewhere: RwLock<HashMap<String, Announced>>,
}

impl NodeTable {
    fn update<T>(&self, f: impl FnOnce(&mut HashMap<String, NodeSync>) -> T) -> T {
        // Poisoning would only follow a panic between plain field writes.
        f(&mut self.nodes.write().unwrap_or_else(|e| e.into_inner()))
    }

    /// Marks a node connected and returns the id of its new session.
    pub fn connected(&self, node: &str, applied_version: u64) -> u64 {
        self.update(|nodes| {
            let entry = nodes.entry(node.to_string()).or_default();
            entry.connected = true;
            entry.session += 1;
            entry.applied_version = applied_version;
            entry.last_error = None;
            entry.last_heard = Some(SystemTime::now());
            entry.session
        })
    }

    /// Records that a session's agent was heard from just now.
    pub fn heard(&self, node: &str, session: u64) {
        self.update(|nodes| {
            if let Some(entry) = nodes.get_mut(node).filter(|e| e.session == session) {
                entry.last_heard = Some(SystemTime::now());
            }
        });
    }

    /// Records an ACK (`error == None`) or NACK from the given session.
    pub fn acked(&self, node: &str, session: u64, version: u64, error: Option<String>) {
        self.update(|nodes| {
            if let Some(entry) = nodes.get_mut(node).filter(|e| e.session == session) {
                if error.is_none() {
                    entry.applied_version = version;
                }
                entry.last_error = error;
            }
        });
    }

    /// Ends a session unless a newer one from the same node replaced it.
    pub fn disconnected(&self, node: &str, session: u64) {
        self.update(|nodes| {
            if let Some(entry) = nodes.get_mut(node).filter(|e| e.session == session) {
                entry.connected = false;
            }
        });
    }

    pub fn connected_count(&self) -> usize {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|n| n.connected)
            .count()
    }

    /// The agents streaming from this control plane, for its record.
    pub fn reports(&self, current_version: u64) -> std::collections::BTreeMap<String, NodeReport> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, n)| n.connected)
            .map(|(name, n)| {
                let report = NodeReport {
                    state: n.state(current_version).as_str().to_string(),
                    applied_version: n.applied_version,
                    last_error: n.last_error.clone(),
                    last_heard_unix_ms: n.last_heard.map_or(0, unix_millis),
                };
                (name.clone(), report)
            })
            .collect()
    }

    /// Learns what the other control planes' records say of their agents.
    pub fn learn(&self, others: &[Member]) {
        self.set_elsewhere(others.iter().flat_map(|m| {
            m.nodes.iter().map(|(node, report)| {
                let announced = Announced {
                    report: report.clone(),
                    announced_unix_ms: m.announced_unix_ms,
                };
                (node.clone(), announced)
            })
        }));
    }

    /// Replaces what the other control planes report of their agents.
    pub fn set_elsewhere(&self, reports: impl IntoIterator<Item = (String, Announced)>) {
        *self.elsewhere.write().unwrap_or_else(|e| e.into_inner()) = reports.into_iter().collect();
    }

    /// When each node's agent was last heard from by any control plane:
    /// here, or as the others announced it (see [`Announced::heard`]).
    pub fn last_heard(&self, now: SystemTime) -> HashMap<String, Heard> {
        let mut heard: HashMap<String, Heard> = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(name, n)| Some((name.clone(), Heard::At(n.last_heard?))))
            .collect();
        let elsewhere = self.elsewhere.read().unwrap_or_else(|e| e.into_inner());
        for (name, announced) in elsewhere.iter() {
            let Some(there) = announced.heard(now) else {
                continue;
            };
            let merged = match (heard.get(name), there) {
                (Some(Heard::At(a)), Heard::At(b)) => Heard::At((*a).max(b)),
                (Some(Heard::At(a)), Heard::Unknown) => Heard::At(*a),
                (_, there) => there,
            };
            heard.insert(name.clone(), merged);
        }
        heard
    }

    /// Writes the sync fields of a Node's status: this control plane's view
    /// while the node streams from it, else the view of the control plane it
    /// streams from.
    pub fn fill_status(&self, node: &str, current_version: u64, status: &mut NodeStatus) {
        let local = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
            .unwrap_or_default();
        let elsewhere = self
            .elsewhere
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .map(|a| a.report.clone());
        let heard = elsewhere
            .as_ref()
            .filter(|r| r.last_heard_unix_ms > 0)
            .map(|r| UNIX_EPOCH + Duration::from_millis(r.last_heard_unix_ms))
            .into_iter()
            .chain(local.last_heard)
            .max();
        if let Some(heard) = heard {
            let at = chrono::DateTime::<chrono::Utc>::from(heard)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            for c in status.conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                c.last_heartbeat_time = Some(at.clone());
            }
        }
        match elsewhere.filter(|_| !local.connected) {
            Some(report) => {
                status.sync_state = Some(report.state);
                status.applied_version =
                    (report.applied_version > 0).then_some(report.applied_version);
                status.last_error = report.last_error;
            }
            None => {
                status.sync_state = Some(local.state(current_version).as_str().to_string());
                status.applied_version =
                    (local.applied_version > 0).then_some(local.applied_version);
                status.last_error = local.last_error;
            }
        }
    }
}

/// An agent's report as another control plane announced it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub report: NodeReport,
    /// That control plane's clock when it wrote its record (Unix ms).
    pub announced_unix_ms: u64,
}

/// What is known of when an agent was last heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    At(SystemTime),
    /// Listed in a record too old to tell: neither alive nor dead.
    Unknown,
}

/// A record older than this tells nothing of its agents any more: its
/// control plane (or the store) is down, or this one cannot read it.
pub const STALE_RECORD: Duration = Duration::from_secs(6);

impl Announced {
    /// When the agent counts as last heard from, judged at `now`: as long
    /// before `now` as it had been silent when its record was written (only
    /// differences of one control plane's clock, and none of the record's
    /// delay, count against it); unknown while the record is stale, so a
    /// control plane or store outage neither makes nodes look dead nor
    /// brings a dead one back.
    pub fn heard(&self, now: SystemTime) -> Option<Heard> {
        let heard = self.report.last_heard_unix_ms;
        if heard == 0 {
            return None;
        }
        let announced = UNIX_EPOCH + Duration::from_millis(self.announced_unix_ms);
        if now.duration_since(announced).unwrap_or_default() > STALE_RECORD {
            return Some(Heard::Unknown);
        }
        let silent = Duration::from_millis(self.announced_unix_ms.saturating_sub(heard));
        Some(Heard::At(now - silent))
    }
}

pub(crate) fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_acks_and_sessions() {
        let table = NodeTable::default();
        let mut status = NodeStatus::default();
        table.fill_status("n1", 5, &mut status);
        assert_eq!(status.sync_state.as_deref(), Some("DISCONNECTED"));

        let s1 = table.connected("n1", 3);
        table.fill_status("n1", 5, &mut status);
        assert_eq!(status.sync_state.as_deref(), Some("STALE"));
        table.acked("n1", s1, 5, None);
        table.fill_status("n1", 5, &mut status);
        assert_eq!(
            (status.sync_state.as_deref(), status.applied_version),
            (Some("SYNCED"), Some(5))
        );
        table.acked("n1", s1, 6, Some("nft: syntax error".into()));
        table.fill_status("n1", 6, &mut status);
        assert_eq!(status.sync_state.as_deref(), Some("NACKED"));
        assert_eq!(status.last_error.as_deref(), Some("nft: syntax error"));
        assert_eq!(status.applied_version, Some(5));

        // A reconnect supersedes the old session: its late disconnect is ignored.
        let s2 = table.connected("n1", 6);
        table.disconnected("n1", s1);
        assert_eq!(table.connected_count(), 1);
        table.disconnected("n1", s2);
        assert_eq!(table.connected_count(), 0);
    }

    #[test]
    fn a_node_streaming_from_another_control_plane_shows_its_reported_state() {
        let table = NodeTable::default();
        let mut status = NodeStatus::default();
        table.set_elsewhere([(
            "n2".to_string(),
            Announced {
                report: NodeReport {
                    state: "SYNCED".into(),
                    applied_version: 7,
                    last_error: None,
                    last_heard_unix_ms: 0,
                },
                announced_unix_ms: 0,
            },
        )]);
        // Its own control plane's verdict, whatever the version here.
        table.fill_status("n2", 9, &mut status);
        assert_eq!(
            (status.sync_state.as_deref(), status.applied_version),
            (Some("SYNCED"), Some(7))
        );
        // Connected here, this control plane's own view wins.
        let s = table.connected("n2", 3);
        table.fill_status("n2", 7, &mut status);
        assert_eq!(status.sync_state.as_deref(), Some("STALE"));
        assert_eq!(table.reports(7)["n2"].state, "STALE");
        table.disconnected("n2", s);
        table.set_elsewhere([]);
        table.fill_status("n2", 7, &mut status);
        assert_eq!(status.sync_state.as_deref(), Some("DISCONNECTED"));
    }

    #[test]
    fn a_node_heard_elsewhere_counts_its_silence_when_the_record_was_written() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let announced = |heard: u64, written: u64| Announced {
            report: NodeReport {
                last_heard_unix_ms: heard,
                ..Default::default()
            },
            announced_unix_ms: written,
        };
        // Silent 1.5 s when written 3 s ago: 1.5 s silent now, not 4.5 s.
        let now = at(1_000_000);
        assert_eq!(
            announced(995_500, 997_000).heard(now),
            Some(Heard::At(at(998_500)))
        );
        // A stale record (its writer or the store is down): unknown.
        assert_eq!(announced(990_000, 993_000).heard(now), Some(Heard::Unknown));
        assert_eq!(announced(0, 999_000).heard(now), None);

        let table = NodeTable::default();
        table.set_elsewhere([
            ("n2".to_string(), announced(995_500, 997_000)),
            ("n3".to_string(), announced(990_000, 993_000)),
            ("n1".to_string(), announced(990_000, 993_000)),
        ]);
        let local = table.connected("n1", 0);
        table.heard("n1", local);
        let heard = table.last_heard(now);
        assert_eq!(heard["n2"], Heard::At(at(998_500)));
        assert_eq!(heard["n3"], Heard::Unknown);
        // Heard here beats a stale record elsewhere.
        assert!(matches!(heard["n1"], Heard::At(_)));
    }
}
