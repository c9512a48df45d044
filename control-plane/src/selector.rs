//! Label selectors: the `-l` query strings of list/watch calls, and the
//! `matchLabels`/`matchExpressions` of Deployments, with Kubernetes' semantics.

use switchyard_api::resources::{LabelSelector, Labels};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(String);

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses kubectl's `-l` syntax: `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        split_requirements(s)
            .into_iter()
            .map(|part| parse_requirement(part.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Selector)
    }

    /// A Deployment's selector; expressions with unknown operators match nothing,
    /// as validation rejects them before they are stored.
    pub fn from_label_selector(sel: &LabelSelector) -> Selector {
        let mut reqs: Vec<Requirement> = sel
            .match_labels
            .iter()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
            .collect();
        for e in &sel.match_expressions {
            let key = e.key.clone();
            reqs.push(match e.operator.as_str() {
                "In" => Requirement::In(key, e.values.clone()),
                "NotIn" => Requirement::NotIn(key, e.values.clone()),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                _ => Requirement::In(key, Vec::new()),
            });
        }
        Selector(reqs)
    }
}

/// Whether a Service's selector map selects these labels. An empty selector
/// selects nothing: such Services get hand-written EndpointSlices.
pub fn service_selects(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Splits on commas that are not inside a parenthesised value list.
fn split_requirements(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    let err = || SelectorError(part.to_string());
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(checked_key(key.trim(), part)?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            checked_key(k.trim(), part)?,
            v.trim().to_string(),
        ));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(
            checked_key(k.trim(), part)?,
            v.trim().to_string(),
        ));
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    match words.as_slice() {
        [key] => Ok(Requirement::Exists(checked_key(key, part)?)),
        [key, rest] => {
            let rest = rest.trim();
            let (op, list) = rest.split_once('(').ok_or_else(err)?;
            let list = list.strip_suffix(')').ok_or_else(err)?;
            let values: Vec<String> = list.split(',').map(|v| v.trim().to_string()).collect();
            let key = checked_key(key, part)?;
            match op.trim() {
                "in" => Ok(Requirement::In(key, values)),
                "notin" => Ok(Requirement::NotIn(key, values)),
                _ => Err(err()),
            }
        }
        _ => Err(err()),
    }
}

fn checked_key(key: &str, part: &str) -> Result<String, SelectorError> {
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(SelectorError(part.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_and_inequality() {
        let sel = Selector::parse("app=frontend,tier!=db").unwrap();
        assert!(sel.matches(&Labels::from([("app", "frontend")])));
        assert!(sel.matches(&Labels::from([("app", "frontend"), ("tier", "web")])));
        assert!(!sel.matches(&Labels::from([("app", "frontend"), ("tier", "db")])));
        assert!(!sel.matches(&Labels::from([("app", "backend")])));
    }

    #[test]
    fn set_based_and_existence() {
        let sel = Selector::parse("env in (prod, staging),!legacy,app").unwrap();
        assert!(sel.matches(&Labels::from([("env", "prod"), ("app", "x")])));
        assert!(!sel.matches(&Labels::from([("env", "dev"), ("app", "x")])));
        assert!(!sel.matches(&Labels::from([("env", "prod")])));
        assert!(!sel.matches(&Labels::from([
            ("env", "prod"),
            ("app", "x"),
            ("legacy", "1")
        ])));
        let notin = Selector::parse("env notin (prod)").unwrap();
        assert!(notin.matches(&Labels::new()));
        assert!(!notin.matches(&Labels::from([("env", "prod")])));
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(Selector::parse("")
            .unwrap()
            .matches(&Labels::from([("a", "b")])));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            Selector::parse("a in b").unwrap_err().to_string(),
            "unable to parse requirement: a in b"
        );
        assert!(Selector::parse("=x").is_err());
    }

    #[test]
    fn service_selector_needs_every_pair_and_is_never_empty() {
        let sel = Labels::from([("app", "frontend")]);
        assert!(service_selects(
            &sel,
            &Labels::from([("app", "frontend"), ("x", "y")])
        ));
        assert!(!service_selects(&sel, &Labels::from([("app", "other")])));
        assert!(!service_selects(
            &Labels::new(),
            &Labels::from([("app", "frontend")])
        ));
    }

    #[test]
    fn deployment_selector_with_expressions() {
        let sel = LabelSelector {
            match_labels: Labels::from([("app", "web")]),
            match_expressions: vec![switchyard_api::resources::LabelSelectorRequirement {
                key: "track".into(),
                operator: "NotIn".into(),
                values: vec!["canary".into()],
            }],
        };
        let s = Selector::from_label_selector(&sel);
        assert!(s.matches(&Labels::from([("app", "web")])));
        assert!(!s.matches(&Labels::from([("app", "web"), ("track", "canary")])));
    }
}
