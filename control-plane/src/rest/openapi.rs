//! The `/openapi/v3` documents.
//!
//! kubectl reads them for `explain` and to learn that the server validates fields
//! (`kubectl apply` otherwise falls back to client-side validation through
//! `/openapi/v2`, which we do not serve). Schemas come from k8s-openapi so that field
//! descriptions match upstream; paths mirror kube-apiserver's layout because kubectl
//! finds a kind's GVK by looking its resource paths up by string.
//!
//! Everything here is pure and uncached: every call rebuilds the documents (a few
//! milliseconds per group-version), so the caller should build them once per catalog.

use std::collections::BTreeSet;

use k8s_openapi::api::{apps, authentication, authorization, core, discovery};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::schema::Schema;
use serde_json::{json, Map, Value};

use super::catalog::Served;

const REF_PREFIX: &str = "#/components/schemas/";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// The index kubectl fetches first; the hash lets it cache each document on disk for good.
pub fn root(served: &[Served]) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(served) {
        if let Some(doc) = group_version(served, group, version) {
            let key = gv_path(group, version);
            let hash = fnv1a(doc.to_string().as_bytes());
            let url = format!("/openapi/v3/{key}?hash={hash:016X}");
            paths.insert(key, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

/// The document for one group-version, or None when nothing of it is served.
pub fn group_version(served: &[Served], group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&Served> = served
        .iter()
        .filter(|s| s.group == group && s.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    kinds.iter().for_each(|s| resource_paths(s, &mut paths));
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.32.0" },
        "paths": paths,
        "components": { "schemas": schemas(&kinds) },
    }))
}

fn group_versions(served: &[Served]) -> BTreeSet<(&'static str, &'static str)> {
    served.iter().map(|s| (s.group, s.version)).collect()
}

fn gv_path(group: &str, version: &str) -> String {
    match group {
        "" => format!("api/{version}"),
        _ => format!("apis/{group}/{version}"),
    }
}

/// FNV-1a 64: stable across Rust releases, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------
// components.schemas

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The k8s-openapi type behind a served kind; schemars then pulls in all it references.
fn typed_schema(s: &Served) -> Option<SchemaFn> {
    Some(match (s.group, s.version, s.kind) {
        ("", "v1", "Namespace") => SchemaGenerator::subschema_for::<core::v1::Namespace>,
        ("", "v1", "Service") => SchemaGenerator::subschema_for::<core::v1::Service>,
        ("", "v1", "Endpoints") => SchemaGenerator::subschema_for::<core::v1::Endpoints>,
        ("", "v1", "Pod") => SchemaGenerator::subschema_for::<core::v1::Pod>,
        ("", "v1", "Node") => SchemaGenerator::subschema_for::<core::v1::Node>,
        ("", "v1", "Event") => SchemaGenerator::subschema_for::<core::v1::Event>,
        ("apps", "v1", "Deployment") => SchemaGenerator::subschema_for::<apps::v1::Deployment>,
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            SchemaGenerator::subschema_for::<discovery::v1::EndpointSlice>
        }
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => {
            SchemaGenerator::subschema_for::<authentication::v1::SelfSubjectReview>
        }
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => {
            SchemaGenerator::subschema_for::<authorization::v1::SelfSubjectAccessReview>
        }
        _ => return None,
    })
}

/// Kubernetes definition name, e.g. `io.k8s.api.discovery.v1.EndpointSlice`.
pub fn schema_name(s: &Served) -> String {
    let package = match s.group {
        "" => "io.k8s.api.core".to_owned(),
        g if !g.contains('.') => format!("io.k8s.api.{g}"),
        g => match g.strip_suffix(".k8s.io") {
            Some(k8s) => format!("io.k8s.api.{}", k8s.split('.').next().unwrap_or(k8s)),
            None => reverse_domain(g),
        },
    };
    format!("{package}.{}.{}", s.version, s.kind)
}

/// `switchyard.io` becomes `io.switchyard`, as kube-apiserver names CRD schemas.
fn reverse_domain(group: &str) -> String {
    group.rsplit('.').collect::<Vec<_>>().join(".")
}

fn schemas(kinds: &[&Served]) -> Map<String, Value> {
    let mut gen = SchemaSettings::openapi3().into_generator();
    gen.subschema_for::<meta::ObjectMeta>();
    gen.subschema_for::<meta::ListMeta>();
    gen.subschema_for::<meta::Status>();
    gen.subschema_for::<meta::DeleteOptions>();
    gen.subschema_for::<meta::Patch>();
    gen.subschema_for::<meta::WatchEvent<meta::Status>>();
    kinds.iter().filter_map(|s| typed_schema(s)).for_each(|f| {
        f(&mut gen);
    });
    let mut out = definitions(gen);
    for s in kinds {
        let name = schema_name(s);
        let mut schema = match typed_schema(s) {
            Some(_) => out.remove(&name).unwrap_or_else(|| untyped_schema(s)),
            None => untyped_schema(s),
        };
        schema["x-kubernetes-group-version-kind"] = json!([gvk(s, s.kind)]);
        out.insert(name.clone(), schema);
        if s.verbs.contains(&"list") {
            out.insert(format!("{name}List"), list_schema(s, &name));
        }
    }
    for m in PATCH_META {
        let field = out
            .get_mut(m.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(m.property));
        if let Some(field) = field {
            field["x-kubernetes-patch-strategy"] = json!(m.strategy);
            if let Some(key) = m.key {
                field["x-kubernetes-patch-merge-key"] = json!(key);
            }
        }
    }
    out
}

/// How a field merges in a strategic merge patch: Kubernetes' Go types
/// carry it as `patchStrategy`/`patchMergeKey` tags, which k8s-openapi's
/// schemas lack. kubectl apply reads these extensions to compute its
/// patches (without them a list is replaced whole, and every apply of a
/// Service "configures" it), and the server applies patches by them.
struct PatchMeta {
    definition: &'static str,
    property: &'static str,
    key: Option<&'static str>,
    strategy: &'static str,
}

const fn merge(definition: &'static str, property: &'static str, key: &'static str) -> PatchMeta {
    PatchMeta {
        definition,
        property,
        key: Some(key),
        strategy: "merge",
    }
}

#[rustfmt::skip]
const PATCH_META: &[PatchMeta] = &[
    merge("io.k8s.api.core.v1.ServiceSpec", "ports", "port"),
    merge("io.k8s.api.core.v1.PodSpec", "containers", "name"),
    merge("io.k8s.api.core.v1.PodSpec", "initContainers", "name"),
    merge("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "name"),
    PatchMeta { definition: "io.k8s.api.core.v1.PodSpec", property: "volumes", key: Some("name"), strategy: "merge,retainKeys" },
    merge("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "name"),
    merge("io.k8s.api.core.v1.PodSpec", "hostAliases", "ip"),
    merge("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", "topologyKey"),
    merge("io.k8s.api.core.v1.Container", "ports", "containerPort"),
    merge("io.k8s.api.core.v1.Container", "env", "name"),
    merge("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath"),
    merge("io.k8s.api.core.v1.Container", "volumeDevices", "devicePath"),
    merge("io.k8s.api.core.v1.PodStatus", "conditions", "type"),
    merge("io.k8s.api.core.v1.NodeStatus", "conditions", "type"),
    merge("io.k8s.api.core.v1.NodeStatus", "addresses", "type"),
    merge("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "type"),
    PatchMeta { definition: "io.k8s.api.apps.v1.DeploymentSpec", property: "strategy", key: None, strategy: "retainKeys" },
    merge("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "uid"),
    PatchMeta { definition: "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", property: "finalizers", key: None, strategy: "merge" },
];

/// The generator's definitions as JSON, with the openapi3 visitors applied: they turn
/// `$ref` plus description into `allOf` (OpenAPI 3.0 ignores `$ref` siblings).
fn definitions(mut gen: SchemaGenerator) -> Map<String, Value> {
    let mut defs = gen.take_definitions();
    for visitor in gen.visitors_mut() {
        defs.values_mut().for_each(|s| visitor.visit_schema(s));
    }
    defs.into_iter()
        // Serializing a schemars Schema cannot fail: every map key is a string.
        .map(|(name, s)| (name, serde_json::to_value(s).unwrap_or_default()))
        .collect()
}

fn gvk(s: &Served, kind: &str) -> Value {
    json!({ "group": s.group, "version": s.version, "kind": kind })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

fn field(name: &str, description: &str) -> Value {
    json!({ "allOf": [reference(name)], "description": description })
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn typed(kind: &str, description: &str) -> Value {
    json!({ "type": kind, "description": description })
}

fn object(description: &str, properties: Value) -> Value {
    json!({ "type": "object", "description": description, "properties": properties })
}

/// apiVersion and kind, which every object and list carries.
fn type_header(properties: &mut Value) {
    properties["apiVersion"] = string("The versioned schema of this representation of an object.");
    properties["kind"] = string("The REST resource this object represents, in CamelCase.");
}

/// Switchyard's own kinds; anything else without a k8s-openapi type gets an open schema
/// so that explain still names it and validation does not reject its fields.
fn untyped_schema(s: &Served) -> Value {
    let mut schema = match (s.group, s.kind) {
        ("switchyard.io", "User") => user(),
        ("switchyard.io", "BootstrapToken") => bootstrap_token(),
        ("switchyard.io", "ControlPlane") => control_plane(),
        _ => json!({
            "type": "object",
            "description": format!("{} has no published schema.", s.kind),
            "properties": {},
            "x-kubernetes-preserve-unknown-fields": true,
        }),
    };
    type_header(&mut schema["properties"]);
    let metadata = field(&format!("{META}.ObjectMeta"), "Standard object's metadata.");
    schema["properties"]["metadata"] = metadata;
    schema
}

fn user() -> Value {
    object(
        "User is a person or program allowed to call the API with a client certificate.",
        json!({
            "spec": object("The user's permissions.", json!({
                "role": string("What the user may do: \"admin\" (everything) or \"view\" (read only)."),
            })),
            "status": object("State observed by the control plane.", json!({
                "certificate": object("The client certificate last issued to the user.", json!({
                    "serialNumber": string("Serial number of the certificate, in hex."),
                    "notAfter": string("When the certificate expires (RFC 3339)."),
                })),
            })),
        }),
    )
}

fn bootstrap_token() -> Value {
    object(
        "BootstrapToken lets a node agent join the cluster once and obtain its credentials.",
        json!({
            "spec": object("How the token may be used.", json!({
                "nodeName": string("Name of the node this token is for."),
                "expires": string("When the token stops being accepted (RFC 3339)."),
                "reusable": typed("boolean", "Whether the token may be used more than once."),
                "secretHash": string("Hash of the token's secret; the secret itself is never stored."),
            })),
            "status": object("State observed by the control plane.", json!({
                "uses": typed("integer", "How many times the token has been used."),
            })),
        }),
    )
}

fn control_plane() -> Value {
    object(
        "ControlPlane is one instance of the Switchyard control plane.",
        json!({
            "status": object("State reported by the instance.", json!({
                "address": string("Address at which the instance serves the API."),
                "leader": typed("boolean", "Whether this instance currently holds leadership."),
                "revision": typed("integer", "Latest store revision the instance has applied."),
                "agents": typed("integer", "Number of node agents connected to the instance."),
                "started": string("When the instance started (RFC 3339)."),
            })),
        }),
    )
}

fn list_schema(s: &Served, item: &str) -> Value {
    let mut schema = object(
        &format!("{}List is a list of {}.", s.kind, s.kind),
        json!({
            "items": { "type": "array", "description": "List of items.", "items": reference(item) },
            "metadata": field(&format!("{META}.ListMeta"), "Standard list metadata."),
        }),
    );
    schema["required"] = json!(["items"]);
    schema["x-kubernetes-group-version-kind"] = json!([gvk(s, &format!("{}List", s.kind))]);
    type_header(&mut schema["properties"]);
    schema
}

// ---------------------------------------------------------------------------
// paths

/// (verb that enables it, HTTP method, `x-kubernetes-action`, operation-id prefix).
type Op = (&'static str, &'static str, &'static str, &'static str);

const COLLECTION_OPS: &[Op] = &[
    ("list", "get", "list", "list"),
    ("create", "post", "post", "create"),
    (
        "deletecollection",
        "delete",
        "deletecollection",
        "deletecollection",
    ),
];
const ITEM_OPS: &[Op] = &[
    ("get", "get", "get", "read"),
    ("update", "put", "put", "replace"),
    ("patch", "patch", "patch", "patch"),
    ("delete", "delete", "delete", "delete"),
];
const SUBRESOURCE_OPS: &[Op] = &[
    ("get", "get", "get", "read"),
    ("update", "put", "put", "replace"),
    ("patch", "patch", "patch", "patch"),
];
const ALL_NAMESPACES_OPS: &[Op] = &[("list", "get", "list", "list")];

fn resource_paths(s: &Served, out: &mut Map<String, Value>) {
    let prefix = format!("/{}", gv_path(s.group, s.version));
    let ns = if s.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{prefix}{ns}/{}", s.plural);
    let item = format!("{collection}/{{name}}");
    let mut paths = vec![
        (collection, COLLECTION_OPS, String::new()),
        (item.clone(), ITEM_OPS, String::new()),
    ];
    // The object's own status; connect subresources (portforward) are
    // upgrades, which OpenAPI does not describe.
    for sub in s.subresources.iter().filter(|sub| **sub == "status") {
        paths.push((format!("{item}/{sub}"), SUBRESOURCE_OPS, camel(sub)));
    }
    if s.namespaced {
        let all = format!("{prefix}/{}", s.plural);
        paths.push((all, ALL_NAMESPACES_OPS, "ForAllNamespaces".to_owned()));
    }
    for (path, ops, id_suffix) in paths {
        if let Some(item) = path_item(s, &path, ops, &id_suffix) {
            out.insert(path, item);
        }
    }
}

fn path_item(s: &Served, path: &str, ops: &[Op], id_suffix: &str) -> Option<Value> {
    let namespaced = path.contains("{namespace}");
    let mut item: Map<String, Value> = ops
        .iter()
        .filter(|op| s.verbs.contains(&op.0))
        .map(|op| (op.1.to_owned(), operation(s, op, namespaced, id_suffix)))
        .collect();
    if item.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    if path.contains("{name}") {
        params.push(path_param("name", &format!("name of the {}", s.kind)));
    }
    if namespaced {
        params.push(path_param("namespace", "object name and auth scope"));
    }
    params.push(query_param("pretty"));
    item.insert("parameters".to_owned(), Value::Array(params));
    Some(Value::Object(item))
}

/// An operation as kube-apiserver writes it; kubectl keys on the two extensions.
fn operation(s: &Served, op: &Op, namespaced: bool, id_suffix: &str) -> Value {
    let &(_, _, action, id_prefix) = op;
    let response = match action {
        "list" => format!("{}List", schema_name(s)),
        "delete" | "deletecollection" => format!("{META}.Status"),
        _ => schema_name(s),
    };
    let scope = if namespaced { "Namespaced" } else { "" };
    let (group, version) = (group_id(s.group), camel(s.version));
    let id = format!("{id_prefix}{group}{version}{scope}{}{id_suffix}", s.kind);
    let mut operation = json!({
        "tags": [format!("{}_{}", group_tag(s.group), s.version)],
        "operationId": id,
        "parameters": operation_params(action),
        "responses": responses(action, &reference(&response)),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(s, s.kind),
    });
    if let Some(body) = request_body(action, &schema_name(s)) {
        operation["requestBody"] = body;
    }
    operation
}

/// kube-apiserver's operation-id spelling of a group: "Core", "Apps", "Discovery".
fn group_id(group: &str) -> String {
    match group {
        "" => "Core".to_owned(),
        _ => group_tag(group).split('_').map(camel).collect(),
    }
}

fn group_tag(group: &str) -> String {
    let short = group.strip_suffix(".k8s.io").unwrap_or(group);
    match short {
        "" => "core".to_owned(),
        _ => short.replace(['.', '-'], "_"),
    }
}

fn camel(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn request_body(action: &str, kind: &str) -> Option<Value> {
    let (types, schema, required): (&[&str], _, _) = match action {
        "post" | "put" => (&["*/*"], kind.to_owned(), true),
        "patch" => (&PATCH_TYPES, format!("{META}.Patch"), true),
        "delete" | "deletecollection" => (&["*/*"], format!("{META}.DeleteOptions"), false),
        _ => return None,
    };
    let schema = json!({ "schema": reference(&schema) });
    let content: Map<String, Value> = types
        .iter()
        .map(|t| (t.to_string(), schema.clone()))
        .collect();
    Some(json!({ "content": content, "required": required }))
}

fn responses(action: &str, schema: &Value) -> Value {
    let codes: &[&str] = match action {
        "post" => &["200", "201", "202"],
        "put" | "patch" => &["200", "201"],
        "delete" => &["200", "202"],
        _ => &["200"],
    };
    let content = json!({
        "application/json": { "schema": schema },
        "application/yaml": { "schema": schema },
    });
    let ok = json!({ "description": "OK", "content": content });
    let mut out: Map<String, Value> = codes.iter().map(|c| (c.to_string(), ok.clone())).collect();
    out.insert("401".to_owned(), json!({ "description": "Unauthorized" }));
    Value::Object(out)
}

/// name, type, description: one query parameter a line.
const QUERY_PARAMS: &str = "\
pretty string If 'true', then the output is pretty printed.
dryRun string When present, indicates that modifications should not be persisted (All).
fieldManager string Name of the actor or entity that is making these changes.
fieldValidation string How to treat unknown or duplicate fields: Ignore, Warn or Strict.
force boolean Force Apply requests, taking over fields that other managers own.
gracePeriodSeconds integer The duration in seconds before the object should be deleted.
propagationPolicy string Whether and how dependents are garbage collected.
allowWatchBookmarks boolean Requests watch events with type BOOKMARK.
continue string The continue token returned by a previous, limited list.
fieldSelector string Restricts the list of returned objects by their fields.
labelSelector string Restricts the list of returned objects by their labels.
limit integer Maximum number of objects to return for a list call.
resourceVersion string Constrains which resource versions the request may be served from.
timeoutSeconds integer Timeout for the list/watch call.
watch boolean Watch for changes and return them as a stream of events.";

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "timeoutSeconds",
    "watch",
];
const DELETE_PARAMS: &[&str] = &["dryRun", "gracePeriodSeconds", "propagationPolicy"];

/// Inline and by name, because kubectl's field-validation probe reads the PATCH
/// operation's own parameter list for `fieldValidation`.
fn operation_params(action: &str) -> Value {
    let names: Vec<&str> = match action {
        "list" => LIST_PARAMS.to_vec(),
        "post" | "put" => vec!["dryRun", "fieldManager", "fieldValidation"],
        "patch" => vec!["dryRun", "fieldManager", "fieldValidation", "force"],
        "delete" => DELETE_PARAMS.to_vec(),
        "deletecollection" => [DELETE_PARAMS, LIST_PARAMS].concat(),
        _ => Vec::new(),
    };
    names.into_iter().map(query_param).collect()
}

fn query_param(name: &str) -> Value {
    let line = QUERY_PARAMS
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '));
    let (kind, description) = line
        .and_then(|l| l.split_once(' '))
        .unwrap_or(("string", ""));
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": kind },
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": { "type": "string" },
    })
}

#[cfg(test)]
mod tests {
    use super::super::catalog::SERVED;
    use super::*;

    fn doc(group: &str, version: &str) -> Value {
        group_version(SERVED, group, version).expect("served group-version")
    }

    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        let target = schema["$ref"]
            .as_str()
            .or_else(|| schema["allOf"][0]["$ref"].as_str());
        match target.and_then(|r| r.strip_prefix(REF_PREFIX)) {
            Some(name) => &doc["components"]["schemas"][name],
            None => schema,
        }
    }

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| match (k.as_str(), v) {
                ("$ref", Value::String(r)) => out.push(r),
                _ => refs(v, out),
            }),
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn root_lists_every_group_version() {
        let root = root(SERVED);
        let keys: Vec<&String> = root["paths"].as_object().expect("paths").keys().collect();
        assert_eq!(
            keys,
            [
                "api/v1",
                "apis/apps/v1",
                "apis/authentication.k8s.io/v1",
                "apis/authorization.k8s.io/v1",
                "apis/discovery.k8s.io/v1",
                "apis/switchyard.io/v1",
            ]
        );
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str();
        assert!(url.is_some_and(|u| u.starts_with("/openapi/v3/apis/apps/v1?hash=")));
        assert_eq!(root, super::root(SERVED), "hash must be stable");
    }

    #[test]
    fn service_schema_resolves_to_described_port_fields() {
        let doc = doc("", "v1");
        let service = &doc["components"]["schemas"]["io.k8s.api.core.v1.Service"];
        assert_eq!(
            service["x-kubernetes-group-version-kind"],
            json!([{ "group": "", "kind": "Service", "version": "v1" }])
        );
        let spec = resolve(&doc, &service["properties"]["spec"]);
        let ports = &spec["properties"]["ports"];
        assert!(ports["description"].is_string());
        let port = resolve(&doc, &ports["items"]);
        assert!(port["description"].as_str().is_some_and(|d| !d.is_empty()));
        for field in [
            "name",
            "port",
            "targetPort",
            "nodePort",
            "protocol",
            "appProtocol",
        ] {
            assert!(
                port["properties"][field]["description"].is_string(),
                "{field}"
            );
        }
    }

    #[test]
    fn every_ref_resolves_within_its_document() {
        for (group, version) in group_versions(SERVED) {
            let doc = doc(group, version);
            let mut found = Vec::new();
            refs(&doc, &mut found);
            assert!(!found.is_empty());
            for r in found {
                let name = r.strip_prefix(REF_PREFIX).unwrap_or(r);
                assert!(
                    doc["components"]["schemas"][name].is_object(),
                    "{group}/{version}: {r}"
                );
            }
        }
    }

    #[test]
    fn every_kind_has_its_schema_and_gvk() {
        for s in SERVED {
            let doc = doc(s.group, s.version);
            let schema = &doc["components"]["schemas"][schema_name(s)];
            assert_eq!(schema["x-kubernetes-group-version-kind"][0], gvk(s, s.kind));
            assert!(
                schema.get("x-kubernetes-preserve-unknown-fields").is_none(),
                "{}",
                s.kind
            );
            assert!(schema["properties"]["metadata"].is_object(), "{}", s.kind);
        }
    }

    #[test]
    fn service_patch_advertises_field_validation() {
        let doc = doc("", "v1");
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({ "group": "", "version": "v1", "kind": "Service" })
        );
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params = patch["parameters"].as_array().expect("parameters");
        assert!(params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    }

    #[test]
    fn operations_follow_verbs_and_carry_extensions() {
        let doc = doc("switchyard.io", "v1");
        let paths = doc["paths"].as_object().expect("paths");
        let users = &paths["/apis/switchyard.io/v1/users/{name}"];
        assert!(users["get"].is_object() && users["delete"].is_object());
        assert!(users.get("patch").is_none() && users.get("put").is_none());
        assert!(paths.get("/apis/switchyard.io/v1/controlplanes").is_some());
        for item in paths.values() {
            for (method, op) in item.as_object().expect("path item") {
                if method != "parameters" {
                    assert!(op["x-kubernetes-group-version-kind"].is_object());
                    assert!(op["x-kubernetes-action"].is_string());
                }
            }
        }
        let core = super::group_version(SERVED, "", "v1").expect("core");
        assert!(core["paths"]["/api/v1/services"]["get"].is_object());
        assert!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/status"]["patch"].is_object()
        );
        assert!(core["paths"]["/api/v1/namespaces/{name}"]["delete"].is_object());
    }

    #[test]
    fn schema_names_match_k8s_openapi() {
        for s in SERVED {
            let Some(f) = typed_schema(s) else { continue };
            let mut gen = SchemaSettings::openapi3().into_generator();
            let reference = serde_json::to_value(f(&mut gen)).expect("schema");
            assert_eq!(reference["$ref"], format!("{REF_PREFIX}{}", schema_name(s)));
        }
    }

    #[test]
    fn unknown_group_version_has_no_document() {
        assert!(group_version(SERVED, "batch", "v1").is_none());
        assert!(group_version(SERVED, "apps", "v2").is_none());
    }
}
