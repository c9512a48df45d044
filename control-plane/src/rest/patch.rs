//! PATCH bodies: RFC 6902 JSON patch and RFC 7386 merge patch (the
//! `json-patch` crate), and Kubernetes' strategic merge patch, which is a
//! merge patch whose lists of objects merge element by element on a key
//! (`spec.ports` on `port`) and which carries directives (`$patch`,
//! `$setElementOrder/…`, `$retainKeys`, `$deleteFromPrimitiveList/…`).
//! `kubectl apply`, `label`, `annotate` and `edit` send strategic merges.

use serde_json::{Map, Value};

/// The patch a Content-Type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    /// Server-side apply, which Switchyard does not do.
    Apply,
}

impl PatchType {
    pub fn of(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Why a patch does not apply (400 BadRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// How each field of an object merges, read from the OpenAPI schemas of
/// its group-version (`x-kubernetes-patch-merge-key` and
/// `x-kubernetes-patch-strategy`, the extensions kubectl computes its
/// patches from), so the server merges exactly as the client expects.
#[derive(Clone, Copy)]
pub struct Schemas<'a> {
    pub definitions: &'a Map<String, Value>,
    /// The definition of the object's kind.
    pub root: &'a str,
}

impl<'a> Schemas<'a> {
    fn root(&self) -> Option<&'a Value> {
        self.definitions.get(self.root)
    }

    /// The schema a field's schema stands for (`$ref`, or the `allOf`
    /// wrapping OpenAPI 3 needs for a described reference).
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let reference = schema
            .get("$ref")
            .or_else(|| {
                schema
                    .get("allOf")
                    .and_then(|all| all.get(0))
                    .and_then(|r| r.get("$ref"))
            })
            .and_then(Value::as_str);
        match reference.and_then(|r| r.rsplit('/').next()) {
            Some(name) => self.definitions.get(name).unwrap_or(schema),
            None => schema,
        }
    }

    /// A property's own schema (carrying the patch extensions).
    fn property(&self, object: Option<&'a Value>, name: &str) -> Option<&'a Value> {
        object
            .map(|o| self.resolve(o))
            .and_then(|o| o.get("properties"))
            .and_then(|p| p.get(name))
    }

    /// The schema of a list's items.
    fn items(&self, list: Option<&'a Value>) -> Option<&'a Value> {
        list.map(|l| self.resolve(l))
            .and_then(|l| l.get("items"))
            .map(|i| self.resolve(i))
    }
}

fn merge_key(field: Option<&Value>) -> Option<&str> {
    field
        .and_then(|f| f.get("x-kubernetes-patch-merge-key"))
        .and_then(Value::as_str)
}

fn merges(field: Option<&Value>) -> bool {
    field
        .and_then(|f| f.get("x-kubernetes-patch-strategy"))
        .and_then(Value::as_str)
        .is_some_and(|s| s.split(',').any(|p| p == "merge"))
}

/// `current` with `body` applied.
pub fn apply(
    current: &Value,
    body: &[u8],
    patch_type: PatchType,
    schemas: Schemas<'_>,
) -> Result<Value, PatchError> {
    let mut doc = current.clone();
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| PatchError(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| PatchError(e.to_string()))?;
        }
        PatchType::Merge => json_patch::merge(&mut doc, &parse(body)?),
        PatchType::StrategicMerge => {
            let patch = parse(body)?;
            if !patch.is_object() {
                return Err(PatchError(
                    "a strategic merge patch must be an object".into(),
                ));
            }
            merge_object(&mut doc, &patch, schemas, schemas.root());
        }
        PatchType::Apply => {
            return Err(PatchError(
                "server-side apply is not supported; use client-side `kubectl apply`".into(),
            ))
        }
    }
    Ok(doc)
}

fn parse(body: &[u8]) -> Result<Value, PatchError> {
    serde_json::from_slice(body).map_err(|e| PatchError(format!("error decoding patch: {e}")))
}

/// Merges `patch` into `target`, whose schema is `schema`.
fn merge_object<'a>(
    target: &mut Value,
    patch: &Value,
    schemas: Schemas<'a>,
    schema: Option<&'a Value>,
) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(without_directives(patch));
            return;
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(fields) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(gone)) =
                (fields.get_mut(field), value.as_array())
            {
                items.retain(|v| !gone.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            fields.remove(key);
            continue;
        }
        let field = schemas.property(schema, key);
        let slot = fields.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(_) => {
                merge_object(slot, value, schemas, field.map(|f| schemas.resolve(f)))
            }
            Value::Array(items) => merge_list(slot, items, schemas, field),
            _ => *slot = value.clone(),
        }
    }
    for (key, order) in patch {
        if let (Some(field), Some(order)) =
            (key.strip_prefix("$setElementOrder/"), order.as_array())
        {
            if let Some(Value::Array(items)) = fields.get_mut(field) {
                reorder(items, order, merge_key(schemas.property(schema, field)));
            }
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        fields.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
}

fn without_directives(patch: &Map<String, Value>) -> Map<String, Value> {
    patch
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Merges a list: element by element on the field's merge key, as a set
/// for a merged list of scalars, else replaced whole.
fn merge_list<'a>(
    target: &mut Value,
    items: &[Value],
    schemas: Schemas<'a>,
    field: Option<&'a Value>,
) {
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace || !merges(field) || !target.is_array() {
        let kept = items.iter().filter(|i| i.get("$patch").is_none()).cloned();
        *target = Value::Array(kept.collect());
        return;
    }
    let Some(list) = target.as_array_mut() else {
        return;
    };
    let Some(key) = merge_key(field) else {
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
        return;
    };
    let item_schema = schemas.items(field);
    for item in items {
        let position = list.iter().position(|e| same_key(e, item, key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => merge_object(&mut list[i], item, schemas, item_schema),
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                merge_object(&mut fresh, item, schemas, item_schema);
                list.push(fresh);
            }
        }
    }
}

fn same_key(a: &Value, b: &Value, key: &str) -> bool {
    matches!((a.get(key), b.get(key)), (Some(x), Some(y)) if x == y)
}

/// Orders `items` as `order` lists them; the rest keep their places after.
fn reorder(items: &mut [Value], order: &[Value], key: Option<&str>) {
    let rank = |item: &Value| {
        order
            .iter()
            .position(|o| match key {
                Some(key) => same_key(o, item, key),
                None => o == item,
            })
            .unwrap_or(order.len())
    };
    items.sort_by_key(|item| rank(item));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 5000},
                {"name": "https", "port": 443, "targetPort": 5443}
            ], "selector": {"app": "web"}}
        })
    }

    /// The slice of a Service's schema the tests merge through.
    fn definitions() -> Map<String, Value> {
        let defs = json!({
            "Service": {"properties": {
                "metadata": {"allOf": [{"$ref": "#/components/schemas/ObjectMeta"}]},
                "spec": {"allOf": [{"$ref": "#/components/schemas/ServiceSpec"}], "description": "spec"}
            }},
            "ObjectMeta": {"properties": {
                "labels": {"type": "object"},
                "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-patch-strategy": "merge"}
            }},
            "ServiceSpec": {"properties": {
                "ports": {"type": "array", "items": {"$ref": "#/components/schemas/ServicePort"},
                    "x-kubernetes-patch-merge-key": "port", "x-kubernetes-patch-strategy": "merge"},
                "externalIPs": {"type": "array", "items": {"type": "string"}},
                "selector": {"type": "object"}
            }},
            "ServicePort": {"properties": {"port": {"type": "integer"}}}
        });
        defs.as_object().unwrap().clone()
    }

    fn patched(current: &Value, body: &[u8], patch_type: PatchType) -> Result<Value, PatchError> {
        let defs = definitions();
        let schemas = Schemas {
            definitions: &defs,
            root: "Service",
        };
        apply(current, body, patch_type, schemas)
    }

    fn strategic(current: &Value, patch: Value) -> Value {
        patched(
            current,
            patch.to_string().as_bytes(),
            PatchType::StrategicMerge,
        )
        .unwrap()
    }

    #[test]
    fn scalar_lists_that_merge_are_sets() {
        let current = json!({"metadata": {"finalizers": ["a"]}});
        let out = strategic(&current, json!({"metadata": {"finalizers": ["b", "a"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
    }

    #[test]
    fn ports_merge_on_port() {
        let out = strategic(
            &svc(),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([
                {"name": "http", "port": 80, "targetPort": 5000},
                {"name": "https", "port": 443, "targetPort": 8443}
            ])
        );
    }

    /// What `kubectl apply` sends after one port's target changed and
    /// another was removed from the manifest.
    #[test]
    fn kubectl_apply_directives() {
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 443}, {"port": 80}],
            "ports": [{"port": 80, "targetPort": 5001}, {"$patch": "delete", "port": 8080}]
        }});
        let out = strategic(&svc(), patch);
        assert_eq!(
            out["spec"]["ports"],
            json!([
                {"name": "https", "port": 443, "targetPort": 5443},
                {"name": "http", "port": 80, "targetPort": 5001}
            ])
        );
        let deleted = strategic(
            &svc(),
            json!({"spec": {"ports": [{"$patch": "delete", "port": 80}]}}),
        );
        assert_eq!(deleted["spec"]["ports"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn nulls_remove_and_maps_merge() {
        let out = strategic(
            &svc(),
            json!({"metadata": {"labels": {"app": null, "tier": "fe"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"tier": "fe"}));
        let replaced = strategic(
            &svc(),
            json!({"spec": {"selector": {"$patch": "replace", "x": "y"}}}),
        );
        assert_eq!(replaced["spec"]["selector"], json!({"x": "y"}));
    }

    #[test]
    fn lists_without_a_key_are_replaced() {
        let current = json!({"spec": {"externalIPs": ["a", "b"]}});
        let out = strategic(&current, json!({"spec": {"externalIPs": ["c"]}}));
        assert_eq!(out["spec"]["externalIPs"], json!(["c"]));
    }

    #[test]
    fn merge_and_json_patches() {
        let merged = patched(
            &svc(),
            br#"{"spec":{"ports":[{"port":1}]}}"#,
            PatchType::Merge,
        )
        .unwrap();
        assert_eq!(merged["spec"]["ports"], json!([{"port": 1}]));
        let ops = br#"[{"op":"replace","path":"/spec/ports/0/port","value":81}]"#;
        let replaced = patched(&svc(), ops, PatchType::Json).unwrap();
        assert_eq!(replaced["spec"]["ports"][0]["port"], 81);
        let bad = br#"[{"op":"test","path":"/spec/ports/0/port","value":1}]"#;
        assert!(patched(&svc(), bad, PatchType::Json).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::of("application/strategic-merge-patch+json"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::of("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::of("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::of("text/plain"), None);
    }
}
