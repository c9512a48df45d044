//! A control plane's identity towards the others on its store: a client
//! certificate `control-plane:<name>` of the shared CA, made at every start
//! and held in memory only. It is not listed in the store (every control
//! plane holds the CA key that could make one anyway), and it may do one
//! thing: pass a port-forward on (see `auth::policy`).

use std::sync::Arc;
use std::time::Duration;

use switchyard_tls::client::{ClientIdentity, Trust};

use crate::auth::principal::{CONTROL_PLANES_GROUP, CONTROL_PLANE_PREFIX};
use crate::pki::{Ca, PkiError, Subject, Usage};

/// Long enough to outlive any one run; it is made afresh at each start.
const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

pub fn client_config(ca: &Ca, name: &str) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let subject = Subject {
        common_name: format!("{CONTROL_PLANE_PREFIX}{name}"),
        organization: CONTROL_PLANES_GROUP.to_string(),
    };
    let (issued, key) = ca.issue_with_key(&subject, &Usage::Client, LIFETIME)?;
    let identity = ClientIdentity::from_pem(&issued.pem, &key.serialize_pem(), "control plane")?;
    Ok(switchyard_tls::client::config(
        Trust::Ca(ca.der().clone()),
        Some(identity),
    )?)
}
