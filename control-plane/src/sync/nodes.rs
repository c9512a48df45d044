//! Per-agent sync state, the control plane's answer to "is every node's data
//! path current?" (`swctl get nodes`, like `istioctl proxy-status`).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_api::resources::NodeStatus;

use crate::ha::NodeReport;

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
    elsewhere: RwLock<HashMap<String, NodeReport>>,
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

    /// Replaces what the other control planes report of their agents.
    pub fn set_elsewhere(&self, reports: impl IntoIterator<Item = (String, NodeReport)>) {
        *self.elsewhere.write().unwrap_or_else(|e| e.into_inner()) = reports.into_iter().collect();
    }

    /// When each node's agent was last heard from by any control plane:
    /// here, or as the others last announced it.
    pub fn last_heard(&self) -> HashMap<String, SystemTime> {
        let mut heard: HashMap<String, SystemTime> = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(name, n)| Some((name.clone(), n.last_heard?)))
            .collect();
        let elsewhere = self.elsewhere.read().unwrap_or_else(|e| e.into_inner());
        for (name, report) in elsewhere.iter().filter(|(_, r)| r.last_heard_unix_ms > 0) {
            let at = UNIX_EPOCH + Duration::from_millis(report.last_heard_unix_ms);
            let entry = heard.entry(name.clone()).or_insert(at);
            *entry = (*entry).max(at);
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
            .cloned();
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

fn unix_millis(at: SystemTime) -> u64 {
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
            NodeReport {
                state: "SYNCED".into(),
                applied_version: 7,
                last_error: None,
                last_heard_unix_ms: 0,
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
}
