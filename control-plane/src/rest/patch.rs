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

/// `current` with `body` applied.
pub fn apply(current: &Value, body: &[u8], patch_type: PatchType) -> Result<Value, PatchError> {
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
            merge_object(&mut doc, &patch, "");
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

/// The key elements of the list at `path` merge on, as the Kubernetes
/// types' `patchMergeKey` tags say; `None`: the list is replaced whole.
/// A Deployment's pod template merges as a Pod does.
fn merge_key(path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("spec.template.").unwrap_or(path);
    match path {
        "spec.ports" => Some("port"),
        "spec.containers" | "spec.initContainers" | "spec.ephemeralContainers" => Some("name"),
        "spec.containers.ports" | "spec.initContainers.ports" => Some("containerPort"),
        "spec.containers.env" | "spec.initContainers.env" => Some("name"),
        "spec.containers.volumeMounts" | "spec.initContainers.volumeMounts" => Some("mountPath"),
        "spec.volumes" | "spec.imagePullSecrets" => Some("name"),
        "status.conditions" | "status.addresses" => Some("type"),
        "metadata.ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Lists of strings Kubernetes merges as sets.
fn merges_primitives(path: &str) -> bool {
    path == "metadata.finalizers"
}

fn join(path: &str, field: &str) -> String {
    match path {
        "" => field.to_string(),
        _ => format!("{path}.{field}"),
    }
}

fn merge_object(target: &mut Value, patch: &Value, path: &str) {
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
        let child = join(path, key);
        let slot = fields.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(_) => merge_object(slot, value, &child),
            Value::Array(items) => merge_list(slot, items, &child),
            _ => *slot = value.clone(),
        }
    }
    for (key, order) in patch {
        if let (Some(field), Some(order)) =
            (key.strip_prefix("$setElementOrder/"), order.as_array())
        {
            if let Some(Value::Array(items)) = fields.get_mut(field) {
                reorder(items, order, merge_key(&join(path, field)));
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

fn merge_list(target: &mut Value, items: &[Value], path: &str) {
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let key = merge_key(path);
    if replace || (key.is_none() && !merges_primitives(path)) || !target.is_array() {
        let kept = items.iter().filter(|i| i.get("$patch").is_none()).cloned();
        *target = Value::Array(kept.collect());
        return;
    }
    let Some(list) = target.as_array_mut() else {
        return;
    };
    let Some(key) = key else {
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
        return;
    };
    for item in items {
        let position = list.iter().position(|e| same_key(e, item, key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => merge_object(&mut list[i], item, path),
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                merge_object(&mut fresh, item, path);
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

    fn strategic(current: &Value, patch: Value) -> Value {
        apply(
            current,
            patch.to_string().as_bytes(),
            PatchType::StrategicMerge,
        )
        .unwrap()
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
        let merged = apply(
            &svc(),
            br#"{"spec":{"ports":[{"port":1}]}}"#,
            PatchType::Merge,
        )
        .unwrap();
        assert_eq!(merged["spec"]["ports"], json!([{"port": 1}]));
        let ops = br#"[{"op":"replace","path":"/spec/ports/0/port","value":81}]"#;
        let patched = apply(&svc(), ops, PatchType::Json).unwrap();
        assert_eq!(patched["spec"]["ports"][0]["port"], 81);
        let bad = br#"[{"op":"test","path":"/spec/ports/0/port","value":1}]"#;
        assert!(apply(&svc(), bad, PatchType::Json).is_err());
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
