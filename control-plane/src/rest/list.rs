//! What a list answers beyond the label selector the registry applies:
//! field selectors (the fields kube-apiserver supports for each kind) and
//! chunks (`limit`, `continue`).

use base64::Engine;
use serde_json::Value;

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed `fieldSelector`; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<Term>);

/// Fields every kind may be selected by.
const COMMON: &[&str] = &["metadata.name", "metadata.namespace"];

/// Fields beyond [`COMMON`] kube-apiserver supports for a kind.
fn supported(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Service" => &["spec.clusterIP", "spec.type"],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `selector` for objects of `kind`; an unsupported field is
    /// refused as kube-apiserver refuses it.
    pub fn parse(kind: &str, selector: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !COMMON.contains(&field) && !supported(kind).contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(Term {
                field: field.to_string(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `object` (as JSON) has every field as the selector asks.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|t| {
            let found = t
                .field
                .split('.')
                .try_fold(object, |v, key| v.get(key))
                .map(scalar)
                .unwrap_or_default();
            (found == t.value) == t.equal
        })
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One chunk of a list, and what the client needs to ask for the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Why a continue token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("continue key is not valid: {0}")]
pub struct ContinueError(String);

/// The items after the continue token's key, at most `limit` of them.
/// `key` orders items (namespace/name, the order lists come in). Later
/// chunks are read from the current state rather than the first chunk's
/// revision: Switchyard keeps no snapshots of old states.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    limit: Option<usize>,
    token: Option<&str>,
    revision: u64,
) -> Result<Page<T>, ContinueError> {
    let after = token.map(decode_token).transpose()?;
    let mut items: Vec<T> = match &after {
        Some(start) => items.into_iter().filter(|i| key(i) > *start).collect(),
        None => items,
    };
    let Some(limit) = limit.filter(|l| *l < items.len()) else {
        return Ok(Page {
            items,
            continue_token: None,
            remaining: None,
        });
    };
    let remaining = items.len() - limit;
    items.truncate(limit);
    let last = items.last().map(&key).unwrap_or_default();
    Ok(Page {
        items,
        continue_token: Some(encode_token(revision, &last)),
        remaining: Some(remaining),
    })
}

fn encode_token(revision: u64, last: &str) -> String {
    let json = serde_json::json!({"v": "meta.k8s.io/v1", "rv": revision, "start": last});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
}

fn decode_token(token: &str) -> Result<String, ContinueError> {
    let bad = |why: &str| ContinueError(why.to_string());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad("not base64"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad("not JSON"))?;
    value
        .get("start")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad("no start key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors_as_kubectl_sends_them() {
        let pod =
            json!({"metadata": {"name": "a", "namespace": "shop"}, "spec": {"nodeName": "node-1"}});
        let on = FieldSelector::parse("Pod", "spec.nodeName=node-1").unwrap();
        assert!(on.matches(&pod));
        let off =
            FieldSelector::parse("Pod", "spec.nodeName!=node-1,metadata.namespace==shop").unwrap();
        assert!(!off.matches(&pod));
        assert!(!FieldSelector::parse("Pod", "metadata.name=b")
            .unwrap()
            .matches(&pod));
        assert_eq!(
            FieldSelector::parse("Service", "spec.nodeName=x").unwrap_err(),
            "field label not supported: spec.nodeName"
        );
    }

    #[test]
    fn chunks_follow_each_other_without_gaps() {
        let items: Vec<String> = (0..5).map(|i| format!("default/svc-{i}")).collect();
        let first = page(items.clone(), |s| s.clone(), Some(2), None, 9).unwrap();
        assert_eq!(first.items, ["default/svc-0", "default/svc-1"]);
        assert_eq!(first.remaining, Some(3));
        let second = page(
            items.clone(),
            |s| s.clone(),
            Some(2),
            first.continue_token.as_deref(),
            9,
        )
        .unwrap();
        assert_eq!(second.items, ["default/svc-2", "default/svc-3"]);
        let last = page(
            items,
            |s| s.clone(),
            Some(2),
            second.continue_token.as_deref(),
            9,
        )
        .unwrap();
        assert_eq!(last.items, ["default/svc-4"]);
        assert_eq!(last.continue_token, None);
        assert!(page(vec![1], |i| i.to_string(), None, Some("!!"), 1).is_err());
    }
}
