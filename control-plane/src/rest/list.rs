//! What a list answers beyond the label selector the registry applies:
//! field selectors (the fields kube-apiserver supports for each kind) and
//! the continue tokens of chunked lists (`limit`, `continue`).

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

/// Why a continue token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("continue key is not valid: {0}")]
pub struct ContinueError(String);

/// The token a chunked list's next request sends back: where the chunk
/// ended. Later chunks are read from the current state rather than the
/// first chunk's revision: Switchyard keeps no snapshots of old states.
pub fn encode_token(revision: u64, last: &str) -> String {
    let json = serde_json::json!({"v": "meta.k8s.io/v1", "rv": revision, "start": last});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
}

/// The key a continue token says the previous chunk ended with.
pub fn decode_token(token: &str) -> Result<String, ContinueError> {
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
    fn continue_tokens_carry_where_a_chunk_ended() {
        let token = encode_token(9, "default/svc-1");
        assert_eq!(decode_token(&token), Ok("default/svc-1".to_string()));
        assert!(decode_token("!!").is_err());
        assert!(decode_token("e30").is_err());
    }
}
