//! One module per swctl command. Each returns `Ok(true)` when everything it
//! was asked succeeded, `Ok(false)` when it reported per-object errors on
//! stderr (kubectl goes on past those and exits 1).

pub mod apply;
pub mod config;
pub mod create;
pub mod delete;
pub mod describe;
pub mod env;
pub mod expose;
pub mod get;
pub mod port_forward;

use switchyard_api::resources::{Kind, Object};

/// kubectl's `service/frontend-svc` naming.
pub fn qualified_name(obj: &Object) -> String {
    format!("{}/{}", obj.kind().singular(), obj.name())
}

/// Splits `KIND/NAME`.
pub fn split_kind_name(s: &str) -> Option<(&str, &str)> {
    s.split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
}

pub fn parse_kind(s: &str) -> anyhow::Result<Kind> {
    Ok(s.parse::<Kind>()?)
}
