use serde::{Deserialize, Serialize};

use super::{IssuedCertificate, ObjectMeta};

/// A host running `switchyard-agent`; registered by the agent itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(default)]
    pub status: NodeStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(rename = "podCIDR", default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// One per family, `podCIDR` first.
    #[serde(
        rename = "podCIDRs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::compact::vec"
    )]
    pub pod_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[serde(default, deserialize_with = "super::compact::vec")]
    pub addresses: Vec<NodeAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Snapshot sync state as the control plane sees it: SYNCED, STALE,
    /// NACKED or DISCONNECTED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_state: Option<String>,
    /// The snapshot version this node's agent last acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The certificates this node may authenticate with, kept by the
    /// control plane (join and renewal add one, expiry prunes them);
    /// deleting the Node revokes them all.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::compact::vec"
    )]
    pub certificates: Vec<IssuedCertificate>,
    /// `Ready` while the node's agent is heard from (kept by the leading
    /// control plane's node lifecycle controller).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::compact::vec"
    )]
    pub conditions: Vec<NodeCondition>,
}

/// Kubernetes' NodeCondition. Only `Ready` is kept; `lastHeartbeatTime` is
/// filled in when the node is read (heartbeats are never stored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Node {
    pub fn ready_condition(&self) -> Option<&NodeCondition> {
        self.status.conditions.iter().find(|c| c.type_ == "Ready")
    }

    /// `Some(true)` when Ready, `Some(false)` when judged not ready (False
    /// or Unknown), `None` before any judgement.
    pub fn is_ready(&self) -> Option<bool> {
        self.ready_condition().map(|c| c.status == "True")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub type_: String,
    pub address: String,
}
