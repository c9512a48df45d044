//! Who a caller is. A connection's certificate was checked against the CA
//! once, at the handshake ([`Peer`]); per request the store says whether
//! that certificate may still be used (revocation is deleting the User or
//! Node that lists it) and what role a user holds.

use std::net::SocketAddr;
use std::time::SystemTime;

use switchyard_api::resources::{Kind, Object};
use switchyard_tls::certificate::CertificateInfo;
use switchyard_tls::server::Peer;

use crate::registry::state::State;

/// Node certificates name `node:<name>`.
pub const NODE_PREFIX: &str = "node:";
/// The organization of node certificates.
pub const NODES_GROUP: &str = "switchyard:nodes";
/// Control planes name themselves `control-plane:<name>` to each other.
pub const CONTROL_PLANE_PREFIX: &str = "control-plane:";
/// The organization of control planes' certificates.
pub const CONTROL_PLANES_GROUP: &str = "switchyard:control-planes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May do everything an operator does.
    Admin,
    /// May get, list, watch and read environments.
    View,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "view" => Some(Role::View),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::View => "view",
        }
    }

    /// The organization written into this role's certificates.
    pub fn group(self) -> String {
        format!("switchyard:{}", self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        name: String,
        role: Role,
    },
    Node {
        name: String,
    },
    /// Another control plane of the same store, passing a port-forward on.
    ControlPlane {
        name: String,
    },
    /// No certificate: it may only join.
    Anonymous,
    /// A host joining with the token of this id (named in the audit log).
    Bootstrap {
        token: String,
    },
    /// `--insecure`: nobody is checked.
    Insecure,
}

impl Principal {
    /// The name refusals and audit events give: `alice`, `node:node-1`.
    pub fn username(&self) -> String {
        match self {
            Principal::User { name, .. } => name.clone(),
            Principal::Node { name } => format!("{NODE_PREFIX}{name}"),
            Principal::ControlPlane { name } => format!("system:{CONTROL_PLANE_PREFIX}{name}"),
            Principal::Anonymous => "system:anonymous".to_string(),
            Principal::Bootstrap { token } => format!("system:bootstrap:{token}"),
            Principal::Insecure => "system:insecure".to_string(),
        }
    }

    pub fn groups(&self) -> Vec<String> {
        match self {
            Principal::User { role, .. } => vec![role.group()],
            Principal::Node { .. } => vec![NODES_GROUP.to_string()],
            Principal::ControlPlane { .. } => vec![CONTROL_PLANES_GROUP.to_string()],
            Principal::Anonymous => vec!["system:unauthenticated".to_string()],
            Principal::Bootstrap { .. } => vec!["system:bootstrappers".to_string()],
            Principal::Insecure => Vec::new(),
        }
    }

    /// Whether a certificate (or `--insecure`) vouches for the caller.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Principal::Anonymous | Principal::Bootstrap { .. })
    }

    /// The node a node identity is.
    pub fn node(&self) -> Option<&str> {
        match self {
            Principal::Node { name } => Some(name),
            _ => None,
        }
    }
}

/// A request's caller, put into the request by the edge layer.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub remote: Option<SocketAddr>,
}

impl Caller {
    /// The caller the edge layer recorded; without one (a request that did
    /// not pass the layer) nobody, who may do nothing.
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::nobody)
    }

    fn nobody() -> Caller {
        Caller {
            principal: Principal::Anonymous,
            remote: None,
        }
    }

    /// The caller recorded in a request's extensions (gRPC or REST).
    pub fn in_extensions(extensions: &http::Extensions) -> Caller {
        extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::nobody)
    }
}

/// Who a connection's peer is right now, or why it is not anyone.
pub fn authenticate(peer: &Peer, state: &State, now: SystemTime) -> Result<Principal, String> {
    match peer {
        Peer::Anonymous => Ok(Principal::Anonymous),
        Peer::Refused(reason) => Err(reason.clone()),
        Peer::Certified(info) => certified(info, state, now),
    }
}

/// Whether the store no longer lists `peer`'s certificate. Expiry is not
/// revocation: a stream opened while its certificate was valid lives on
/// (as kube-apiserver's do), and a renewed agent keeps its streams.
pub fn is_revoked(peer: &Peer, state: &State) -> bool {
    match peer {
        Peer::Certified(info) => listed(info, state).is_err(),
        Peer::Anonymous | Peer::Refused(_) => false,
    }
}

fn certified(info: &CertificateInfo, state: &State, now: SystemTime) -> Result<Principal, String> {
    if info.is_expired(now) {
        return Err("the certificate has expired".to_string());
    }
    listed(info, state)
}

/// The principal whose User or Node lists this certificate, or the
/// control plane it names (which no object lists: the CA that signed it is
/// every control plane's).
fn listed(info: &CertificateInfo, state: &State) -> Result<Principal, String> {
    let revoked = || Err("the certificate was revoked".to_string());
    if let Some(name) = info.common_name.strip_prefix(CONTROL_PLANE_PREFIX) {
        if info.organizations.iter().any(|o| o == CONTROL_PLANES_GROUP) {
            return Ok(Principal::ControlPlane {
                name: name.to_string(),
            });
        }
        return revoked();
    }
    match info.common_name.strip_prefix(NODE_PREFIX) {
        Some(node) => match state.get(Kind::Node, node).map(|o| &**o) {
            Some(Object::Node(n))
                if n.status
                    .certificates
                    .iter()
                    .any(|c| c.serial_number == info.serial) =>
            {
                Ok(Principal::Node {
                    name: node.to_string(),
                })
            }
            _ => revoked(),
        },
        None => match state.get(Kind::User, &info.common_name).map(|o| &**o) {
            Some(Object::User(u))
                if u.status
                    .certificate
                    .as_ref()
                    .is_some_and(|c| c.serial_number == info.serial) =>
            {
                let role = Role::parse(&u.spec.role).ok_or("the user has no known role")?;
                Ok(Principal::User {
                    name: info.common_name.clone(),
                    role,
                })
            }
            _ => revoked(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use switchyard_api::resources::{IssuedCertificate, Node, ObjectMeta, User};

    use super::*;

    fn info(cn: &str, serial: &str, not_after: SystemTime) -> Peer {
        Peer::Certified(CertificateInfo {
            common_name: cn.to_string(),
            organizations: Vec::new(),
            serial: serial.to_string(),
            not_before: SystemTime::UNIX_EPOCH,
            not_after,
        })
    }

    fn issued(serial: &str) -> IssuedCertificate {
        IssuedCertificate {
            serial_number: serial.to_string(),
            not_after: String::new(),
        }
    }

    fn state() -> State {
        let mut state = State::default();
        let mut user = User {
            metadata: ObjectMeta {
                name: "alice".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        user.spec.role = "view".into();
        user.status.certificate = Some(issued("a1"));
        let mut node = Node {
            metadata: ObjectMeta {
                name: "node-1".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        node.status.certificates = vec![issued("n1"), issued("n2")];
        let users = state.objects.entry(Kind::User).or_default();
        users.insert("alice".into(), Arc::new(Object::User(Box::new(user))));
        let nodes = state.objects.entry(Kind::Node).or_default();
        nodes.insert("node-1".into(), Arc::new(Object::Node(Box::new(node))));
        state
    }

    #[test]
    fn a_live_certificate_names_its_user_or_node() {
        let (s, now) = (state(), SystemTime::UNIX_EPOCH + Duration::from_secs(10));
        let later = now + Duration::from_secs(1);
        assert_eq!(
            authenticate(&info("alice", "a1", later), &s, now),
            Ok(Principal::User {
                name: "alice".into(),
                role: Role::View
            })
        );
        assert_eq!(
            authenticate(&info("node:node-1", "n2", later), &s, now),
            Ok(Principal::Node {
                name: "node-1".into()
            })
        );
        assert_eq!(
            authenticate(&Peer::Anonymous, &s, now),
            Ok(Principal::Anonymous)
        );
    }

    #[test]
    fn revoked_expired_and_foreign_certificates_name_nobody() {
        let (s, now) = (state(), SystemTime::UNIX_EPOCH + Duration::from_secs(10));
        let later = now + Duration::from_secs(1);
        let revoked = Err("the certificate was revoked".to_string());
        assert_eq!(authenticate(&info("alice", "zz", later), &s, now), revoked);
        assert_eq!(authenticate(&info("bob", "a1", later), &s, now), revoked);
        assert_eq!(
            authenticate(&info("node:node-2", "n1", later), &s, now),
            revoked
        );
        assert_eq!(
            authenticate(&info("alice", "a1", now), &s, now),
            Err("the certificate has expired".to_string())
        );
        assert_eq!(
            authenticate(&Peer::Refused("UnknownIssuer".into()), &s, now),
            Err("UnknownIssuer".to_string())
        );
    }

    #[test]
    fn expiry_is_not_revocation() {
        let s = state();
        let expired = info("alice", "a1", SystemTime::UNIX_EPOCH);
        assert!(!is_revoked(&expired, &s));
        assert!(is_revoked(&info("alice", "zz", SystemTime::UNIX_EPOCH), &s));
    }
}
