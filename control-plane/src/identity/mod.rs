//! Issuing identities: nodes joining with bootstrap tokens and renewing
//! their certificates, users' certificates, join tokens, and the admin
//! credentials the control plane writes for itself (`admin.conf`).
//!
//! Revocation is the store's: a certificate authenticates only while the
//! User or Node it was issued to lists its serial, so deleting the object
//! revokes it, and a certificate signed for a join that then lost a race
//! for its token is worth nothing.

pub mod admin;
pub mod peer;
pub mod service;
pub mod token;

use std::sync::Weak;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_api::resources::{IssuedCertificate, Kind, Node, Object};

pub use service::IdentityApi;

use crate::pki::Issued;
use crate::registry::{stamp_identity, Registry, Txn};
use crate::selector::Selector;

/// How long an expired token is kept (so a late join hears "token
/// expired", not "unknown token") before it is deleted.
const EXPIRED_TOKEN_GRACE: Duration = Duration::from_secs(3600);
const TOKEN_SWEEP: Duration = Duration::from_secs(60);

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn record_of(issued: &Issued) -> IssuedCertificate {
    IssuedCertificate {
        serial_number: issued.info.serial.clone(),
        not_after: rfc3339(DateTime::<Utc>::from(issued.info.not_after)),
    }
}

fn expired(not_after: &str, now: DateTime<Utc>) -> bool {
    DateTime::parse_from_rfc3339(not_after).is_ok_and(|t| t <= now)
}

/// Adds `issued` to the node's certificates (made if absent), dropping
/// those that expired: they authenticate nobody any more.
pub fn record_node_certificate(
    txn: &mut Txn<'_>,
    node: &str,
    issued: IssuedCertificate,
    now: DateTime<Utc>,
) {
    let mut obj = match txn.get(Kind::Node, node) {
        Some(obj @ Object::Node(_)) => obj,
        _ => {
            let mut n = Node::default();
            n.metadata.name = node.to_string();
            let mut obj = Object::Node(Box::new(n)).with_type_meta();
            stamp_identity(&mut obj, None);
            obj
        }
    };
    if let Object::Node(n) = &mut obj {
        n.status
            .certificates
            .retain(|c| !expired(&c.not_after, now));
        n.status.certificates.push(issued);
    }
    txn.put(obj);
}

/// Deletes tokens that expired more than an hour ago, once a minute
/// (Kubernetes' token cleaner), for as long as the registry lives: it is
/// held weakly, so the sweep never keeps a stopped server's store open.
pub async fn sweep_expired_tokens(registry: Weak<Registry>) {
    let mut tick = tokio::time::interval(TOKEN_SWEEP);
    loop {
        tick.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        // Once per cluster: the leader sweeps.
        if !registry.is_leader() {
            continue;
        }
        let cutoff =
            Utc::now() - chrono::Duration::from_std(EXPIRED_TOKEN_GRACE).unwrap_or_default();
        let (tokens, _) = registry.list(Kind::BootstrapToken, None, &Selector::default());
        for t in tokens {
            let Object::BootstrapToken(t) = t else {
                continue;
            };
            if expired(&t.spec.expires, cutoff) {
                match registry
                    .delete_as_leader(Kind::BootstrapToken, "", &t.metadata.name)
                    .await
                {
                    Ok(_) => {
                        tracing::info!(token = %t.metadata.name, "deleted an expired join token")
                    }
                    Err(e) => {
                        tracing::warn!(token = %t.metadata.name, error = %e, "cannot delete an expired join token")
                    }
                }
            }
        }
    }
}
