//! The query parameters Kubernetes clients send, parsed once.

use std::time::Duration;

/// What the server does with fields the schema does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refuse the request, naming every unknown field.
    Strict,
    /// Drop them, with a `Warning:` header for each (the default).
    #[default]
    Warn,
    Ignore,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub label_selector: String,
    pub field_selector: String,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub watch: bool,
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub timeout: Option<Duration>,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
}

/// A parameter with a value the server cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: Unsupported value: {value:?}")]
pub struct QueryError {
    pub name: &'static str,
    pub value: String,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Query, QueryError> {
        let mut q = Query::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "labelSelector" => q.label_selector = value,
                "fieldSelector" => q.field_selector = value,
                "limit" => q.limit = number("limit", &value)?.filter(|n| *n > 0),
                "continue" => q.continue_token = Some(value).filter(|v| !v.is_empty()),
                "watch" => q.watch = truthy(&value),
                "resourceVersion" => q.resource_version = Some(value).filter(|v| !v.is_empty()),
                "allowWatchBookmarks" => q.allow_bookmarks = truthy(&value),
                "timeoutSeconds" => {
                    q.timeout =
                        number("timeoutSeconds", &value)?.map(|s| Duration::from_secs(s as u64))
                }
                "dryRun" => q.dry_run = dry_run(&value)?,
                "fieldValidation" => q.field_validation = field_validation(&value)?,
                _ => {}
            }
        }
        Ok(q)
    }
}

fn truthy(value: &str) -> bool {
    matches!(value, "true" | "1")
}

fn number(name: &'static str, value: &str) -> Result<Option<usize>, QueryError> {
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| QueryError {
        name,
        value: value.to_string(),
    })
}

fn dry_run(value: &str) -> Result<bool, QueryError> {
    match value {
        "All" => Ok(true),
        "" => Ok(false),
        _ => Err(QueryError {
            name: "dryRun",
            value: value.to_string(),
        }),
    }
}

fn field_validation(value: &str) -> Result<FieldValidation, QueryError> {
    match value {
        "Strict" => Ok(FieldValidation::Strict),
        "Warn" | "" => Ok(FieldValidation::Warn),
        "Ignore" => Ok(FieldValidation::Ignore),
        _ => Err(QueryError {
            name: "fieldValidation",
            value: value.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_kubectl_sends() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500&continue=abc&fieldValidation=Strict&dryRun=All",
        ))
        .unwrap();
        assert_eq!(q.label_selector, "app=web,tier in (a)");
        assert_eq!(q.limit, Some(500));
        assert_eq!(q.continue_token.as_deref(), Some("abc"));
        assert_eq!(q.field_validation, FieldValidation::Strict);
        assert!(q.dry_run);
        let w = Query::parse(Some(
            "watch=true&resourceVersion=42&allowWatchBookmarks=true&timeoutSeconds=30",
        ))
        .unwrap();
        assert!(w.watch && w.allow_bookmarks);
        assert_eq!(w.resource_version.as_deref(), Some("42"));
        assert_eq!(w.timeout, Some(Duration::from_secs(30)));
        assert_eq!(Query::parse(None).unwrap(), Query::default());
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            Query::parse(Some("dryRun=Some")).unwrap_err().to_string(),
            "dryRun: Unsupported value: \"Some\""
        );
        assert!(Query::parse(Some("limit=x")).is_err());
    }
}
