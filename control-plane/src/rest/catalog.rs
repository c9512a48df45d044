//! What the REST API serves: one table that discovery, OpenAPI, URL
//! routing and authorization all read, so a kind is added in one place.

use switchyard_api::resources::Kind;

/// One resource the REST API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Kubernetes verbs: get list watch create update patch delete.
    pub verbs: &'static [&'static str],
    /// e.g. ["status"]
    pub subresources: &'static [&'static str],
}

const ALL_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const READ: &[&str] = &["get", "list", "watch"];
const CREATE: &[&str] = &["create"];

#[allow(clippy::too_many_arguments)] // one row of the table, every column named at the call
const fn served(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    verbs: &'static [&'static str],
    subresources: &'static [&'static str],
) -> Served {
    Served {
        group,
        version: "v1",
        kind,
        plural,
        singular,
        short_names,
        namespaced,
        verbs,
        subresources,
    }
}

#[rustfmt::skip]
pub const SERVED: &[Served] = &[
    served("", "Namespace", "namespaces", "namespace", &["ns"], false, ALL_VERBS, &["status"]),
    served("", "Service", "services", "service", &["svc"], true, ALL_VERBS, &["status"]),
    served("", "Endpoints", "endpoints", "endpoints", &["ep"], true, READ, &[]),
    served("", "Pod", "pods", "pod", &["po"], true, ALL_VERBS, &["status", "portforward"]),
    served("", "Node", "nodes", "node", &["no"], false, ALL_VERBS, &["status"]),
    served("", "Event", "events", "event", &["ev"], true, READ, &[]),
    served("apps", "Deployment", "deployments", "deployment", &["deploy"], true, ALL_VERBS, &["status"]),
    served("discovery.k8s.io", "EndpointSlice", "endpointslices", "endpointslice", &[], true, ALL_VERBS, &[]),
    served("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", &[], false, CREATE, &[]),
    served("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", &[], false, CREATE, &[]),
    served("switchyard.io", "User", "users", "user", &[], false, &["delete", "get", "list", "watch"], &[]),
    served("switchyard.io", "BootstrapToken", "tokens", "token", &[], false, &["delete", "get", "list", "watch"], &[]),
    served("switchyard.io", "ControlPlane", "controlplanes", "controlplane", &[], false, &["get", "list"], &[]),
];

/// How a served resource is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Objects the registry stores.
    Stored(Kind),
    /// v1 Endpoints, derived from each Service's EndpointSlices.
    Endpoints,
    /// Switchyard records no events: lists are empty, watches quiet.
    Events,
    /// The control planes sharing the store.
    ControlPlanes,
    SelfSubjectReview,
    SelfSubjectAccessReview,
}

impl Served {
    pub fn group_version(&self) -> String {
        match self.group {
            "" => self.version.to_string(),
            group => format!("{group}/{}", self.version),
        }
    }

    /// `kubectl get all` lists the kinds in category `all`, as kube-apiserver
    /// groups them (of those served here: Pods, Services, Deployments).
    pub fn categories(&self) -> &'static [&'static str] {
        match self.kind {
            "Pod" | "Service" | "Deployment" => &["all"],
            _ => &[],
        }
    }

    pub fn serves(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    pub fn backing(&self) -> Backing {
        match self.kind {
            "Endpoints" => Backing::Endpoints,
            "Event" => Backing::Events,
            "ControlPlane" => Backing::ControlPlanes,
            "SelfSubjectReview" => Backing::SelfSubjectReview,
            "SelfSubjectAccessReview" => Backing::SelfSubjectAccessReview,
            kind => Backing::Stored(stored_kind(kind)),
        }
    }
}

fn stored_kind(kind: &str) -> Kind {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)
        // Every other entry of SERVED names a stored kind (a unit test
        // walks them all).
        .unwrap_or(Kind::Namespace)
}

/// The served resource at `plural` in a group-version.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Served> {
    SERVED
        .iter()
        .find(|s| s.group == group && s.version == version && s.plural == plural)
}

/// The group-versions served, core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for s in SERVED {
        if !seen.contains(&(s.group, s.version)) {
            seen.push((s.group, s.version));
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of_kind(kind: Kind) -> Option<&'static Served> {
        SERVED.iter().find(|s| s.backing() == Backing::Stored(kind))
    }

    #[test]
    fn every_stored_kind_is_served_once_where_its_api_version_says() {
        for kind in Kind::ALL {
            let served = of_kind(kind).unwrap_or_else(|| panic!("{kind} is not served"));
            assert_eq!(served.group_version(), kind.api_version());
            assert_eq!(served.plural, kind.plural());
            assert_eq!(served.namespaced, kind.is_namespaced());
        }
        let stored = SERVED
            .iter()
            .filter(|s| matches!(s.backing(), Backing::Stored(_)))
            .count();
        assert_eq!(stored, Kind::ALL.len());
    }

    #[test]
    fn group_versions_start_with_the_core_group() {
        assert_eq!(
            group_versions(),
            vec![
                ("", "v1"),
                ("apps", "v1"),
                ("discovery.k8s.io", "v1"),
                ("authentication.k8s.io", "v1"),
                ("authorization.k8s.io", "v1"),
                ("switchyard.io", "v1"),
            ]
        );
    }
}
