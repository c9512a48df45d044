use serde::{Deserialize, Serialize};

use super::{IntOrString, Labels, ObjectMeta};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "ServiceStatus::is_empty")]
    pub status: ServiceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Labels>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::compact::vec"
    )]
    pub ports: Vec<ServicePort>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(rename = "clusterIP", default, skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    #[serde(
        rename = "clusterIPs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::compact::vec"
    )]
    pub cluster_ips: Vec<String>,
    #[serde(
        rename = "externalIPs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::compact::vec"
    )]
    pub external_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<bool>,
    #[serde(
        rename = "loadBalancerIP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::compact::vec"
    )]
    pub load_balancer_source_ranges: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_node_port: Option<i32>,
    /// `false`: a LoadBalancer Service gets no NodePorts it did not ask
    /// for (its LB IPs are served all the same); defaults to `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate_load_balancer_node_ports: Option<bool>,
    /// `PreferClose`/`PreferSameZone` or `PreferSameNode`: endpoints are
    /// hinted for their zone (and node), and agents prefer the ones hinted
    /// for theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
    /// Kubernetes fields Switchyard does not act on, kept as sent, so an
    /// object reads back as written and a manifest re-applies unchanged.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub kept: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinityConfig {
    #[serde(rename = "clientIP", default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
}

impl ServiceStatus {
    pub fn is_empty(&self) -> bool {
        self.load_balancer.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    #[serde(default, deserialize_with = "super::compact::vec")]
    pub ingress: Vec<LoadBalancerIngress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIngress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Service types, protocols and policies as Kubernetes spells them.
/// `spec.trafficDistribution` values.
pub mod traffic_distribution {
    pub const PREFER_CLOSE: &str = "PreferClose";
    pub const PREFER_SAME_ZONE: &str = "PreferSameZone";
    pub const PREFER_SAME_NODE: &str = "PreferSameNode";
    pub const ALL: &[&str] = &[PREFER_CLOSE, PREFER_SAME_NODE, PREFER_SAME_ZONE];
}

pub mod service_type {
    pub const CLUSTER_IP: &str = "ClusterIP";
    pub const NODE_PORT: &str = "NodePort";
    pub const LOAD_BALANCER: &str = "LoadBalancer";
    pub const EXTERNAL_NAME: &str = "ExternalName";
}

impl Service {
    /// The type with Kubernetes' default applied.
    pub fn service_type(&self) -> &str {
        self.spec
            .type_
            .as_deref()
            .unwrap_or(service_type::CLUSTER_IP)
    }

    pub fn is_headless(&self) -> bool {
        self.spec.cluster_ip.as_deref() == Some("None")
    }

    /// `spec.ipFamilies` as written (a field Switchyard keeps as given
    /// beside the typed ones); a value that is no string is shown as JSON.
    pub fn ip_family_names(&self) -> Vec<String> {
        self.spec
            .kept
            .get("ipFamilies")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect()
    }

    /// Whether missing NodePorts are allocated: for NodePort Services, and
    /// LoadBalancer ones unless `allocateLoadBalancerNodePorts: false`.
    pub fn allocates_node_ports(&self) -> bool {
        match self.service_type() {
            service_type::NODE_PORT => true,
            service_type::LOAD_BALANCER => {
                self.spec.allocate_load_balancer_node_ports != Some(false)
            }
            _ => false,
        }
    }

    /// Whether this type is reachable on node ports (NodePort and LoadBalancer).
    pub fn has_node_ports(&self) -> bool {
        matches!(
            self.service_type(),
            service_type::NODE_PORT | service_type::LOAD_BALANCER
        )
    }

    /// Whether traffic can arrive from outside (node ports, external IPs):
    /// only then is there an external traffic policy to follow.
    pub fn is_externally_accessible(&self) -> bool {
        self.has_node_ports()
            || (self.service_type() == service_type::CLUSTER_IP
                && !self.spec.external_ips.is_empty())
    }

    /// Only a LoadBalancer with the Local external policy has a health
    /// check port: cloud load balancers probe it to find the nodes that
    /// have endpoints.
    pub fn needs_health_check(&self) -> bool {
        self.service_type() == service_type::LOAD_BALANCER
            && self.spec.external_traffic_policy.as_deref() == Some("Local")
    }
}

impl ServicePort {
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("TCP")
    }
}
