//! `kubectl auth whoami` (SelfSubjectReview) and `kubectl auth can-i`
//! (SelfSubjectAccessReview), answered from the caller's principal and the
//! authorization table every request passes.

use axum::body::Body;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{response, Call, Rest};
use crate::auth::policy::{self, Action, Verb};

/// `POST …/selfsubjectreviews`: who the caller is.
pub fn whoami(call: &Call) -> Response<Body> {
    if call.verb != Method::POST {
        return response::method_not_allowed("selfsubjectreviews can only be created".to_string());
    }
    let principal = &call.caller.principal;
    let mut groups = principal.groups();
    if principal.is_authenticated() {
        groups.push("system:authenticated".to_string());
    }
    let review = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "creationTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true) },
        "status": { "userInfo": { "username": principal.username(), "groups": groups } },
    });
    response::json(StatusCode::CREATED, &review)
}

impl Rest {
    /// `POST …/selfsubjectaccessreviews`: whether the caller may do what the
    /// review's `spec.resourceAttributes` describe.
    pub(super) fn can_i(&self, call: &Call) -> Response<Body> {
        if call.verb != Method::POST {
            return response::method_not_allowed(
                "selfsubjectaccessreviews can only be created".to_string(),
            );
        }
        let review = match call.json_body() {
            Ok(review) => review,
            Err(answer) => return answer,
        };
        let answer = decide(call, &review["spec"]);
        let mut out = review;
        out["status"] = answer;
        if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("creationTimestamp");
        }
        response::json(StatusCode::CREATED, &out)
    }
}

fn decide(call: &Call, spec: &Value) -> Value {
    let attrs = &spec["resourceAttributes"];
    if attrs.is_null() {
        return json!({ "allowed": false, "reason": "Switchyard authorizes resources only, not non-resource URLs" });
    }
    let text = |field: &str| attrs.get(field).and_then(Value::as_str).unwrap_or_default();
    let Some(verb) = verb(text("verb")) else {
        return json!({ "allowed": false, "reason": format!("unknown verb {:?}", text("verb")) });
    };
    let resource = match text("subresource") {
        "" => text("resource").to_string(),
        sub => format!("{}/{sub}", text("resource")),
    };
    let mut action = Action::new(verb, &resource).name(text("name"));
    action.namespace = Some(text("namespace")).filter(|ns| !ns.is_empty());
    // A denial carries no reason, as RBAC's: kubectl then prints a bare "no".
    json!({ "allowed": policy::authorize(&call.caller.principal, &action).is_ok() })
}

fn verb(name: &str) -> Option<Verb> {
    Some(match name {
        "get" => Verb::Get,
        "list" => Verb::List,
        "watch" => Verb::Watch,
        "create" => Verb::Create,
        "patch" => Verb::Patch,
        "update" => Verb::Update,
        "delete" => Verb::Delete,
        _ => return None,
    })
}
