//! Kubernetes resource URLs: `/api/v1/namespaces/default/services/web/status`
//! and `/apis/apps/v1/deployments` name a served resource, an optional
//! namespace, object and subresource.

use super::catalog::{self, Served};

/// What a resource URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub served: &'static Served,
    /// `None`: every namespace (or a cluster-scoped resource).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Why a URL names no served resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not a resource URL at all (or a group-version we do not serve).
    #[error("the server could not find the requested resource")]
    NotFound,
    #[error("the server could not find the requested resource ({0})")]
    UnknownResource(String),
}

/// Parses a resource URL's path; `NotFound` for paths that are not under
/// `/api/v1` or `/apis/<group>/<version>` with at least a resource.
pub fn parse(path: &str) -> Result<Target, PathError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(PathError::NotFound),
    };
    if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
        return Err(PathError::NotFound);
    }
    let find = |plural: &str| {
        catalog::find(group, version, plural)
            .ok_or_else(|| PathError::UnknownResource(plural.to_string()))
    };
    // `namespaces/<ns>/<resource>…` unless `<resource>` is a namespace's
    // own subresource (`namespaces/<name>/status`).
    if let ["namespaces", namespace, resource, tail @ ..] = rest {
        match find(resource) {
            Ok(served) if served.namespaced => return target(served, Some(namespace), tail),
            _ if tail.is_empty() && is_namespace_subresource(resource) => {}
            _ => return Err(PathError::UnknownResource(resource.to_string())),
        }
    }
    let served = find(rest[0])?;
    target(served, None, &rest[1..])
}

fn is_namespace_subresource(name: &str) -> bool {
    catalog::find("", "v1", "namespaces").is_some_and(|ns| ns.subresources.contains(&name))
}

fn target(
    served: &'static Served,
    namespace: Option<&str>,
    tail: &[&str],
) -> Result<Target, PathError> {
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some(*name), None),
        [name, sub] => (Some(*name), Some(*sub)),
        _ => return Err(PathError::NotFound),
    };
    if subresource.is_some_and(|s| !served.subresources.contains(&s)) {
        return Err(PathError::NotFound);
    }
    Ok(Target {
        served,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: subresource.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(path: &str) -> (String, Option<String>, Option<String>, Option<String>) {
        let t = parse(path).unwrap();
        (
            t.served.plural.to_string(),
            t.namespace,
            t.name,
            t.subresource,
        )
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn namespaced_collections_objects_and_subresources() {
        assert_eq!(
            parsed("/api/v1/namespaces/default/services"),
            ("services".into(), s("default"), None, None)
        );
        assert_eq!(
            parsed("/api/v1/namespaces/default/services/web/status"),
            ("services".into(), s("default"), s("web"), s("status"))
        );
        assert_eq!(
            parsed("/apis/apps/v1/namespaces/shop/deployments/frontend"),
            ("deployments".into(), s("shop"), s("frontend"), None)
        );
        assert_eq!(
            parsed("/api/v1/services"),
            ("services".into(), None, None, None)
        );
    }

    #[test]
    fn namespaces_themselves_are_cluster_scoped() {
        assert_eq!(
            parsed("/api/v1/namespaces/shop"),
            ("namespaces".into(), None, s("shop"), None)
        );
        assert_eq!(
            parsed("/api/v1/namespaces/shop/status"),
            ("namespaces".into(), None, s("shop"), s("status"))
        );
        assert_eq!(
            parsed("/api/v1/nodes/node-1"),
            ("nodes".into(), None, s("node-1"), None)
        );
    }

    #[test]
    fn unknown_resources_and_paths_are_not_found() {
        assert_eq!(
            parse("/api/v1/namespaces/default/widgets"),
            Err(PathError::UnknownResource("widgets".into()))
        );
        assert_eq!(
            parse("/apis/apps/v2/deployments"),
            Err(PathError::UnknownResource("deployments".into()))
        );
        assert_eq!(
            parse("/api/v1/namespaces/default/services/web/proxy"),
            Err(PathError::NotFound)
        );
        assert_eq!(parse("/metrics"), Err(PathError::NotFound));
        assert_eq!(parse("/api/v1"), Err(PathError::NotFound));
    }
}
