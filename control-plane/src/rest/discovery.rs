//! Discovery, as kube-apiserver serves it: `/version`, `/api`, `/apis`
//! (aggregated, `APIGroupDiscoveryList`, for clients that ask for it, as
//! kubectl does), and one APIResourceList per group-version for the rest.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;

use super::catalog::{self, Served, SERVED};

/// The Kubernetes release whose API this one follows.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "32";

pub fn version() -> Info {
    Info {
        build_date: String::new(),
        compiler: "rustc".to_string(),
        git_commit: String::new(),
        git_tree_state: "clean".to_string(),
        git_version: format!(
            "v{KUBE_MAJOR}.{KUBE_MINOR}.0-switchyard.{}",
            env!("CARGO_PKG_VERSION")
        ),
        go_version: String::new(),
        major: KUBE_MAJOR.to_string(),
        minor: KUBE_MINOR.to_string(),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// `/api`: the core group's versions.
pub fn core_versions() -> APIVersions {
    APIVersions {
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_string(),
            server_address: String::new(),
        }],
        versions: vec!["v1".to_string()],
    }
}

/// `/apis`: every named group.
pub fn groups() -> APIGroupList {
    let groups = catalog::group_versions()
        .into_iter()
        .filter(|(group, _)| !group.is_empty())
        .map(|(group, version)| {
            let gv = GroupVersionForDiscovery {
                group_version: format!("{group}/{version}"),
                version: version.to_string(),
            };
            APIGroup {
                name: group.to_string(),
                preferred_version: Some(gv.clone()),
                server_address_by_client_cidrs: None,
                versions: vec![gv],
            }
        })
        .collect();
    APIGroupList { groups }
}

/// `/api/v1`, `/apis/<group>/<version>`: `None` for one not served.
pub fn resources(group: &str, version: &str) -> Option<APIResourceList> {
    let served: Vec<&Served> = SERVED
        .iter()
        .filter(|s| s.group == group && s.version == version)
        .collect();
    let first = served.first()?;
    let mut resources = Vec::new();
    for s in &served {
        resources.push(resource(s, s.plural.to_string(), s.verbs));
        for sub in s.subresources {
            // Subresources carry no names of their own, as in kube-apiserver:
            // a short name on them would make kubectl warn of ambiguity.
            resources.push(APIResource {
                categories: None,
                short_names: None,
                singular_name: String::new(),
                ..resource(s, format!("{}/{sub}", s.plural), subresource_verbs(sub))
            });
        }
    }
    Some(APIResourceList {
        group_version: first.group_version(),
        resources,
    })
}

/// The media type kubectl (client-go) asks for first: every group's
/// resources in one answer (`/api` for the core group, `/apis` for the
/// rest) instead of one request per group-version.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
    })
}

/// `APIGroupDiscoveryList` (apidiscovery.k8s.io/v2) of the core group
/// (`core`) or of the named groups. k8s-openapi has no type for it.
pub fn aggregated(core: bool) -> serde_json::Value {
    use serde_json::json;
    let items: Vec<serde_json::Value> = catalog::group_versions()
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, version)| {
            let resources: Vec<serde_json::Value> = SERVED
                .iter()
                .filter(|s| s.group == group && s.version == version)
                .map(|s| {
                    let kind = json!({"group": s.group, "version": s.version, "kind": s.kind});
                    let subresources: Vec<serde_json::Value> = s
                        .subresources
                        .iter()
                        .map(|sub| {
                            let kind = match *sub {
                                "portforward" => json!({"group": "", "version": "", "kind": "PodPortForwardOptions"}),
                                _ => kind.clone(),
                            };
                            json!({"subresource": sub, "responseKind": kind, "verbs": subresource_verbs(sub)})
                        })
                        .collect();
                    let mut resource = json!({
                        "resource": s.plural,
                        "responseKind": kind,
                        "scope": if s.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": s.singular,
                        "verbs": s.verbs,
                        "subresources": subresources,
                    });
                    if !s.short_names.is_empty() {
                        resource["shortNames"] = json!(s.short_names);
                    }
                    if !s.categories().is_empty() {
                        resource["categories"] = json!(s.categories());
                    }
                    resource
                })
                .collect();
            json!({
                "metadata": {"name": group, "creationTimestamp": null},
                "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn subresource_verbs(sub: &str) -> &'static [&'static str] {
    match sub {
        "portforward" => &["create", "get"],
        _ => &["get", "patch", "update"],
    }
}

fn resource(s: &Served, name: String, verbs: &[&str]) -> APIResource {
    let short_names: Vec<String> = s.short_names.iter().map(|n| n.to_string()).collect();
    APIResource {
        categories: Some(s.categories().iter().map(|c| c.to_string()).collect())
            .filter(|c: &Vec<String>| !c.is_empty()),
        group: None,
        kind: s.kind.to_string(),
        name,
        namespaced: s.namespaced,
        short_names: (!short_names.is_empty()).then_some(short_names),
        singular_name: s.singular.to_string(),
        storage_version_hash: None,
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_list_names_services_with_their_status_and_short_name() {
        let list = serde_json::to_value(resources("", "v1").unwrap()).unwrap();
        assert_eq!(list["kind"], "APIResourceList");
        assert_eq!(list["groupVersion"], "v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"services") && names.contains(&"services/status"),
            "{names:?}"
        );
        let services = &list["resources"][2];
        assert_eq!(services["name"], "services");
        assert_eq!(services["shortNames"], serde_json::json!(["svc"]));
        assert_eq!(services["namespaced"], true);
    }

    #[test]
    fn aggregated_discovery_when_kubectl_asks_for_it() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(Some(accept)));
        assert!(!wants_aggregated(Some("application/json")));
        let core = aggregated(true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        let pods = &core["items"][0]["versions"][0]["resources"][3];
        assert_eq!(pods["resource"], "pods");
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["subresources"][1]["subresource"], "portforward");
        let named = aggregated(false);
        let groups: Vec<&str> = named["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            groups,
            [
                "apps",
                "discovery.k8s.io",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "switchyard.io"
            ]
        );
    }

    #[test]
    fn named_groups_and_unknown_versions() {
        let groups = groups();
        let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "apps",
                "discovery.k8s.io",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "switchyard.io"
            ]
        );
        assert!(resources("apps", "v2").is_none());
        assert_eq!(
            resources("switchyard.io", "v1").unwrap().resources[2].name,
            "controlplanes"
        );
    }
}
