//! The audit log (`--audit-log FILE`): one JSON line per write, identity
//! change and port-forward session, in the shape of Kubernetes' audit
//! events at level Metadata, so existing audit tooling reads it. Lines
//! are written by a thread of their own: a slow disk never holds up a
//! request, and every line is flushed as it is written.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use tonic::{Code, Status};

use super::policy::Action;
use super::principal::Caller;

pub struct Audit {
    lines: Option<mpsc::Sender<String>>,
}

impl Audit {
    /// Appends to `path`, creating it (mode 0600: it names every user).
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (tx, rx) = mpsc::channel::<String>();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("audit-log".to_string())
            .spawn(move || write_lines(file, rx, &path))?;
        Ok(Audit { lines: Some(tx) })
    }

    pub fn disabled() -> Audit {
        Audit { lines: None }
    }

    /// Records one request's outcome.
    pub fn record(&self, event: &Event<'_>) {
        if let Some(lines) = &self.lines {
            let _ = lines.send(event.to_json().to_string());
        }
    }
}

fn write_lines(mut file: std::fs::File, lines: mpsc::Receiver<String>, path: &Path) {
    for mut line in lines {
        line.push('\n');
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::error!(error = %e, path = %path.display(), "cannot write the audit log");
        }
    }
}

/// One audited request.
pub struct Event<'a> {
    pub caller: &'a Caller,
    /// The gRPC method, e.g. `/switchyard.v1.Resources/Apply`.
    pub method: &'a str,
    pub action: &'a Action<'a>,
    /// `None` for success.
    pub failure: Option<&'a Status>,
    pub received: DateTime<Utc>,
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The HTTP status kube-apiserver would have answered with.
fn http_code(verb_creates: bool, failure: Option<&Status>) -> u16 {
    match failure.map(Status::code) {
        None if verb_creates => 201,
        None => 200,
        Some(Code::InvalidArgument) => 422,
        Some(Code::NotFound) => 404,
        Some(Code::AlreadyExists | Code::Aborted) => 409,
        Some(Code::PermissionDenied) => 403,
        Some(Code::Unauthenticated) => 401,
        Some(Code::OutOfRange) => 410,
        Some(Code::FailedPrecondition) => 400,
        Some(Code::Unavailable) => 503,
        Some(Code::DeadlineExceeded) => 504,
        Some(_) => 500,
    }
}

fn reason(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "Invalid",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "Forbidden",
        Code::Unauthenticated => "Unauthorized",
        Code::Unavailable => "ServiceUnavailable",
        _ => "InternalError",
    }
}

impl Event<'_> {
    pub fn to_json(&self) -> serde_json::Value {
        let a = self.action;
        let (resource, subresource) = match a.resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (a.resource, None),
        };
        let mut object = json!({ "resource": resource });
        for (key, value) in [
            ("subresource", subresource),
            ("namespace", a.namespace),
            ("name", a.name),
        ] {
            if let Some(value) = value {
                object[key] = json!(value);
            }
        }
        let code = http_code(a.verb == super::policy::Verb::Create, self.failure);
        let mut status = json!({ "metadata": {}, "code": code });
        if let Some(failure) = self.failure {
            status["status"] = json!("Failure");
            status["message"] = json!(failure.message());
            status["reason"] = json!(reason(failure.code()));
        }
        let principal = &self.caller.principal;
        json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": uuid::Uuid::new_v4().to_string(),
            "stage": "ResponseComplete",
            "requestURI": self.method,
            "verb": a.verb.as_str(),
            "user": { "username": principal.username(), "groups": principal.groups() },
            "sourceIPs": self.caller.remote.map(|r| vec![r.ip().to_string()]).unwrap_or_default(),
            "objectRef": object,
            "responseStatus": status,
            "requestReceivedTimestamp": timestamp(self.received),
            "stageTimestamp": timestamp(Utc::now()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::auth::policy::Verb;
    use crate::auth::principal::{Principal, Role};

    #[test]
    fn events_read_as_kubernetes_audit_events() {
        let caller = Caller {
            principal: Principal::User {
                name: "bob".into(),
                role: Role::View,
            },
            remote: Some("10.0.0.9:5555".parse().unwrap()),
        };
        let action = Action::new(Verb::Create, "services")
            .namespace("default")
            .name("web");
        let denied = Status::permission_denied("services \"web\" is forbidden: …");
        let event = Event {
            caller: &caller,
            method: "/switchyard.v1.Resources/Apply",
            action: &action,
            failure: Some(&denied),
            received: Utc::now(),
        }
        .to_json();
        assert_eq!(event["verb"], "create");
        assert_eq!(event["level"], "Metadata");
        assert_eq!(
            event["user"],
            json!({"username": "bob", "groups": ["switchyard:view"]})
        );
        assert_eq!(event["sourceIPs"], json!(["10.0.0.9"]));
        assert_eq!(
            event["objectRef"],
            json!({"resource": "services", "namespace": "default", "name": "web"})
        );
        assert_eq!(event["responseStatus"]["code"], 403);
        assert_eq!(event["responseStatus"]["reason"], "Forbidden");

        let forward = Action::new(Verb::Create, "pods/portforward")
            .namespace("default")
            .name("web-1");
        let ok = Event {
            caller: &caller,
            method: "/switchyard.v1.PortForward/Forward",
            action: &forward,
            failure: None,
            received: Utc::now(),
        }
        .to_json();
        assert_eq!(
            ok["objectRef"],
            json!({"resource": "pods", "subresource": "portforward", "namespace": "default", "name": "web-1"})
        );
        assert_eq!(ok["responseStatus"], json!({"metadata": {}, "code": 201}));
    }

    #[test]
    fn lines_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let audit = Audit::open(&path).unwrap();
        let caller = Caller {
            principal: Principal::Insecure,
            remote: None,
        };
        let action = Action::new(Verb::Delete, "users").name("bob");
        audit.record(&Event {
            caller: &caller,
            method: "/switchyard.v1.Resources/Delete",
            action: &action,
            failure: None,
            received: Utc::now(),
        });
        drop(audit);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let text = loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.ends_with('\n') || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["verb"], "delete");
        assert_eq!(line["objectRef"]["name"], "bob");
    }
}
