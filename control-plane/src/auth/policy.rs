//! Authorization: one pure table of who may do what, in Kubernetes' terms
//! (RBAC's view/admin roles, the Node authorizer with NodeRestriction).
//!
//! | principal | may |
//! | --- | --- |
//! | `admin` user | every verb on every user-facing resource |
//! | `view` user | get, list, watch every resource but `users` and `tokens` |
//! | `node:<name>` | the node resources ([`NODE_RESOURCES`]) of node `<name>` only; its own mirror pods |
//! | nobody | nothing (the join call is checked by its token instead) |
//!
//! Node resources are the agent's: registering and streaming
//! (`nodes/status`), readiness of the pods bound to it (`pods/status`), its
//! tunnel (`nodes/tunnel`) and its certificate (`certificatesigningrequests`).
//! No user may act as a node, and a node reads nothing else: the snapshot
//! stream carries all its data path and DNS need.
//!
//! Pods a host declares in files are mirror pods (kubelet's static pods),
//! and NodeRestriction's rules hold for them ([`node_pods`]): a node may
//! create, update and delete only pods carrying [`MIRROR_ANNOTATION`] and
//! bound to itself (the stored pod too, on update and delete), and list
//! only the pods bound to itself.

use switchyard_api::resources::MIRROR_ANNOTATION;

use super::principal::{Principal, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Patch,
    Update,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Patch => "patch",
            Verb::Update => "update",
            Verb::Delete => "delete",
        }
    }

    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// REST paths anyone may read, as Kubernetes' `system:public-info-viewer`
/// role allows: a client checks them before it has credentials.
const PUBLIC_PATHS: &[&str] = &["/version", "/healthz", "/livez", "/readyz"];

pub fn is_public_path(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path.trim_end_matches('/'))
}

/// Resources only a node's own identity acts on.
pub const NODE_RESOURCES: [&str; 4] = [
    "nodes/status",
    "pods/status",
    "nodes/tunnel",
    "certificatesigningrequests",
];
/// Resources a `view` user may not read: they are about who may do what.
const IDENTITY_RESOURCES: [&str; 2] = ["users", "tokens"];

/// One request, as authorization sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action<'a> {
    pub verb: Verb,
    /// The plural, with a subresource after `/`: `services`, `pods/portforward`.
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    /// For node resources: the node the object belongs to (the node
    /// itself, or the node a pod is bound to). For a list of pods: the
    /// node the list is narrowed to.
    pub node: Option<&'a str>,
    /// For a pod being created or updated: the pod as sent.
    pub pod: Option<PodFacts<'a>>,
    /// For a pod being updated or deleted: the pod as stored (`None`
    /// when there is none).
    pub stored: Option<PodFacts<'a>>,
}

/// What authorization reads of a pod: where it is bound and whether it is
/// a mirror pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodFacts<'a> {
    /// `spec.nodeName`, empty when unbound.
    pub node_name: &'a str,
    /// Whether it carries [`MIRROR_ANNOTATION`].
    pub mirror: bool,
}

impl<'a> PodFacts<'a> {
    pub fn of(pod: &'a switchyard_api::resources::Pod) -> Self {
        Self {
            node_name: pod.spec.node_name.as_deref().unwrap_or(""),
            mirror: pod.is_mirror(),
        }
    }

    fn mirror_of(self, node: &str) -> bool {
        self.mirror && self.node_name == node
    }
}

impl<'a> Action<'a> {
    pub fn new(verb: Verb, resource: &'a str) -> Self {
        Self {
            verb,
            resource,
            namespace: None,
            name: None,
            node: None,
            pod: None,
            stored: None,
        }
    }

    pub fn namespace(mut self, namespace: &'a str) -> Self {
        self.namespace = Some(namespace);
        self
    }

    pub fn name(mut self, name: &'a str) -> Self {
        self.name = Some(name).filter(|n| !n.is_empty());
        self
    }

    pub fn of_node(mut self, node: &'a str) -> Self {
        self.node = Some(node);
        self
    }

    /// The pod being updated or deleted, as stored.
    pub fn stored(mut self, pod: Option<PodFacts<'a>>) -> Self {
        self.stored = pod;
        self
    }
}

/// `Ok` when `principal` may do `action`, else the refusal in
/// kube-apiserver's words.
pub fn authorize(principal: &Principal, action: &Action<'_>) -> Result<(), String> {
    let node_resource = NODE_RESOURCES.contains(&action.resource);
    let allowed = match principal {
        Principal::Insecure => true,
        Principal::Anonymous | Principal::Bootstrap { .. } => false,
        Principal::User { .. } if node_resource => {
            return Err(forbidden(
                principal,
                action,
                Some("only a node's own identity may"),
            ));
        }
        Principal::User {
            role: Role::Admin, ..
        } => true,
        Principal::User {
            role: Role::View, ..
        } => action.verb.is_read() && !IDENTITY_RESOURCES.contains(&action.resource),
        Principal::Node { name } if node_resource => {
            if action.node != Some(name.as_str()) {
                return Err(forbidden(
                    principal,
                    action,
                    Some("a node may only act as itself"),
                ));
            }
            true
        }
        Principal::Node { name } if action.resource == "pods" => {
            return node_pods(principal, name, action)
        }
        Principal::Node { .. } => false,
        // Passing a port-forward on: the first control plane authorized
        // and audited the user.
        Principal::ControlPlane { .. } => {
            action.verb == Verb::Create && action.resource.ends_with("/portforward")
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(forbidden(principal, action, None))
    }
}

/// NodeRestriction for pods: a node lists the pods bound to it, and
/// creates, updates and deletes only its own mirror pods, refused in
/// kube-apiserver's words. A delete of a pod that is not there is left to
/// the registry, which answers NotFound (as kube-apiserver does).
fn node_pods(principal: &Principal, node: &str, action: &Action<'_>) -> Result<(), String> {
    // Admission's refusals name the object from its body, on create too.
    let refuse = |why: String| Err(format!("{} is forbidden: {why}", object(action, true)));
    match action.verb {
        Verb::List if action.node == Some(node) => Ok(()),
        Verb::Create => match action.pod {
            Some(pod) if !pod.mirror => refuse(format!(
                "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
            )),
            Some(pod) if pod.node_name == node => Ok(()),
            _ => refuse(format!(
                "node \"{node}\" can only create pods with spec.nodeName set to itself"
            )),
        },
        Verb::Patch | Verb::Update => {
            let mine = |p: Option<PodFacts<'_>>| p.is_some_and(|p| p.mirror_of(node));
            if mine(action.pod) && mine(action.stored) {
                Ok(())
            } else {
                refuse(format!(
                    "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
                ))
            }
        }
        Verb::Delete => match action.stored {
            None => Ok(()),
            Some(stored) if stored.node_name != node => refuse(format!(
                "node \"{node}\" can only delete pods with spec.nodeName set to itself"
            )),
            Some(stored) if !stored.mirror => refuse(format!(
                "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only delete mirror pods"
            )),
            Some(_) => Ok(()),
        },
        _ => Err(forbidden(principal, action, None)),
    }
}

/// `services "web"`, or `services` for a collection.
/// What a refusal calls the object, as kube-apiserver does: the group
/// resource (`deployments.apps`, no subresource), and the name from the
/// URL, which authorization of a create of a whole object does not have
/// (`from_body`: the refusal is admission's, which reads the body).
fn object(action: &Action<'_>, from_body: bool) -> String {
    let (plural, subresource) = match action.resource.split_once('/') {
        Some((plural, sub)) => (plural, Some(sub)),
        None => (action.resource, None),
    };
    let resource = match api_group(plural) {
        "" => plural.to_string(),
        group => format!("{plural}.{group}"),
    };
    let named = from_body || action.verb != Verb::Create || subresource.is_some();
    match action.name.filter(|_| named) {
        Some(name) => format!("{resource} \"{name}\""),
        None => resource,
    }
}

/// The API group a resource (or subresource) belongs to, as refusals name it.
fn api_group(resource: &str) -> &'static str {
    let plural = resource.split('/').next().unwrap_or(resource);
    match plural {
        "deployments" => "apps",
        "endpointslices" => "discovery.k8s.io",
        "users" | "tokens" | "controlplanes" => "switchyard.io",
        "certificatesigningrequests" => "certificates.k8s.io",
        "selfsubjectreviews" => "authentication.k8s.io",
        "selfsubjectaccessreviews" => "authorization.k8s.io",
        _ => "",
    }
}

/// `services "web" is forbidden: User "bob" cannot create resource "services" in API group "" in the namespace "default"`.
fn forbidden(principal: &Principal, action: &Action<'_>, reason: Option<&str>) -> String {
    let object = object(action, false);
    let scope = match action.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut message = format!(
        "{object} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        principal.username(),
        action.verb.as_str(),
        action.resource,
        api_group(action.resource),
    );
    if let Some(reason) = reason {
        message.push_str(": ");
        message.push_str(reason);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> Principal {
        Principal::User {
            name: "bob".into(),
            role,
        }
    }

    fn node(name: &str) -> Principal {
        Principal::Node { name: name.into() }
    }

    fn create_web() -> Action<'static> {
        Action::new(Verb::Create, "services")
            .namespace("default")
            .name("web")
    }

    #[test]
    fn control_planes_may_only_pass_port_forwards_on() {
        let peer = Principal::ControlPlane {
            name: "cp-2".into(),
        };
        let forward = Action::new(Verb::Create, "pods/portforward")
            .namespace("default")
            .name("web-1");
        assert_eq!(authorize(&peer, &forward), Ok(()));
        assert_eq!(
            authorize(&peer, &create_web()),
            Err("services is forbidden: User \"system:control-plane:cp-2\" cannot create resource \"services\" in API group \"\" in the namespace \"default\"".to_string())
        );
        assert!(authorize(&peer, &Action::new(Verb::List, "services")).is_err());
        assert!(authorize(
            &peer,
            &Action::new(Verb::Create, "nodes/tunnel").of_node("n1")
        )
        .is_err());
    }

    #[test]
    fn admins_do_everything_users_do() {
        let admin = user(Role::Admin);
        for action in [
            create_web(),
            Action::new(Verb::Delete, "users").name("alice"),
            Action::new(Verb::Create, "tokens"),
            Action::new(Verb::Create, "pods/portforward")
                .namespace("default")
                .name("web-1"),
            Action::new(Verb::Watch, "services"),
        ] {
            assert_eq!(authorize(&admin, &action), Ok(()), "{action:?}");
        }
    }

    #[test]
    fn viewers_read_everything_but_identities() {
        let view = user(Role::View);
        assert_eq!(
            authorize(
                &view,
                &Action::new(Verb::List, "services").namespace("default")
            ),
            Ok(())
        );
        assert_eq!(authorize(&view, &Action::new(Verb::Watch, "nodes")), Ok(()));
        assert_eq!(
            authorize(&view, &create_web()),
            Err("services is forbidden: User \"bob\" cannot create resource \"services\" in API group \"\" in the namespace \"default\"".to_string())
        );
        assert_eq!(
            authorize(&view, &Action::new(Verb::List, "tokens")),
            Err("tokens.switchyard.io is forbidden: User \"bob\" cannot list resource \"tokens\" in API group \"switchyard.io\" at the cluster scope".to_string())
        );
        let forward = Action::new(Verb::Create, "pods/portforward")
            .namespace("default")
            .name("web-1");
        assert!(authorize(&view, &forward).is_err());
    }

    #[test]
    fn nodes_act_only_as_themselves() {
        let n1 = node("node-1");
        let register = |n| Action::new(Verb::Update, "nodes/status").name(n).of_node(n);
        assert_eq!(authorize(&n1, &register("node-1")), Ok(()));
        assert_eq!(
            authorize(&n1, &register("node-2")),
            Err("nodes \"node-2\" is forbidden: User \"node:node-1\" cannot update resource \"nodes/status\" in API group \"\" at the cluster scope: a node may only act as itself".to_string())
        );
        let ready = Action::new(Verb::Update, "pods/status")
            .namespace("default")
            .name("web-2");
        assert_eq!(authorize(&n1, &ready.of_node("node-1")), Ok(()));
        assert!(authorize(&n1, &ready.of_node("node-2")).is_err());
        assert!(authorize(&n1, &ready).is_err(), "a pod bound to no node");
        assert!(authorize(&n1, &Action::new(Verb::List, "services")).is_err());
        assert!(authorize(&n1, &create_web()).is_err());
    }

    #[test]
    fn no_user_acts_as_a_node_and_nobody_does_anything() {
        let tunnel = Action::new(Verb::Create, "nodes/tunnel")
            .name("node-1")
            .of_node("node-1");
        assert_eq!(
            authorize(&user(Role::Admin), &tunnel),
            Err("nodes \"node-1\" is forbidden: User \"bob\" cannot create resource \"nodes/tunnel\" in API group \"\" at the cluster scope: only a node's own identity may".to_string())
        );
        assert!(authorize(&Principal::Anonymous, &Action::new(Verb::Get, "services")).is_err());
        assert_eq!(authorize(&Principal::Insecure, &tunnel), Ok(()));
    }

    /// NodeRestriction's rows: (verb, pod as sent, pod as stored) → the
    /// answer to node-1, word for word.
    #[test]
    fn nodes_write_only_their_own_mirror_pods() {
        let n1 = node("node-1");
        let mirror = |node| PodFacts {
            node_name: node,
            mirror: true,
        };
        let plain = |node| PodFacts {
            node_name: node,
            mirror: false,
        };
        let refused = |why: &str| Err(format!("pods \"web-1\" is forbidden: {why}"));
        let not_mirror = "pod does not have \"kubernetes.io/config.mirror\" annotation, node \"node-1\" can only create mirror pods";
        let not_bound = "node \"node-1\" can only create pods with spec.nodeName set to itself";
        let update =
            "node \"node-1\" can only update pod status for pods with spec.nodeName set to itself";
        let delete_other = "node \"node-1\" can only delete pods with spec.nodeName set to itself";
        let delete_plain = "pod does not have \"kubernetes.io/config.mirror\" annotation, node \"node-1\" can only delete mirror pods";
        type Row<'a> = (
            Verb,
            Option<PodFacts<'a>>,
            Option<PodFacts<'a>>,
            Result<(), String>,
        );
        let rows: Vec<Row> = vec![
            (Verb::Create, Some(mirror("node-1")), None, Ok(())),
            (
                Verb::Create,
                Some(plain("node-1")),
                None,
                refused(not_mirror),
            ),
            (
                Verb::Create,
                Some(plain("node-2")),
                None,
                refused(not_mirror),
            ),
            (
                Verb::Create,
                Some(mirror("node-2")),
                None,
                refused(not_bound),
            ),
            (Verb::Create, Some(mirror("")), None, refused(not_bound)),
            (Verb::Create, None, None, refused(not_bound)),
            (
                Verb::Patch,
                Some(mirror("node-1")),
                Some(mirror("node-1")),
                Ok(()),
            ),
            (
                Verb::Update,
                Some(mirror("node-1")),
                Some(mirror("node-1")),
                Ok(()),
            ),
            (
                Verb::Patch,
                Some(mirror("node-1")),
                Some(plain("node-1")),
                refused(update),
            ),
            (
                Verb::Patch,
                Some(plain("node-1")),
                Some(mirror("node-1")),
                refused(update),
            ),
            (
                Verb::Patch,
                Some(mirror("node-1")),
                Some(mirror("node-2")),
                refused(update),
            ),
            (
                Verb::Patch,
                Some(mirror("node-2")),
                Some(mirror("node-1")),
                refused(update),
            ),
            (Verb::Patch, Some(mirror("node-1")), None, refused(update)),
            (Verb::Delete, None, Some(mirror("node-1")), Ok(())),
            (Verb::Delete, None, None, Ok(())),
            (
                Verb::Delete,
                None,
                Some(mirror("node-2")),
                refused(delete_other),
            ),
            (
                Verb::Delete,
                None,
                Some(plain("node-2")),
                refused(delete_other),
            ),
            (
                Verb::Delete,
                None,
                Some(plain("node-1")),
                refused(delete_plain),
            ),
        ];
        for (verb, pod, stored, answer) in rows {
            let mut action = Action::new(verb, "pods")
                .namespace("default")
                .name("web-1")
                .stored(stored);
            action.pod = pod;
            assert_eq!(
                authorize(&n1, &action),
                answer,
                "{verb:?} {pod:?} {stored:?}"
            );
        }
        // Reads: only a list narrowed to its own pods.
        let list = Action::new(Verb::List, "pods").namespace("default");
        assert_eq!(authorize(&n1, &list.of_node("node-1")), Ok(()));
        assert_eq!(
            authorize(&n1, &list.of_node("node-2")),
            Err("pods is forbidden: User \"node:node-1\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"".to_string())
        );
        assert!(authorize(&n1, &list).is_err());
        assert!(authorize(
            &n1,
            &Action::new(Verb::Get, "pods")
                .name("web-1")
                .of_node("node-1")
        )
        .is_err());
        assert!(authorize(&n1, &Action::new(Verb::Watch, "pods").of_node("node-1")).is_err());
        // The rows are NodeRestriction's alone: users are judged by role.
        let mut sent = Action::new(Verb::Create, "pods")
            .namespace("default")
            .name("web-1");
        sent.pod = Some(plain("node-2"));
        assert_eq!(authorize(&user(Role::Admin), &sent), Ok(()));
        assert!(authorize(&user(Role::View), &sent).is_err());
    }
}
