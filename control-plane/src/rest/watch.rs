//! Watches over REST: one JSON event per line (`{"type":"ADDED","object":…}`)
//! on a response that stays open, as kube-apiserver streams them, with
//! BOOKMARK events for clients that allow them, `timeoutSeconds`, and a
//! 410 `Expired` ERROR event for a revision the history no longer holds.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch as notify};

use super::catalog::Served;
use super::list::FieldSelector;
use super::table::{self, columns_of, row_of, Include};
use super::{response, Call};
use crate::registry::{Event, Registry};
use crate::status::kube_status;
use crate::store::EventType;

/// How often an idle watch that allows bookmarks gets one: often enough
/// that a client resuming after a drop rarely replays much.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

/// The revision to watch after; unset and "0" mean "the current objects
/// first, then every change", as in Kubernetes.
pub fn start_revision(resource_version: Option<&str>) -> Result<u64, String> {
    match resource_version {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| format!("resourceVersion: Invalid value: {v:?}: must be a number")),
    }
}

/// Streams `events` to the client until it leaves, the watch times out,
/// falls behind or the control plane stops.
pub fn stream(
    call: &Call,
    served: &'static Served,
    events: mpsc::Receiver<Result<Event, tonic::Status>>,
    fields: FieldSelector,
    registry: Arc<Registry>,
    stopping: notify::Receiver<bool>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    let shape = Shape {
        table: call.table,
        include: call.include,
        served,
    };
    let feed = Feed {
        events,
        fields,
        bookmarks: call.query.allow_bookmarks,
        timeout: call.query.timeout,
        registry,
        stopping,
    };
    tokio::spawn(feed.run(shape, tx));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut answer = Response::new(body);
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(response::JSON),
    );
    answer
}

/// A watch refused at its start: a 200 whose one event is the 410.
pub fn expired(status: &tonic::Status) -> Response<Body> {
    let line = line(
        "ERROR",
        serde_json::to_value(kube_status(status)).unwrap_or(Value::Null),
    );
    response::with_type(StatusCode::OK, response::JSON, line.to_vec())
}

/// How each event's object is written.
struct Shape {
    table: bool,
    include: Include,
    served: &'static Served,
}

impl Shape {
    fn object(&self, e: &Event) -> Value {
        match (self.table, e.object.kind()) {
            (true, kind) => {
                let rows = vec![row_of(&e.object, chrono::Utc::now())];
                let meta = json!({ "resourceVersion": e.revision.to_string() });
                table::table(&columns_of(kind), rows, meta, self.include)
            }
            (false, _) => (*e.object).clone().with_type_meta().to_value(),
        }
    }

    fn bookmark(&self, revision: u64) -> Value {
        json!({
            "kind": self.served.kind,
            "apiVersion": self.served.group_version(),
            "metadata": { "resourceVersion": revision.to_string() },
        })
    }
}

struct Feed {
    events: mpsc::Receiver<Result<Event, tonic::Status>>,
    fields: FieldSelector,
    bookmarks: bool,
    timeout: Option<Duration>,
    registry: Arc<Registry>,
    stopping: notify::Receiver<bool>,
}

impl Feed {
    async fn run(
        mut self,
        shape: Shape,
        tx: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
    ) {
        let deadline = tokio::time::sleep(self.timeout.unwrap_or(Duration::MAX / 4));
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
        bookmark.tick().await;
        loop {
            let line_out = tokio::select! {
                _ = &mut deadline => return,
                _ = self.stopping.changed() => return,
                _ = bookmark.tick(), if self.bookmarks => {
                    line("BOOKMARK", shape.bookmark(self.registry.revision()))
                }
                event = self.events.recv() => match event {
                    None => return,
                    Some(Err(status)) => {
                        let error = serde_json::to_value(kube_status(&status)).unwrap_or(Value::Null);
                        let _ = tx.send(Ok(line("ERROR", error))).await;
                        return;
                    }
                    Some(Ok(e)) if !self.admits(&e) => continue,
                    Some(Ok(e)) => line(event_type(e.event_type), shape.object(&e)),
                },
            };
            if tx.send(Ok(line_out)).await.is_err() {
                return;
            }
        }
    }

    fn admits(&self, e: &Event) -> bool {
        self.fields.is_empty() || self.fields.matches(&e.object.to_value())
    }
}

fn event_type(t: EventType) -> &'static str {
    match t {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({ "type": event_type, "object": object })).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_revisions() {
        assert_eq!(start_revision(None), Ok(0));
        assert_eq!(start_revision(Some("0")), Ok(0));
        assert_eq!(start_revision(Some("42")), Ok(42));
        assert!(start_revision(Some("x")).is_err());
    }

    #[test]
    fn one_event_per_line() {
        let bytes = line("ADDED", json!({"kind": "Service"}));
        assert_eq!(bytes.last(), Some(&b'\n'));
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            parsed,
            json!({"type": "ADDED", "object": {"kind": "Service"}})
        );
    }
}
