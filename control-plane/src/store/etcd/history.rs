//! Reading the window of history `(after, until]` through a watch, and
//! knowing when the read is whole.
//!
//! A watch on the prefix delivers this cluster's events in revision order,
//! and nothing for a revision another cluster sharing the etcd wrote (under
//! its own prefix). So silence cannot tell "nothing more of ours up to
//! `until`" from "etcd is slow to send it". The read is whole only once it
//! is shown so:
//! - an event at `until`, or past it (a later write of this cluster: each
//!   control plane re-announces itself under the prefix every two seconds,
//!   so one comes soon after any foreign tail);
//! - a progress notification at or past `until`, from a member that sends
//!   one only after every event before it (etcd 3.4.25+, 3.5.8+; before,
//!   it answered at once with its current revision, ahead of events still
//!   to come: etcd-io/etcd#15220). The read asks for one while it waits.
//!
//! Past its patience a read not shown whole fails with
//! [`StoreError::HistoryIncomplete`], and the watcher lists again, as after a
//! compaction, rather than take a part of the history for all of it and
//! miss the rest for good.

use std::time::Duration;

use super::etcdserverpb::{
    maintenance_client::MaintenanceClient, watch_request, StatusRequest, WatchProgressRequest,
    WatchRequest, WatchResponse,
};
use futures::channel::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::errors::{classify, EtcdCall};
use super::{compacted, retried, revision, EtcdStore, Keys, HISTORY_PATIENCE};
use crate::store::{LoggedEvent, Result, StoreError};

/// How often a read that has not ended asks for a progress notification
/// (a member that is still sending events ignores the request).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What one watch response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// The watch exists now (its first response).
    Created,
    /// Events, oldest first.
    Events,
    /// Every event up to this revision has been sent.
    Progress(u64),
    /// etcd ended the watch: its start was compacted, or it was cancelled.
    Ended,
}

pub(super) fn answer(response: &WatchResponse) -> Answer {
    if response.compact_revision > 0 || response.canceled {
        Answer::Ended
    } else if response.created {
        Answer::Created
    } else if !response.events.is_empty() {
        Answer::Events
    } else {
        Answer::Progress(revision(
            response.header.as_ref().map(|h| h.revision).unwrap_or(0),
        ))
    }
}

/// Whether an etcd of `version` sends a requested progress notification
/// only after every event before it.
pub(super) fn orders_progress(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
    match (next(), next(), next()) {
        (Some(3), Some(4), Some(patch)) => patch >= 25,
        (Some(3), Some(5), Some(patch)) => patch >= 8,
        (Some(3), Some(minor), Some(_)) => minor >= 6,
        (Some(major), Some(_), Some(_)) => major > 3,
        _ => false,
    }
}

/// One history read: what it has gathered, and whether it is shown whole.
#[derive(Debug)]
pub(super) struct HistoryRead {
    after: u64,
    until: u64,
    events: Vec<LoggedEvent>,
    /// Every event up to this revision has been seen.
    reached: u64,
    whole: bool,
}

impl HistoryRead {
    pub(super) fn new(after: u64, until: u64) -> Self {
        Self {
            after,
            until,
            events: Vec::new(),
            reached: after.min(until),
            whole: until <= after,
        }
    }

    /// Takes one watch response; whether the read is whole now.
    /// `progress_ordered`: whether the member serving the watch sends a
    /// progress notification only after the events before it (otherwise
    /// one proves nothing).
    pub(super) fn take(
        &mut self,
        keys: &Keys,
        response: &WatchResponse,
        progress_ordered: bool,
    ) -> Result<bool> {
        match answer(response) {
            Answer::Ended => return Err(compacted(self.after, response)),
            Answer::Created => {}
            Answer::Progress(at) if progress_ordered => self.reach(at),
            Answer::Progress(_) => {}
            Answer::Events => {
                for event in &response.events {
                    let Some(kv) = event.kv.as_ref() else {
                        continue;
                    };
                    let rev = revision(kv.mod_revision);
                    if rev > self.until {
                        // Events come in revision order: the window's are
                        // all in.
                        self.whole = true;
                        break;
                    }
                    if let Some(logged) = keys.logged(event, rev) {
                        self.events.push(logged);
                    }
                    // Not done at `until` yet: the response may hold more
                    // events of that same revision (one write, several
                    // objects).
                    self.reach(rev);
                }
            }
        }
        Ok(self.whole)
    }

    fn reach(&mut self, rev: u64) {
        self.reached = self.reached.max(rev.min(self.until));
        if rev >= self.until {
            self.whole = true;
        }
    }

    /// The events, if the read was shown whole; the error a watcher
    /// relists on otherwise.
    pub(super) fn outcome(self) -> Result<Vec<LoggedEvent>> {
        if self.whole {
            Ok(self.events)
        } else {
            Err(StoreError::HistoryIncomplete {
                after: self.after,
                until: self.until,
                reached: self.reached,
                within: HISTORY_PATIENCE,
            })
        }
    }
}

fn progress_request() -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    }
}

impl EtcdStore {
    /// Every event of this cluster in `(after, until]`, or an error.
    pub(super) async fn history(&self, after: u64, until: u64) -> Result<Vec<LoggedEvent>> {
        let mut read = HistoryRead::new(after, until);
        if until <= after {
            return read.outcome();
        }
        let deadline = Instant::now() + HISTORY_PATIENCE;
        let mut watch = self.open_watch(after + 1, true).await?;
        let mut ordered: Option<bool> = None;
        let mut ask = tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return read.outcome(),
                _ = ask.tick() => {
                    let known = match ordered {
                        Some(known) => known,
                        None => {
                            let known = self.orders_progress(watch.member, deadline).await;
                            ordered = Some(known);
                            known
                        }
                    };
                    if known {
                        ask_progress(&watch.requests);
                    }
                }
                next = watch.responses.message() => {
                    let next = next.map_err(|e| classify(EtcdCall::Watch, &e))?;
                    // A watch etcd closed is a read cut short.
                    let Some(response) = next else { return read.outcome() };
                    if read.take(&self.keys, &response, ordered == Some(true))? {
                        return read.outcome();
                    }
                }
            }
        }
    }

    /// Whether `member` (the one serving a watch) orders its progress
    /// notifications; `false` when that cannot be learnt before `deadline`.
    /// The status read goes over the same connection as the watch, so it
    /// is the same member unless the connection moved (then: `false`).
    async fn orders_progress(&self, member: u64, deadline: Instant) -> bool {
        let status = retried(EtcdCall::StatusRead, || {
            let mut client = MaintenanceClient::new(self.channel.clone());
            async move { client.status(StatusRequest {}).await }
        });
        let ordered = match tokio::time::timeout_at(deadline, status).await {
            Ok(Ok(status)) => {
                member != 0
                    && status.header.is_some_and(|h| h.member_id == member)
                    && orders_progress(&status.version)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot read etcd's version");
                false
            }
            Err(_) => false,
        };
        tracing::debug!(member, ordered, "etcd's progress notifications");
        ordered
    }
}

fn ask_progress(requests: &UnboundedSender<WatchRequest>) {
    // The watch has ended if this fails; its response stream says so.
    let _ = requests.unbounded_send(progress_request());
}

#[cfg(test)]
mod tests {
    use super::super::etcdserverpb::{Event as EtcdEvent, KeyValue, ResponseHeader};
    use super::*;

    fn keys() -> Keys {
        Keys {
            prefix: "/sy".to_string(),
        }
    }

    fn service(name: &str, rev: i64, version: i64) -> EtcdEvent {
        let json = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}]},
        });
        EtcdEvent {
            r#type: 0,
            kv: Some(KeyValue {
                key: format!("/sy/objects/services/default/{name}").into_bytes(),
                create_revision: rev,
                mod_revision: rev,
                version,
                value: json.to_string().into_bytes(),
                lease: 0,
            }),
            prev_kv: None,
        }
    }

    /// An event under the prefix that is no object: a member's record.
    fn announcement(rev: i64) -> EtcdEvent {
        EtcdEvent {
            r#type: 0,
            kv: Some(KeyValue {
                key: b"/sy/controlplanes/cp-1".to_vec(),
                mod_revision: rev,
                version: 2,
                value: b"{}".to_vec(),
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    fn events(events: Vec<EtcdEvent>) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                revision: events
                    .iter()
                    .filter_map(|e| e.kv.as_ref())
                    .map(|kv| kv.mod_revision)
                    .max()
                    .unwrap_or(0),
                ..Default::default()
            }),
            events,
            ..Default::default()
        }
    }

    fn progress(at: i64) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                revision: at,
                ..Default::default()
            }),
            watch_id: -1,
            ..Default::default()
        }
    }

    fn names(events: &[LoggedEvent]) -> Vec<(u64, String)> {
        events
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_str(&e.object).unwrap();
                (
                    e.revision,
                    v["metadata"]["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The defect: events of the window still on their way when the
    /// patience ran out were dropped, and the rest handed on as the whole
    /// history. Now the read fails and says how far it got.
    #[test]
    fn a_read_that_runs_out_of_time_fails_instead_of_returning_a_part() {
        let mut read = HistoryRead::new(3, 9);
        let done = read
            .take(
                &keys(),
                &events(vec![service("a", 4, 1), service("b", 5, 1)]),
                false,
            )
            .unwrap();
        assert!(!done);
        let e = read.outcome().unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::HistoryIncomplete {
                    after: 3,
                    until: 9,
                    reached: 5,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "storage: etcd: the changes after revision 3 could not be read through revision 9 within 3s (only through revision 5); list again and resume"
        );
    }

    /// Revisions of another cluster have no event here: an unordered
    /// member's progress notification (etcd before 3.4.25/3.5.8 answers
    /// at once with its current revision) cannot end the read.
    #[test]
    fn an_unordered_progress_notification_proves_nothing() {
        let mut read = HistoryRead::new(3, 9);
        read.take(&keys(), &events(vec![service("a", 4, 1)]), false)
            .unwrap();
        assert!(!read.take(&keys(), &progress(12), false).unwrap());
        assert!(matches!(
            read.outcome(),
            Err(StoreError::HistoryIncomplete { reached: 4, .. })
        ));
    }

    /// Nothing of ours after revision 4, and an ordered member says it has
    /// sent everything up to 12: the read is whole.
    #[test]
    fn an_ordered_progress_notification_past_the_window_ends_the_read() {
        let mut read = HistoryRead::new(3, 9);
        read.take(&keys(), &events(vec![service("a", 4, 1)]), true)
            .unwrap();
        assert!(!read.take(&keys(), &progress(7), true).unwrap());
        assert!(read.take(&keys(), &progress(9), true).unwrap());
        assert_eq!(names(&read.outcome().unwrap()), vec![(4, "a".to_string())]);
    }

    /// A later write of this cluster (a member's announcement) shows the
    /// window's events all in, whatever etcd's version.
    #[test]
    fn a_later_event_of_ours_ends_the_read_and_is_left_out() {
        let mut read = HistoryRead::new(3, 9);
        read.take(&keys(), &events(vec![service("a", 4, 1)]), false)
            .unwrap();
        let done = read
            .take(
                &keys(),
                &events(vec![announcement(11), service("c", 12, 1)]),
                false,
            )
            .unwrap();
        assert!(done);
        assert_eq!(names(&read.outcome().unwrap()), vec![(4, "a".to_string())]);
    }

    /// One write at `until` may put several objects: all of them are in.
    #[test]
    fn every_event_of_the_last_revision_is_kept() {
        let mut read = HistoryRead::new(3, 9);
        let done = read
            .take(
                &keys(),
                &events(vec![
                    service("a", 9, 1),
                    service("b", 9, 2),
                    service("c", 10, 1),
                ]),
                false,
            )
            .unwrap();
        assert!(done);
        let got = read.outcome().unwrap();
        assert_eq!(
            names(&got),
            vec![(9, "a".to_string()), (9, "b".to_string())]
        );
        assert_eq!(got[0].event_type, crate::store::EventType::Added);
        assert_eq!(got[1].event_type, crate::store::EventType::Modified);
    }

    #[test]
    fn a_compacted_start_is_compacted() {
        let mut read = HistoryRead::new(3, 9);
        let response = WatchResponse {
            compact_revision: 6,
            canceled: true,
            ..Default::default()
        };
        let e = read.take(&keys(), &response, true).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Compacted {
                    requested: 3,
                    oldest: 6
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn an_empty_window_is_whole_at_once() {
        assert!(HistoryRead::new(9, 9).outcome().unwrap().is_empty());
    }

    #[test]
    fn answers_are_told_apart() {
        let created = WatchResponse {
            created: true,
            header: Some(ResponseHeader {
                revision: 20,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(answer(&created), Answer::Created);
        assert_eq!(answer(&progress(20)), Answer::Progress(20));
        assert_eq!(answer(&events(vec![service("a", 4, 1)])), Answer::Events);
        let cancelled = WatchResponse {
            canceled: true,
            ..Default::default()
        };
        assert_eq!(answer(&cancelled), Answer::Ended);
    }

    #[test]
    fn progress_is_ordered_from_3_4_25_and_3_5_8() {
        for version in [
            "3.4.25",
            "3.4.31",
            "3.5.8",
            "3.5.21",
            "3.6.0",
            "3.6.0-rc.1",
            "v3.7.1",
            "4.0.0",
        ] {
            assert!(orders_progress(version), "{version}");
        }
        for version in ["3.4.23", "3.4.24", "3.5.7", "3.3.27", "", "unknown", "3.5"] {
            assert!(!orders_progress(version), "{version}");
        }
    }
}
