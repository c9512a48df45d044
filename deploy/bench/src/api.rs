//! A thin gRPC client for the control plane's API, returning what the
//! benchmarks need: the revision each write committed at.

use std::sync::Arc;

use anyhow::anyhow;
use serde_json::Value;
use switchyard_api::v1::agent_sync_client::AgentSyncClient;
use switchyard_api::v1::resources_client::ResourcesClient;
use switchyard_api::v1::{ApplyRequest, ListRequest, ObjectRef, PodReadiness, Resource};
use tonic::transport::Channel;

use crate::identity::Identities;

const MAX_MESSAGE: usize = 512 * 1024 * 1024;

/// Writes and reads as admin; readiness as the pod's node.
#[derive(Clone)]
pub struct Api {
    resources: ResourcesClient<Channel>,
    ids: Arc<Identities>,
}

impl Api {
    pub async fn new(ids: Arc<Identities>) -> anyhow::Result<Api> {
        let channel = ids.admin().await?;
        Ok(Api {
            resources: ResourcesClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            ids,
        })
    }

    /// Applies an object and returns the revision it was stored at.
    pub async fn apply(&mut self, obj: &Value) -> anyhow::Result<u64> {
        let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
        let resp = self
            .resources
            .apply(ApplyRequest {
                resource: Some(Resource {
                    kind,
                    json: obj.to_string(),
                }),
                create_only: false,
            })
            .await?
            .into_inner();
        let stored: Value = serde_json::from_str(
            &resp
                .resource
                .ok_or_else(|| anyhow!("apply returned no object"))?
                .json,
        )?;
        resource_version(&stored)
    }

    /// Deletes an object; returns the store revision right after (the
    /// suite writes one change at a time, so that is the delete's revision).
    pub async fn delete(&mut self, kind: &str, namespace: &str, name: &str) -> anyhow::Result<u64> {
        self.resources
            .delete(object_ref(kind, namespace, name))
            .await?;
        self.revision().await
    }

    /// The store's current revision, read through a cheap list.
    pub async fn revision(&mut self) -> anyhow::Result<u64> {
        Ok(self.list("Namespace").await?.1)
    }

    /// Lists every object of `kind` in all namespaces: (count, revision).
    pub async fn list(&mut self, kind: &str) -> anyhow::Result<(usize, u64)> {
        let resp = self
            .resources
            .list(ListRequest {
                kind: kind.to_owned(),
                all_namespaces: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok((resp.items.len(), resp.resource_version))
    }

    pub async fn get(&mut self, kind: &str, namespace: &str, name: &str) -> anyhow::Result<Value> {
        let r = self
            .resources
            .get(object_ref(kind, namespace, name))
            .await?
            .into_inner();
        Ok(serde_json::from_str(&r.json)?)
    }

    /// Reports a pod's readiness the way its node's agent does (with that
    /// node's certificate); returns the revision of the resulting write.
    pub async fn set_ready(
        &mut self,
        namespace: &str,
        pod: &str,
        node: &str,
        ready: bool,
    ) -> anyhow::Result<u64> {
        AgentSyncClient::new(self.ids.node(node).await?)
            .report_pod_readiness(PodReadiness {
                node_name: node.to_owned(),
                namespace: namespace.to_owned(),
                name: pod.to_owned(),
                ready,
            })
            .await?;
        resource_version(&self.get("Pod", namespace, pod).await?)
    }

    /// The snapshot version a node last ACKed (0 when none).
    pub async fn node_applied(&mut self, node: &str) -> anyhow::Result<u64> {
        let n = self.get("Node", "", node).await?;
        Ok(n["status"]["appliedVersion"].as_u64().unwrap_or(0))
    }
}

fn object_ref(kind: &str, namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn resource_version(obj: &Value) -> anyhow::Result<u64> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("stored object has no resourceVersion"))
}
