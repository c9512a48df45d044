//! Renewal: at about 80% of its certificate's lifetime the agent makes a
//! new key and asks for a fresh certificate, authenticated by the current
//! one, stores it, and swaps in a channel that presents it. Open streams
//! stay where they are, so nothing reconnects and nothing blips.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use switchyard_api::v1::identity_client::IdentityClient;
use switchyard_api::v1::CertificateRequest;
use switchyard_tls::client::Target;
use tokio::sync::watch;
use tonic::transport::Channel;

use super::state::NodeCredentials;

/// Retries are spaced by a tenth of what is left, within these bounds.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Renews forever, replacing `channels`' value after each renewal.
pub async fn run(
    target: Target,
    state_dir: PathBuf,
    mut creds: NodeCredentials,
    channels: watch::Sender<Channel>,
) {
    loop {
        let due = creds
            .info
            .renew_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(due).await;
        loop {
            let channel = channels.borrow().clone();
            match renew(&creds, &channel).await {
                Ok(new) => {
                    if let Err(e) = install(&target, &state_dir, &new, &channels) {
                        tracing::error!(error = %e, "cannot use the renewed certificate; keeping the current one");
                    } else {
                        let not_after = humantime::format_rfc3339_seconds(new.info.not_after);
                        tracing::info!(serial = %new.info.serial, %not_after, "renewed the node certificate");
                        creds = new;
                    }
                    break;
                }
                Err(e) => {
                    let left = creds
                        .info
                        .not_after
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    let retry = (left / 10).clamp(RETRY_MIN, RETRY_MAX);
                    tracing::warn!(error = %e, ?left, ?retry, "renewing the node certificate failed");
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The control plane no longer takes the current certificate.
    #[error("{0}")]
    Revoked(String),
    #[error("{0}")]
    Failed(String),
}

/// Trades a new key's CSR for a fresh certificate over `channel`, which
/// must present the current one.
pub async fn renew(
    creds: &NodeCredentials,
    channel: &Channel,
) -> Result<NodeCredentials, RenewError> {
    let failed = |e: &dyn std::fmt::Display| RenewError::Failed(e.to_string());
    let node = creds.node_name().unwrap_or_default();
    let key = switchyard_tls::csr::generate(&format!("node:{node}")).map_err(|e| failed(&e))?;
    let mut client = IdentityClient::new(channel.clone());
    let call = client.renew_node_certificate(CertificateRequest {
        csr_pem: key.csr_pem,
    });
    let issued = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| failed(&"the control plane did not answer"))?
        .map_err(|status| match status.code() {
            tonic::Code::Unauthenticated => RenewError::Revoked(status.message().to_string()),
            _ => failed(&status.message()),
        })?
        .into_inner();
    NodeCredentials::new(issued.certificate_pem, key.key_pem, issued.ca_pem).map_err(|e| failed(&e))
}

/// Stores the new credentials and makes them the ones new calls use.
fn install(
    target: &Target,
    state_dir: &std::path::Path,
    creds: &NodeCredentials,
    channels: &watch::Sender<Channel>,
) -> Result<(), String> {
    let tls = creds.client_config().map_err(|e| e.to_string())?;
    let channel = crate::connection::channel(target, Some(tls)).map_err(|e| e.to_string())?;
    creds.save(state_dir).map_err(|e| e.to_string())?;
    channels.send_replace(channel);
    Ok(())
}
