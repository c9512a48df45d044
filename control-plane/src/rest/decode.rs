//! Request bodies into objects, with kube-apiserver's field validation:
//! unknown fields are judged against Kubernetes' own schema
//! (`resources::unknown_fields`), so a manifest written for Kubernetes
//! passes `fieldValidation=Strict` exactly when it would there, and a typo
//! is named the way kube-apiserver names it.

use serde_json::Value;
use switchyard_api::resources::{drop_unknown_fields, field_path, Kind, Object};

use super::query::FieldValidation;

/// A decoded object and the warnings to send with the answer.
#[derive(Debug)]
pub struct Decoded {
    pub object: Object,
    pub warnings: Vec<String>,
}

/// Why a body is refused (400 BadRequest), in kube-apiserver's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Decodes `value` as an object of `kind`.
pub fn decode(
    kind: Kind,
    mut value: Value,
    validation: FieldValidation,
) -> Result<Decoded, DecodeError> {
    let cannot = |why: String| {
        DecodeError(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {why}",
            version_of(kind)
        ))
    };
    check_type(kind, &value)?;
    let dropped = drop_unknown_fields(kind, &mut value);
    let unknown: Vec<String> = match validation {
        FieldValidation::Ignore => Vec::new(),
        _ => dropped
            .iter()
            .map(|path| format!("unknown field \"{}\"", field_path(path)))
            .collect(),
    };
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        return Err(cannot(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        )));
    }
    let object = Object::from_value(kind, value).map_err(|e| cannot(e.to_string()))?;
    Ok(Decoded {
        object: object.with_type_meta(),
        warnings: unknown,
    })
}

fn version_of(kind: Kind) -> &'static str {
    kind.api_version().rsplit('/').next().unwrap_or("v1")
}

/// A body's `apiVersion` and `kind`, when given, must be the URL's.
fn check_type(kind: Kind, value: &Value) -> Result<(), DecodeError> {
    if !value.is_object() {
        return Err(DecodeError(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml".to_string(),
        ));
    }
    let given = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(api_version) = given("apiVersion") {
        if api_version != kind.api_version() {
            return Err(DecodeError(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                kind.api_version()
            )));
        }
    }
    if let Some(given_kind) = given("kind") {
        if given_kind != kind.as_str() {
            return Err(DecodeError(format!(
                "the kind in the data ({given_kind}) does not match the expected kind ({kind})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec})
    }

    #[test]
    fn strict_names_every_unknown_field_as_kube_apiserver_does() {
        let body = service(json!({"ports": [{"port": 80, "prot": "TCP"}], "selektor": {}}));
        let err = decode(Kind::Service, body, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.ports[0].prot\", unknown field \"spec.selektor\""
        );
    }

    #[test]
    fn warn_keeps_the_object_and_says_what_was_dropped() {
        let body = service(json!({"ports": [{"port": 80}], "selektor": {}}));
        let decoded = decode(Kind::Service, body, FieldValidation::Warn).unwrap();
        assert_eq!(
            decoded.warnings,
            vec!["unknown field \"spec.selektor\"".to_string()]
        );
        assert_eq!(decoded.object.name(), "web");
        let ignored = decode(
            Kind::Service,
            service(json!({"selektor": {}})),
            FieldValidation::Ignore,
        )
        .unwrap();
        assert!(ignored.warnings.is_empty());
    }

    /// Fields Kubernetes has and Switchyard does not keep (a Deployment's
    /// strategy) are not unknown: the manifest applies unchanged.
    #[test]
    fn kubernetes_fields_switchyard_does_not_keep_are_known() {
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "frontend"},
            "spec": {
                "replicas": 2, "strategy": {"type": "RollingUpdate"}, "revisionHistoryLimit": 3,
                "selector": {"matchLabels": {"app": "frontend"}},
                "template": {"metadata": {"labels": {"app": "frontend"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 5000}]}]}}
            }
        });
        let decoded = decode(Kind::Deployment, deploy, FieldValidation::Strict).unwrap();
        assert!(decoded.warnings.is_empty());
    }

    #[test]
    fn the_body_must_be_the_urls_kind() {
        let wrong = json!({"apiVersion": "apps/v1", "kind": "Service", "metadata": {"name": "x"}});
        assert_eq!(
            decode(Kind::Service, wrong, FieldValidation::Strict)
                .unwrap_err()
                .to_string(),
            "the API version in the data (apps/v1) does not match the expected API version (v1)"
        );
    }
}
