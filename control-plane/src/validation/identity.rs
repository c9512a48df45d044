//! Users and bootstrap tokens. The server writes these itself, from
//! `swctl create user|token`; validation keeps a stored object sound
//! however it got there.

use switchyard_api::resources::{BootstrapToken, User};

use super::common::{self, non_empty, Scope};
use super::field::{FieldError, FieldErrors};
use super::names;

pub(super) fn user(u: &User) -> FieldErrors {
    let mut errs = FieldErrors::default();
    common::object_meta(
        &mut errs,
        &u.metadata,
        Scope::Cluster,
        names::dns1123_subdomain,
    );
    if !matches!(u.spec.role.as_str(), "admin" | "view") {
        errs.push(FieldError::not_supported(
            "spec.role",
            u.spec.role.as_str(),
            &["admin", "view"],
        ));
    }
    errs
}

pub(super) fn bootstrap_token(t: &BootstrapToken) -> FieldErrors {
    let mut errs = FieldErrors::default();
    common::object_meta(&mut errs, &t.metadata, Scope::Cluster, token_id);
    if let Some(node) = non_empty(t.spec.node_name.as_deref()) {
        common::invalid_each(
            &mut errs,
            "spec.nodeName",
            node,
            names::dns1123_subdomain(node),
        );
    }
    if chrono::DateTime::parse_from_rfc3339(&t.spec.expires).is_err() {
        errs.push(FieldError::invalid(
            "spec.expires",
            t.spec.expires.as_str(),
            "must be an RFC 3339 time",
        ));
    }
    errs
}

fn token_id(id: &str) -> Vec<String> {
    let shaped = id.len() == 6
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if shaped {
        Vec::new()
    } else {
        vec!["must be 6 characters of [a-z0-9]".to_string()]
    }
}
