//! Stored kinds over REST: get, list, watch, create (POST), update (PUT),
//! patch and delete, for objects and their `/status`.

use axum::body::Body;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};
use switchyard_api::resources::{Kind, Object};

use super::decode::{decode, Decoded};
use super::list::{decode_token, encode_token, FieldSelector};
use super::openapi;
use super::patch::{self, PatchType, Schemas};
use super::path::Target;
use super::table::{self, columns_of, row_of};
use super::{response, watch, Call, Rest};
use crate::api::Scope;
use crate::auth::policy::{self, Action};
use crate::auth::Verb;
use crate::registry::{Outcome, PageRequest, Write};
use crate::selector::Selector;

/// How often a patch that lost a race to another write is tried again
/// against the newer object.
const PATCH_TRIES: usize = 5;

impl Rest {
    pub(super) async fn stored(&self, call: &Call, kind: Kind, target: &Target) -> Response<Body> {
        let name = target.name.as_deref();
        let status = target.subresource.as_deref() == Some("status");
        if !target
            .served
            .serves(kube_verb(&call.verb, name.is_some(), call.query.watch))
        {
            return response::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({} {})",
                call.verb, target.served.plural
            ));
        }
        match (&call.verb, name) {
            (&Method::GET, None) if call.query.watch => self.watch(call, kind, target).await,
            (&Method::GET, None) => self.list(call, kind, target).await,
            (&Method::GET, Some(name)) => self.get(call, kind, target, name).await,
            (&Method::POST, None) if !status => self.create(call, kind, target).await,
            (&Method::PUT, Some(name)) => self.update(call, kind, target, name, status).await,
            (&Method::PATCH, Some(name)) => self.patch(call, kind, target, name, status).await,
            (&Method::DELETE, Some(name)) if !status => self.delete(call, kind, target, name).await,
            (verb, _) => response::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({verb} {})",
                target.served.plural
            )),
        }
    }

    async fn get(&self, call: &Call, kind: Kind, target: &Target, name: &str) -> Response<Body> {
        let ns = target.namespace.as_deref().unwrap_or_default();
        match self
            .api
            .get_object(&call.caller, &call.method, kind, ns, name)
            .await
        {
            Ok(obj) if call.table => {
                let rows = vec![row_of(&obj, chrono::Utc::now())];
                let meta = json!({ "resourceVersion": obj.meta().resource_version });
                let t = table::table(&columns_of(kind), rows, meta, call.include);
                response::json(StatusCode::OK, &t)
            }
            Ok(obj) => response::json(StatusCode::OK, &obj.with_type_meta().to_value()),
            Err(e) => response::error(&e),
        }
    }

    async fn list(&self, call: &Call, kind: Kind, target: &Target) -> Response<Body> {
        let scope = match scope(call, kind, target) {
            Ok(scope) => scope,
            Err(answer) => return answer,
        };
        let fields = match FieldSelector::parse(kind.as_str(), &call.query.field_selector) {
            Ok(fields) => fields,
            Err(e) => return response::bad_request(e),
        };
        let after = match call
            .query
            .continue_token
            .as_deref()
            .map(decode_token)
            .transpose()
        {
            Ok(after) => after,
            Err(e) => return response::status(&gone(e.to_string())),
        };
        let request = PageRequest {
            after: after.as_deref(),
            limit: call.query.limit,
        };
        let selected = |o: &Object| fields.is_empty() || fields.matches(&o.to_value());
        let chunk = match self
            .api
            .list_page(&call.caller, &call.method, kind, scope, &request, &selected)
            .await
        {
            Ok(chunk) => chunk,
            Err(e) => return response::error(&e),
        };
        let revision = chunk.revision;
        let token = chunk
            .last
            .as_deref()
            .map(|last| encode_token(revision, last));
        let remaining = token.is_some().then_some(chunk.remaining);
        let meta = list_meta(revision, token, remaining);
        if call.table {
            let now = chrono::Utc::now();
            let rows = chunk.items.iter().map(|o| row_of(o, now)).collect();
            let t = table::table(&columns_of(kind), rows, meta, call.include);
            return response::json(StatusCode::OK, &t);
        }
        let items: Vec<Value> = chunk
            .items
            .into_iter()
            .map(|o| o.with_type_meta().to_value())
            .collect();
        response::json(StatusCode::OK, &list_of(target, meta, items))
    }

    async fn watch(&self, call: &Call, kind: Kind, target: &Target) -> Response<Body> {
        let scope = match scope(call, kind, target) {
            Ok(scope) => scope,
            Err(answer) => return answer,
        };
        let fields = match FieldSelector::parse(kind.as_str(), &call.query.field_selector) {
            Ok(fields) => fields,
            Err(e) => return response::bad_request(e),
        };
        let after = match watch::start_revision(call.query.resource_version.as_deref()) {
            Ok(after) => after,
            Err(e) => return response::bad_request(e),
        };
        match self
            .api
            .watch_objects(&call.caller, &call.method, kind, scope, after)
            .await
        {
            Ok(events) => watch::stream(
                call,
                target.served,
                events,
                fields,
                self.registry.clone(),
                self.stopping.clone(),
            ),
            // A watch from a compacted revision is refused inside the
            // stream, as kube-apiserver refuses it.
            Err(e) if e.code() == tonic::Code::OutOfRange => watch::expired(&e),
            Err(e) => response::error(&e),
        }
    }

    async fn create(&self, call: &Call, kind: Kind, target: &Target) -> Response<Body> {
        if let Err(refused) = self.may(call, Verb::Create, kind, target, "") {
            return refused;
        }
        let decoded = match self.body_object(call, kind, target, None) {
            Ok(decoded) => decoded,
            Err(answer) => return answer,
        };
        let write = Write {
            create_only: true,
            dry_run: call.query.dry_run,
            ..Write::default()
        };
        self.write(call, Verb::Create, decoded, &write).await
    }

    async fn update(
        &self,
        call: &Call,
        kind: Kind,
        target: &Target,
        name: &str,
        status: bool,
    ) -> Response<Body> {
        if let Err(refused) = self.may(call, Verb::Update, kind, target, name) {
            return refused;
        }
        let mut decoded = match self.body_object(call, kind, target, Some(name)) {
            Ok(decoded) => decoded,
            Err(answer) => return answer,
        };
        if status {
            let ns = target.namespace.as_deref().unwrap_or_default();
            match self.registry.get(kind, ns, name) {
                Ok(current) => decoded.object = with_status_of(current, &decoded.object),
                Err(e) => return response::error(&crate::status::to_status(e)),
            }
        }
        let write = Write {
            update_only: true,
            dry_run: call.query.dry_run,
            precondition: decoded.object.meta().resource_version.clone(),
            ..Write::default()
        };
        self.write(call, Verb::Update, decoded, &write).await
    }

    async fn patch(
        &self,
        call: &Call,
        kind: Kind,
        target: &Target,
        name: &str,
        status: bool,
    ) -> Response<Body> {
        let patch_type = match PatchType::of(&call.content_type) {
            Some(PatchType::Apply) => {
                return response::unsupported_media_type(
                    "server-side apply (application/apply-patch+yaml) is not supported by Switchyard; use client-side apply (kubectl apply without --server-side)".to_string(),
                )
            }
            Some(t) => t,
            None => {
                return response::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {:?})",
                    call.content_type
                ))
            }
        };
        let ns = target.namespace.as_deref().unwrap_or_default();
        if let Err(refused) = self.may(call, Verb::Patch, kind, target, name) {
            return refused;
        }
        let no_schemas = serde_json::Map::new();
        let root = openapi::schema_name(target.served);
        let schemas = Schemas {
            definitions: self.patch_schemas(target.served).unwrap_or(&no_schemas),
            root: &root,
        };
        for _ in 0..PATCH_TRIES {
            let current = match self.registry.get(kind, ns, name) {
                Ok(current) => current,
                Err(e) => return response::error(&crate::status::to_status(e)),
            };
            let read_at = current.meta().resource_version.clone();
            let value = current.clone().with_type_meta().to_value();
            let patched = match patch::apply(&value, &call.body, patch_type, schemas) {
                Ok(patched) => patched,
                Err(e) => return response::bad_request(e.to_string()),
            };
            let mut decoded = match self.decoded(call, kind, target, Some(name), patched) {
                Ok(decoded) => decoded,
                Err(answer) => return answer,
            };
            if status {
                decoded.object = with_status_of(current, &decoded.object);
            }
            // A patch that names a resourceVersion asks for exactly that one.
            let own_precondition = decoded.object.meta().resource_version == read_at;
            let write = Write {
                update_only: true,
                dry_run: call.query.dry_run,
                precondition: decoded.object.meta().resource_version.clone(),
                ..Write::default()
            };
            let answer = self
                .api
                .apply_object(
                    &call.caller,
                    &call.method,
                    Some(Verb::Patch),
                    decoded.object,
                    &write,
                )
                .await;
            match answer {
                Err(e) if e.code() == tonic::Code::Aborted && own_precondition => continue,
                answer => return written(answer, &decoded.warnings),
            }
        }
        response::status(&crate::status::failure(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": the object kept changing while the patch was applied", kind.plural()),
            None,
        ))
    }

    async fn delete(&self, call: &Call, kind: Kind, target: &Target, name: &str) -> Response<Body> {
        let ns = target.namespace.as_deref().unwrap_or_default();
        let dry_run = call.query.dry_run || delete_options_dry_run(&call.body);
        match self
            .api
            .delete_object(&call.caller, &call.method, kind, ns, name, dry_run)
            .await
        {
            // kube-apiserver answers with the object for Pods and Services
            // (client libraries decode it as one), with a Status for the rest.
            Ok(obj) if matches!(kind, Kind::Pod | Kind::Service) => {
                response::json(StatusCode::OK, &obj.with_type_meta().to_value())
            }
            Ok(obj) => response::json(StatusCode::OK, &deleted(kind, &obj)),
            Err(e) => response::error(&e),
        }
    }

    async fn write(
        &self,
        call: &Call,
        verb: Verb,
        decoded: Decoded,
        write: &Write,
    ) -> Response<Body> {
        let answer = self
            .api
            .apply_object(
                &call.caller,
                &call.method,
                Some(verb),
                decoded.object,
                write,
            )
            .await;
        written(answer, &decoded.warnings)
    }

    /// Refuses (and audits) a request the caller may not make before its
    /// body is read or anything is looked up for it, as kube-apiserver
    /// authorizes before it decodes: a refusal never tells what exists.
    /// Nodes are judged on the pod they send (NodeRestriction), so only
    /// the write itself can refuse them.
    fn may(
        &self,
        call: &Call,
        verb: Verb,
        kind: Kind,
        target: &Target,
        name: &str,
    ) -> Result<(), Response<Body>> {
        if call.caller.principal.node().is_some() {
            return Ok(());
        }
        let mut action = Action::new(verb, kind.plural()).name(name);
        action.namespace = target.namespace.as_deref();
        match policy::authorize(&call.caller.principal, &action) {
            Ok(()) => Ok(()),
            Err(_) => Err(
                match self.api.authorize(&call.caller, &call.method, action) {
                    Err(e) => response::error(&e),
                    Ok(()) => response::internal("authorization changed its mind".to_string()),
                },
            ),
        }
    }

    /// The object a POST or PUT body (JSON, or kubectl's protobuf) holds.
    fn body_object(
        &self,
        call: &Call,
        kind: Kind,
        target: &Target,
        name: Option<&str>,
    ) -> Result<Decoded, Response<Body>> {
        let value = call.json_body()?;
        self.decoded(call, kind, target, name, value)
    }

    /// Decodes `value`, whose namespace and name must be the URL's.
    fn decoded(
        &self,
        call: &Call,
        kind: Kind,
        target: &Target,
        name: Option<&str>,
        mut value: Value,
    ) -> Result<Decoded, Response<Body>> {
        place(&mut value, kind, target, name)?;
        decode(kind, value, call.query.field_validation)
            .map_err(|e| response::bad_request(e.to_string()))
    }
}

/// The Kubernetes verb an HTTP request is.
fn kube_verb(method: &Method, named: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// Fills in the URL's namespace (and a generated name), and refuses a body
/// whose namespace or name differ from the URL's.
fn place(
    value: &mut Value,
    kind: Kind,
    target: &Target,
    name: Option<&str>,
) -> Result<(), Response<Body>> {
    let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(response::bad_request(format!("{kind} has no metadata")));
    };
    if let Some(ns) = target.namespace.as_deref() {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != ns => {
                return Err(response::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request".to_string(),
                ))
            }
            _ => {
                meta.insert("namespace".to_string(), Value::String(ns.to_string()));
            }
        }
    }
    let given = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if given.is_empty() {
        if let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|_| name.is_none())
        {
            let generated = format!("{prefix}{}", random_suffix());
            meta.insert("name".to_string(), Value::String(generated));
            return Ok(());
        }
    }
    match name {
        Some(url) if given.is_empty() => {
            meta.insert("name".to_string(), Value::String(url.to_string()));
        }
        Some(url) if given != url => {
            return Err(response::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({url})"
            )))
        }
        _ => {}
    }
    Ok(())
}

/// Five characters from Kubernetes' alphabet for generated names (no
/// vowels, no look-alikes).
fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn written(
    answer: Result<(Object, Outcome), tonic::Status>,
    warnings: &[String],
) -> Response<Body> {
    let response = match answer {
        Ok((obj, outcome)) => {
            let code = match outcome {
                Outcome::Created => StatusCode::CREATED,
                Outcome::Configured | Outcome::Unchanged => StatusCode::OK,
            };
            response::json(code, &obj.with_type_meta().to_value())
        }
        Err(e) => response::error(&e),
    };
    response::warn(response, warnings)
}

/// `current` with the status of `sent`: a `/status` write changes nothing else.
fn with_status_of(current: Object, sent: &Object) -> Object {
    let mut value = current.with_type_meta().to_value();
    value["status"] = sent
        .to_value()
        .get("status")
        .cloned()
        .unwrap_or(Value::Null);
    let kind = sent.kind();
    Object::from_value(kind, value).unwrap_or_else(|_| sent.clone())
}

fn scope(call: &Call, kind: Kind, target: &Target) -> Result<Scope, Response<Body>> {
    let selector = Selector::parse(&call.query.label_selector)
        .map_err(|e| response::bad_request(format!("unable to parse requirement: {e}")))?;
    let namespace = target.namespace.as_deref();
    Ok(Scope::new(
        kind,
        namespace.unwrap_or_default(),
        namespace.is_none(),
        selector,
    ))
}

pub(super) fn list_meta(
    revision: u64,
    continue_token: Option<String>,
    remaining: Option<usize>,
) -> Value {
    let mut meta = json!({ "resourceVersion": revision.to_string() });
    if let Some(token) = continue_token {
        meta["continue"] = Value::String(token);
    }
    if let Some(remaining) = remaining {
        meta["remainingItemCount"] = json!(remaining);
    }
    meta
}

/// `{"kind": "ServiceList", …}`.
pub(super) fn list_of(target: &Target, metadata: Value, items: Vec<Value>) -> Value {
    json!({
        "kind": format!("{}List", target.served.kind),
        "apiVersion": target.served.group_version(),
        "metadata": metadata,
        "items": items,
    })
}

/// What a DELETE of a kind without graceful deletion answers.
fn deleted(kind: Kind, obj: &Object) -> Value {
    let group = kind.api_version().rsplit_once('/').map_or("", |(g, _)| g);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": obj.name(),
            "group": group,
            "kind": kind.plural(),
            "uid": obj.meta().uid,
        }
    })
}

/// A continue token from another server or an old format.
fn gone(message: String) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
    crate::status::failure(StatusCode::GONE, "Expired", message, None)
}

/// DeleteOptions in a DELETE body may ask for a dry run too.
fn delete_options_dry_run(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("dryRun").cloned())
        .and_then(|d| d.as_array().cloned())
        .is_some_and(|d| d.iter().any(|v| v == "All"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::path;

    #[test]
    fn bodies_take_the_urls_namespace_and_may_not_contradict_it() {
        let target = path::parse("/api/v1/namespaces/shop/services").unwrap();
        let mut v = json!({"metadata": {"name": "web"}});
        place(&mut v, Kind::Service, &target, None).unwrap();
        assert_eq!(v["metadata"]["namespace"], "shop");
        let mut other = json!({"metadata": {"name": "web", "namespace": "default"}});
        assert!(place(&mut other, Kind::Service, &target, None).is_err());
        let item = path::parse("/api/v1/namespaces/shop/services/web").unwrap();
        let mut renamed = json!({"metadata": {"name": "api"}});
        assert!(place(&mut renamed, Kind::Service, &item, Some("web")).is_err());
    }

    #[test]
    fn generated_names_get_five_characters() {
        let target = path::parse("/api/v1/namespaces/shop/services").unwrap();
        let mut v = json!({"metadata": {"generateName": "web-"}});
        place(&mut v, Kind::Service, &target, None).unwrap();
        let name = v["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    }

    #[test]
    fn delete_options_can_ask_for_a_dry_run() {
        assert!(delete_options_dry_run(
            br#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}"#
        ));
        assert!(!delete_options_dry_run(
            br#"{"propagationPolicy":"Background"}"#
        ));
        assert!(!delete_options_dry_run(b""));
    }
}
