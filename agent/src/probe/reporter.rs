//! Delivers Ready transitions to the control plane, retrying while it is
//! unreachable; only the latest state per pod matters.

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_api::v1::agent_sync_client::AgentSyncClient;
use switchyard_api::v1::PodReadiness;
use tokio::sync::mpsc;

use crate::connection::Channels;

use super::prober::Transition;

pub struct Reporter {
    node: String,
    channels: Channels,
}

impl Reporter {
    pub fn new(node: String, channels: Channels) -> Self {
        Self { node, channels }
    }

    /// Runs until the transition channel closes.
    pub async fn run(mut self, mut transitions: mpsc::Receiver<Transition>) {
        let mut pending: BTreeMap<(String, String), bool> = BTreeMap::new();
        loop {
            if pending.is_empty() {
                match transitions.recv().await {
                    Some((ns, name, ready)) => {
                        pending.insert((ns, name), ready);
                    }
                    None => return,
                }
            }
            while let Ok((ns, name, ready)) = transitions.try_recv() {
                pending.insert((ns, name), ready);
            }
            self.flush(&mut pending).await;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    async fn flush(&mut self, pending: &mut BTreeMap<(String, String), bool>) {
        let batch: Vec<((String, String), bool)> =
            pending.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let mut client = AgentSyncClient::new(self.channels.borrow().clone());
        for ((namespace, name), ready) in batch {
            let req = PodReadiness {
                node_name: self.node.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                ready,
            };
            match client.report_pod_readiness(req).await {
                Ok(_) => {
                    pending.remove(&(namespace, name));
                }
                Err(status) if status.code() == tonic::Code::NotFound => {
                    // The pod is gone: nothing left to report.
                    pending.remove(&(namespace, name));
                }
                Err(status) => {
                    tracing::warn!(pod = %name, error = %status.message(), "cannot report readiness; will retry");
                    return;
                }
            }
        }
    }
}
