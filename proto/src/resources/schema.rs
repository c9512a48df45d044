//! Which fields Kubernetes' own schema knows, judged with k8s-openapi's
//! types: Switchyard keeps the fields it does not act on as sent, so
//! "unknown" must mean unknown to Kubernetes, not to Switchyard. swctl's
//! `--validate` and the REST API's `fieldValidation` both ask here, so a
//! typo is named the same way by both, and as kube-apiserver names it.

use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, discovery::v1 as discovery};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{BootstrapToken, Kind, User};

/// One step of a field path, as in `spec.ports[0].port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

impl Step {
    pub fn path_of(path: &serde_ignored::Path<'_>) -> Vec<Step> {
        use serde_ignored::Path;
        match path {
            Path::Root => Vec::new(),
            Path::Seq { parent, index } => {
                let mut out = Step::path_of(parent);
                out.push(Step::Index(*index));
                out
            }
            Path::Map { parent, key } => {
                let mut out = Step::path_of(parent);
                out.push(Step::Key(key.clone()));
                out
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => Step::path_of(parent),
        }
    }
}

/// `spec.ports[0].port`.
pub fn field_path(steps: &[Step]) -> String {
    let mut text = String::new();
    for step in steps {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// The fields of `value` Kubernetes' schema for `kind` lacks, in the order
/// they appear. A value the typed decoding refuses (a missing port, a
/// string for a number) yields those found before it stopped: type errors
/// are Switchyard's decoding's and validation's to name.
pub fn unknown_fields(kind: Kind, value: &Value) -> Vec<Vec<Step>> {
    match kind {
        Kind::Namespace => ignored::<core::Namespace>(value),
        Kind::Service => ignored::<core::Service>(value),
        Kind::Pod => ignored::<core::Pod>(value),
        Kind::Node => ignored::<core::Node>(value),
        Kind::Deployment => ignored::<apps::Deployment>(value),
        Kind::EndpointSlice => ignored::<discovery::EndpointSlice>(value),
        // Switchyard's own kinds: its types are the schema.
        Kind::User => ignored::<User>(value),
        Kind::BootstrapToken => ignored::<BootstrapToken>(value),
    }
}

/// Removes the fields Kubernetes' schema for `kind` lacks, as
/// kube-apiserver drops them: Switchyard keeps the fields of Kubernetes it
/// does not act on, never a typo. Returns what it removed.
pub fn drop_unknown_fields(kind: Kind, value: &mut Value) -> Vec<Vec<Step>> {
    let unknown = unknown_fields(kind, value);
    for path in &unknown {
        remove(value, path);
    }
    unknown
}

fn remove(value: &mut Value, path: &[Step]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = value;
    for step in parents {
        let next = match step {
            Step::Key(key) => at.get_mut(key.as_str()),
            Step::Index(i) => at.get_mut(*i),
        };
        match next {
            Some(next) => at = next,
            None => return,
        }
    }
    if let (Step::Key(key), Some(map)) = (last, at.as_object_mut()) {
        map.remove(key);
    }
}

fn ignored<T: DeserializeOwned>(value: &Value) -> Vec<Vec<Step>> {
    let mut unknown = Vec::new();
    let typed: Result<T, _> = serde_ignored::deserialize(value, |path| {
        unknown.push(Step::path_of(&path));
    });
    // Only the unknown fields matter here; see the doc comment.
    drop(typed);
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(kind: Kind, value: Value) -> Vec<String> {
        unknown_fields(kind, &value)
            .iter()
            .map(|p| field_path(p))
            .collect()
    }

    #[test]
    fn typos_are_dropped_and_the_rest_kept() {
        let mut svc = json!({"metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80, "prot": "TCP"}], "ipFamilyPolicy": "SingleStack"}});
        let dropped = drop_unknown_fields(Kind::Service, &mut svc);
        assert_eq!(
            dropped.iter().map(|p| field_path(p)).collect::<Vec<_>>(),
            ["spec.ports[0].prot"]
        );
        assert_eq!(
            svc,
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "ipFamilyPolicy": "SingleStack"}})
        );
    }

    #[test]
    fn typos_are_named_with_their_path() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "colour": "red"},
            "spec": {"ports": [{"port": 80, "prot": "TCP"}], "selektor": {}}});
        assert_eq!(
            paths(Kind::Service, svc),
            ["metadata.colour", "spec.ports[0].prot", "spec.selektor"]
        );
    }

    /// Fields Kubernetes has and Switchyard does not act on (a
    /// Deployment's strategy, a container's command) are not unknown.
    #[test]
    fn kubernetes_fields_switchyard_keeps_are_known() {
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "frontend"},
            "spec": {"replicas": 2, "strategy": {"type": "RollingUpdate"}, "revisionHistoryLimit": 3,
                "selector": {"matchLabels": {"app": "frontend"}},
                "template": {"metadata": {"labels": {"app": "frontend"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx", "command": ["nginx"],
                        "ports": [{"containerPort": 5000}]}]}}}
        });
        assert!(paths(Kind::Deployment, deploy).is_empty());
        let user = json!({"metadata": {"name": "bob"}, "spec": {"role": "view", "rol": "x"}});
        assert_eq!(paths(Kind::User, user), ["spec.rol"]);
    }
}
