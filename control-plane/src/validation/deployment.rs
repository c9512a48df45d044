//! Deployment validation, after `ValidateDeployment` in Kubernetes' apps
//! group: a non-empty selector that selects the template's own labels, so
//! the Deployment can find the pods it describes.

use switchyard_api::resources::{Deployment, LabelSelector, LabelSelectorRequirement};

use super::common::{self, Scope};
use super::field::{FieldError, FieldErrors};
use super::{golang, names};
use crate::selector::Selector;

pub(super) fn validate(d: &Deployment) -> FieldErrors {
    let mut errs = FieldErrors::default();
    common::object_meta(
        &mut errs,
        &d.metadata,
        Scope::Namespaced,
        names::dns1123_subdomain,
    );
    common::non_negative(&mut errs, "spec.replicas", d.spec.replicas);
    let selector = &d.spec.selector;
    let before = errs.0.len();
    if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
        errs.push(FieldError::required("spec.selector"));
    } else {
        label_selector(&mut errs, "spec.selector", selector);
    }
    // An invalid selector cannot be evaluated; its own errors say why.
    if errs.0.len() == before {
        template_selected(&mut errs, d);
    }
    common::labels(
        &mut errs,
        "spec.template.labels",
        &d.spec.template.metadata.labels,
    );
    errs
}

fn template_selected(errs: &mut FieldErrors, d: &Deployment) {
    let labels = &d.spec.template.metadata.labels;
    if !Selector::from_label_selector(&d.spec.selector).matches(labels) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            golang::value(golang::string_map(labels)),
            "`selector` does not match template `labels`",
        ));
    }
}

fn label_selector(errs: &mut FieldErrors, path: &str, selector: &LabelSelector) {
    common::labels(errs, &format!("{path}.matchLabels"), &selector.match_labels);
    for (i, req) in selector.match_expressions.iter().enumerate() {
        requirement(errs, &format!("{path}.matchExpressions[{i}]"), req);
    }
}

fn requirement(errs: &mut FieldErrors, path: &str, req: &LabelSelectorRequirement) {
    let values_path = format!("{path}.values");
    match req.operator.as_str() {
        "In" | "NotIn" if req.values.is_empty() => errs.push(FieldError::required_because(
            values_path.as_str(),
            "must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if !req.values.is_empty() => errs.push(FieldError::forbidden(
            values_path.as_str(),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        other => errs.push(FieldError::invalid(
            format!("{path}.operator"),
            other,
            "not a valid selector operator",
        )),
    }
    common::invalid_each(
        errs,
        &format!("{path}.key"),
        &req.key,
        names::qualified_name(&req.key),
    );
    for (i, value) in req.values.iter().enumerate() {
        let msgs = names::label_value(value);
        common::invalid_each(errs, &format!("{values_path}[{i}]"), value, msgs);
    }
}

#[cfg(test)]
mod tests {
    use switchyard_api::resources::Labels;

    use super::*;
    use crate::defaulting;
    use switchyard_api::resources::ObjectMeta;

    fn frontend() -> Deployment {
        let mut d = Deployment {
            metadata: ObjectMeta {
                name: "frontend".to_string(),
                namespace: Some("default".to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        d.spec.selector.match_labels = Labels::from([("app", "frontend")]);
        d.spec.template.metadata.labels = Labels::from([("app", "frontend"), ("tier", "web")]);
        defaulting::deployment(&mut d);
        d
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_string(),
            operator: op.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn typical_deployment_validates_clean() {
        assert_eq!(validate(&frontend()), FieldErrors::default());
    }

    #[test]
    fn expressions_select_the_template() {
        let mut d = frontend();
        d.spec.selector.match_expressions = vec![
            expr("tier", "In", &["web", "api"]),
            expr("canary", "DoesNotExist", &[]),
            expr("app", "NotIn", &["backend"]),
            expr("tier", "Exists", &[]),
        ];
        assert_eq!(validate(&d), FieldErrors::default());
    }

    #[test]
    fn selector_is_required() {
        let mut d = frontend();
        d.spec.selector = LabelSelector::default();
        assert_eq!(validate(&d).to_string(), "spec.selector: Required value");
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut d = frontend();
        d.spec.template.metadata.labels = Labels::from([("app", "x")]);
        assert_eq!(
            validate(&d).to_string(),
            r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`"#
        );
    }

    #[test]
    fn missing_template_labels_render_as_nil_map() {
        let mut d = frontend();
        d.spec.template.metadata.labels.clear();
        assert_eq!(
            validate(&d).to_string(),
            r#"spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`"#
        );
    }

    #[test]
    fn replicas_may_not_be_negative() {
        let mut d = frontend();
        d.spec.replicas = Some(-1);
        assert_eq!(
            validate(&d).to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        d.spec.replicas = Some(0);
        assert_eq!(validate(&d), FieldErrors::default());
    }

    #[test]
    fn operator_rules() {
        let mut d = frontend();
        d.spec.selector.match_expressions = vec![
            expr("tier", "In", &[]),
            expr("tier", "Exists", &["web"]),
            expr("tier", "Like", &[]),
        ];
        assert_eq!(
            validate(&d).to_string(),
            "[spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn', \
spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist', \
spec.selector.matchExpressions[2].operator: Invalid value: \"Like\": not a valid selector operator]"
        );
    }

    #[test]
    fn selector_keys_and_values_are_labels() {
        let mut d = frontend();
        d.spec.selector.match_labels = Labels::from([("app", "-x")]);
        d.spec.selector.match_expressions = vec![expr("a/b/c", "In", &["_v"])];
        assert_eq!(
            validate(&d).to_string(),
            format!(
                "[spec.selector.matchLabels: Invalid value: \"-x\": {}, \
spec.selector.matchExpressions[0].key: Invalid value: \"a/b/c\": {}, \
spec.selector.matchExpressions[0].values[0]: Invalid value: \"_v\": {}]",
                names::label_value("-x")[0],
                names::qualified_name("a/b/c")[0],
                names::label_value("_v")[0]
            )
        );
    }

    #[test]
    fn template_labels_are_checked_where_kubernetes_reports_them() {
        let mut d = frontend();
        d.spec
            .template
            .metadata
            .labels
            .insert("bad key".to_string(), "v".to_string());
        assert_eq!(
            validate(&d).to_string(),
            format!(
                "spec.template.labels: Invalid value: \"bad key\": {}",
                names::qualified_name("bad key")[0]
            )
        );
    }

    #[test]
    fn deployment_names_are_subdomains() {
        let mut d = frontend();
        d.metadata.name = "Frontend".to_string();
        assert_eq!(
            validate(&d).to_string(),
            format!(
                "metadata.name: Invalid value: \"Frontend\": {}",
                names::dns1123_subdomain("Frontend")[0]
            )
        );
    }
}
