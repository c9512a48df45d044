//! Authorization: one pure table of who may do what, in Kubernetes' terms
//! (RBAC's view/admin roles, the Node authorizer with NodeRestriction).
//!
//! | principal | may |
//! | --- | --- |
//! | `admin` user | every verb on every user-facing resource |
//! | `view` user | get, list, watch every resource but `users` and `tokens` |
//! | `node:<name>` | the node resources ([`NODE_RESOURCES`]) of node `<name>` only |
//! | nobody | nothing (the join call is checked by its token instead) |
//!
//! Node resources are the agent's: registering and streaming
//! (`nodes/status`), readiness of the pods bound to it (`pods/status`), its
//! tunnel (`nodes/tunnel`) and its certificate (`certificatesigningrequests`).
//! No user may act as a node, and a node reads nothing else: the snapshot
//! stream carries all its data path and DNS need.

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
    /// itself, or the node a pod is bound to).
    pub node: Option<&'a str>,
}

impl<'a> Action<'a> {
    pub fn new(verb: Verb, resource: &'a str) -> Self {
        Self {
            verb,
            resource,
            namespace: None,
            name: None,
            node: None,
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

/// `services "web" is forbidden: User "bob" cannot create resource "services" in namespace "default"`.
fn forbidden(principal: &Principal, action: &Action<'_>, reason: Option<&str>) -> String {
    let object = match action.name {
        Some(name) => format!("{} \"{name}\"", action.resource),
        None => action.resource.to_string(),
    };
    let scope = match action.namespace {
        Some(ns) => format!("in namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut message = format!(
        "{object} is forbidden: User \"{}\" cannot {} resource \"{}\" {scope}",
        principal.username(),
        action.verb.as_str(),
        action.resource
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
            Err("services \"web\" is forbidden: User \"system:control-plane:cp-2\" cannot create resource \"services\" in namespace \"default\"".to_string())
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
            Err("services \"web\" is forbidden: User \"bob\" cannot create resource \"services\" in namespace \"default\"".to_string())
        );
        assert_eq!(
            authorize(&view, &Action::new(Verb::List, "tokens")),
            Err("tokens is forbidden: User \"bob\" cannot list resource \"tokens\" at the cluster scope".to_string())
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
            Err("nodes/status \"node-2\" is forbidden: User \"node:node-1\" cannot update resource \"nodes/status\" at the cluster scope: a node may only act as itself".to_string())
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
            Err("nodes/tunnel \"node-1\" is forbidden: User \"bob\" cannot create resource \"nodes/tunnel\" at the cluster scope: only a node's own identity may".to_string())
        );
        assert!(authorize(&Principal::Anonymous, &Action::new(Verb::Get, "services")).is_err());
        assert_eq!(authorize(&Principal::Insecure, &tunnel), Ok(()));
    }
}
