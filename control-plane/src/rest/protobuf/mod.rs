//! Decoding of Kubernetes protobuf request bodies into their JSON form.
//!
//! kubectl's typed commands (`create service|namespace|deployment|configmap|secret`,
//! `auth whoami`, `auth can-i`) always send `application/vnd.kubernetes.protobuf`
//! and never retry with JSON, so the REST layer converts those bodies here and keeps
//! a single JSON code path for everything else.
//!
//! The structs mirror the upstream `generated.proto` messages (same field numbers),
//! but only the messages and fields those commands can set; prost skips any other
//! field, and `status` is never read because the apiserver discards it on create.
//! The Go marshaller writes every non-pointer field, even when it holds its zero
//! value, so such fields are plain values here and are left out of the JSON when
//! zero (exactly what `omitempty` or a missing key means to the apiserver). Fields
//! that are pointers in Go are `Option`s and are emitted whenever present, because
//! there "set to zero" and "unset" differ (e.g. `replicas: 0`). Nested messages are
//! emitted when present, like Go's JSON encoder does for struct fields (`{}`).

use std::collections::BTreeMap;

use prost::Message;
use serde_json::{Map, Value};

/// Marks the protobuf envelope; anything else is not a Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Why a body could not be turned into JSON; each message names the failing step
/// so that the error answer tells the client what we did not understand.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the Kubernetes magic prefix \"k8s\\0\"")]
    BadMagic,
    #[error("protobuf body has an undecodable runtime.Unknown envelope: {0}")]
    Envelope(#[source] prost::DecodeError),
    #[error("protobuf body uses content encoding {0:?}, which is not supported")]
    UnsupportedEncoding(String),
    #[error("unsupported kind {kind:?} in {api_version:?} for protobuf bodies")]
    UnsupportedKind { kind: String, api_version: String },
    #[error("cannot decode protobuf {kind} ({api_version}): {source}")]
    Decode {
        kind: String,
        api_version: String,
        #[source]
        source: prost::DecodeError,
    },
}

/// Converts a `application/vnd.kubernetes.protobuf` request body into the JSON
/// object kube-apiserver would have received had the client sent JSON instead.
pub fn to_json(body: &[u8]) -> Result<Value, ProtobufError> {
    let payload = body.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    let unknown = Unknown::decode(payload).map_err(ProtobufError::Envelope)?;
    if !unknown.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(unknown.content_encoding));
    }
    let TypeMeta { api_version, kind } = unknown.type_meta.unwrap_or_default();
    let raw = unknown.raw.as_slice();
    let decoded = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Service") => object::<Service>(raw),
        ("v1", "Namespace") => object::<Namespace>(raw),
        ("v1", "ConfigMap") => object::<ConfigMap>(raw),
        ("v1", "Secret") => object::<Secret>(raw),
        ("apps/v1", "Deployment") => object::<Deployment>(raw),
        ("authentication.k8s.io/v1", "SelfSubjectReview") => object::<SelfSubjectReview>(raw),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            object::<SelfSubjectAccessReview>(raw)
        }
        _ => return Err(ProtobufError::UnsupportedKind { kind, api_version }),
    };
    let mut fields = match decoded {
        Ok(fields) => fields,
        Err(source) => {
            return Err(ProtobufError::Decode {
                kind,
                api_version,
                source,
            });
        }
    };
    fields.insert("apiVersion".into(), api_version.into());
    fields.insert("kind".into(), kind.into());
    Ok(Value::Object(fields))
}

fn object<T: Message + Default + Fields>(
    raw: &[u8],
) -> Result<Map<String, Value>, prost::DecodeError> {
    T::decode(raw).map(|message| message.fields().0)
}

/// A message that maps to a JSON object, so the envelope's apiVersion/kind can join it.
trait Fields {
    fn fields(&self) -> Obj;
}

trait ToJson {
    fn to_json(&self) -> Value;
}

/// Declares a message and its JSON mapping side by side, so each line reads
/// "wire tag, Rust field, presence rule, JSON key" and the two cannot drift apart.
macro_rules! message {
    ($( $(#[$doc:meta])* $name:ident {
        $( #[prost($($attr:tt)*)] $field:ident: $ty:ty => $rule:ident $key:literal, )*
    } )*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Message)]
        struct $name { $( #[prost($($attr)*)] $field: $ty, )* }

        impl Fields for $name {
            fn fields(&self) -> Obj {
                Obj::default() $( .$rule($key, &self.$field) )*
            }
        }

        impl ToJson for $name {
            fn to_json(&self) -> Value {
                Value::Object(self.fields().0)
            }
        }
    )*};
}

/// Accumulates one JSON object; each method is a presence rule from the module docs.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn put(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.to_owned(), value);
        self
    }

    fn put_if(self, key: &str, value: Option<Value>) -> Self {
        match value {
            Some(v) => self.put(key, v),
            None => self,
        }
    }

    fn str(self, key: &str, value: &str) -> Self {
        self.put_if(key, (!value.is_empty()).then(|| value.into()))
    }

    fn int<T: Copy + Into<i64>>(self, key: &str, value: &T) -> Self {
        let n: i64 = (*value).into();
        self.put_if(key, (n != 0).then(|| n.into()))
    }

    fn flag(self, key: &str, value: &bool) -> Self {
        self.put_if(key, value.then(|| true.into()))
    }

    fn opt<T: Clone + Into<Value>>(self, key: &str, value: &Option<T>) -> Self {
        self.put_if(key, value.clone().map(Into::into))
    }

    fn strs(self, key: &str, values: &[String]) -> Self {
        self.put_if(key, (!values.is_empty()).then(|| values.into()))
    }

    fn map<V>(self, key: &str, map: &BTreeMap<String, V>, f: impl Fn(&V) -> Value) -> Self {
        let object = || Value::Object(map.iter().map(|(k, v)| (k.clone(), f(v))).collect());
        self.put_if(key, (!map.is_empty()).then(object))
    }

    fn labels(self, key: &str, map: &BTreeMap<String, String>) -> Self {
        self.map(key, map, |v| v.as_str().into())
    }

    /// `[]byte` values travel as standard base64 in JSON.
    fn bytes(self, key: &str, map: &BTreeMap<String, Vec<u8>>) -> Self {
        self.map(key, map, |v| base64(v).into())
    }

    fn quantities(self, key: &str, map: &BTreeMap<String, Quantity>) -> Self {
        self.map(key, map, |q| q.string.as_str().into())
    }

    fn msg<T: ToJson>(self, key: &str, value: &Option<T>) -> Self {
        self.put_if(key, value.as_ref().map(ToJson::to_json))
    }

    fn list<T: ToJson>(self, key: &str, values: &[T]) -> Self {
        let array = || values.iter().map(ToJson::to_json).collect();
        self.put_if(key, (!values.is_empty()).then(array))
    }

    fn time(self, key: &str, value: &Option<Time>) -> Self {
        self.put_if(key, value.as_ref().and_then(Time::rfc3339).map(Into::into))
    }

    /// For non-pointer IntOrString fields, whose zero value is always on the wire.
    fn port(self, key: &str, value: &Option<IntOrString>) -> Self {
        let set = value.as_ref().filter(|v| **v != IntOrString::default());
        self.put_if(key, set.map(ToJson::to_json))
    }
}

// runtime.Unknown envelope and the intstr/resource/meta types that need custom JSON.

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, tag = "1")]
    api_version: String,
    #[prost(string, tag = "2")]
    kind: String,
}

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
    #[prost(string, tag = "3")]
    content_encoding: String,
    #[prost(string, tag = "4")]
    content_type: String,
}

/// Optional scalars because an empty message is Go's zero `Time` (JSON `null`),
/// which is not the same instant as an explicit 1970-01-01T00:00:00Z.
#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

impl Time {
    /// metav1.Time marshals as whole-second UTC RFC 3339.
    fn rfc3339(&self) -> Option<String> {
        if self.seconds.is_none() && self.nanos.is_none() {
            return None;
        }
        let secs = self.seconds.unwrap_or_default();
        let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Days-to-civil conversion from Howard Hinnant's date algorithms.
        let z = days + 719_468;
        let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let (h, m, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
        Some(format!(
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"
        ))
    }
}

#[derive(Clone, PartialEq, Message)]
struct IntOrString {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int32, tag = "2")]
    int_val: i32,
    #[prost(string, tag = "3")]
    str_val: String,
}

impl ToJson for IntOrString {
    /// JSON spells IntOrString as a bare number or string; type 1 is string.
    fn to_json(&self) -> Value {
        match self.r#type {
            1 => self.str_val.as_str().into(),
            _ => self.int_val.into(),
        }
    }
}

#[derive(Clone, PartialEq, Message)]
struct Quantity {
    #[prost(string, tag = "1")]
    string: String,
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            let sextet = usize::try_from((n >> shift) & 63).unwrap_or(0);
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[sextet])
            } else {
                '='
            });
        }
    }
    out
}

message! {
    // meta/v1
    ObjectMeta {
        #[prost(string, tag = "1")] name: String => str "name",
        #[prost(string, tag = "2")] generate_name: String => str "generateName",
        #[prost(string, tag = "3")] namespace: String => str "namespace",
        #[prost(string, tag = "5")] uid: String => str "uid",
        #[prost(string, tag = "6")] resource_version: String => str "resourceVersion",
        #[prost(int64, tag = "7")] generation: i64 => int "generation",
        #[prost(message, optional, tag = "8")] creation_timestamp: Option<Time> => time "creationTimestamp",
        #[prost(btree_map = "string, string", tag = "11")] labels: BTreeMap<String, String> => labels "labels",
        #[prost(btree_map = "string, string", tag = "12")] annotations: BTreeMap<String, String> => labels "annotations",
        #[prost(string, repeated, tag = "14")] finalizers: Vec<String> => strs "finalizers",
    }
    LabelSelector {
        #[prost(btree_map = "string, string", tag = "1")] match_labels: BTreeMap<String, String> => labels "matchLabels",
        #[prost(message, repeated, tag = "2")] match_expressions: Vec<LabelSelectorRequirement> => list "matchExpressions",
    }
    LabelSelectorRequirement {
        #[prost(string, tag = "1")] key: String => str "key",
        #[prost(string, tag = "2")] operator: String => str "operator",
        #[prost(string, repeated, tag = "3")] values: Vec<String> => strs "values",
    }

    // core/v1
    Service {
        #[prost(message, optional, tag = "1")] metadata: Option<ObjectMeta> => msg "metadata",
        #[prost(message, optional, tag = "2")] spec: Option<ServiceSpec> => msg "spec",
    }
    ServiceSpec {
        #[prost(message, repeated, tag = "1")] ports: Vec<ServicePort> => list "ports",
        #[prost(btree_map = "string, string", tag = "2")] selector: BTreeMap<String, String> => labels "selector",
        #[prost(string, tag = "3")] cluster_ip: String => str "clusterIP",
        #[prost(string, repeated, tag = "18")] cluster_ips: Vec<String> => strs "clusterIPs",
        #[prost(string, tag = "4")] r#type: String => str "type",
        #[prost(string, repeated, tag = "5")] external_ips: Vec<String> => strs "externalIPs",
        #[prost(string, tag = "7")] session_affinity: String => str "sessionAffinity",
        #[prost(string, tag = "8")] load_balancer_ip: String => str "loadBalancerIP",
        #[prost(string, repeated, tag = "9")] load_balancer_source_ranges: Vec<String> => strs "loadBalancerSourceRanges",
        #[prost(string, tag = "10")] external_name: String => str "externalName",
        #[prost(string, tag = "11")] external_traffic_policy: String => str "externalTrafficPolicy",
        #[prost(int32, tag = "12")] health_check_node_port: i32 => int "healthCheckNodePort",
        #[prost(bool, tag = "13")] publish_not_ready_addresses: bool => flag "publishNotReadyAddresses",
        #[prost(message, optional, tag = "14")] session_affinity_config: Option<SessionAffinityConfig> => msg "sessionAffinityConfig",
        #[prost(string, repeated, tag = "19")] ip_families: Vec<String> => strs "ipFamilies",
        #[prost(string, optional, tag = "17")] ip_family_policy: Option<String> => opt "ipFamilyPolicy",
        #[prost(bool, optional, tag = "20")] allocate_load_balancer_node_ports: Option<bool> => opt "allocateLoadBalancerNodePorts",
        #[prost(string, optional, tag = "21")] load_balancer_class: Option<String> => opt "loadBalancerClass",
        #[prost(string, optional, tag = "22")] internal_traffic_policy: Option<String> => opt "internalTrafficPolicy",
        #[prost(string, optional, tag = "23")] traffic_distribution: Option<String> => opt "trafficDistribution",
    }
    ServicePort {
        #[prost(string, tag = "1")] name: String => str "name",
        #[prost(string, tag = "2")] protocol: String => str "protocol",
        #[prost(string, optional, tag = "6")] app_protocol: Option<String> => opt "appProtocol",
        #[prost(int32, tag = "3")] port: i32 => int "port",
        #[prost(message, optional, tag = "4")] target_port: Option<IntOrString> => port "targetPort",
        #[prost(int32, tag = "5")] node_port: i32 => int "nodePort",
    }
    SessionAffinityConfig {
        #[prost(message, optional, tag = "1")] client_ip: Option<ClientIpConfig> => msg "clientIP",
    }
    ClientIpConfig {
        #[prost(int32, optional, tag = "1")] timeout_seconds: Option<i32> => opt "timeoutSeconds",
    }
    Namespace {
        #[prost(message, optional, tag = "1")] metadata: Option<ObjectMeta> => msg "metadata",
        #[prost(message, optional, tag = "2")] spec: Option<NamespaceSpec> => msg "spec",
    }
    NamespaceSpec {
        #[prost(string, repeated, tag = "1")] finalizers: Vec<String> => strs "finalizers",
    }
    ConfigMap {
        #[prost(message, optional, tag = "1")] metadata: Option<ObjectMeta> => msg "metadata",
        #[prost(bool, optional, tag = "4")] immutable: Option<bool> => opt "immutable",
        #[prost(btree_map = "string, string", tag = "2")] data: BTreeMap<String, String> => labels "data",
        #[prost(btree_map = "string, bytes", tag = "3")] binary_data: BTreeMap<String, Vec<u8>> => bytes "binaryData",
    }
    Secret {
        #[prost(message, optional, tag = "1")] metadata: Option<ObjectMeta> => msg "metadata",
        #[prost(bool, optional, tag = "5")] immutable: Option<bool> => opt "immutable",
        #[prost(btree_map = "string, bytes", tag = "2")] data: BTreeMap<String, Vec<u8>> => bytes "data",
        #[prost(btree_map = "string, string", tag = "4")] string_data: BTreeMap<String, String> => labels "stringData",
        #[prost(string, tag = "3")] r#type: String => str "type",
    }
    PodTemplateSpec {
        #[prost(message, optional, tag = "1")] metadata: Option<ObjectMeta> => msg "metadata",
        #[prost(message, optional, tag = "2")] spec: Option<PodSpec> => msg "spec",
    }
    PodSpec {
        #[prost(message, repeated, tag = "20")] init_containers: Vec<Container> => list "initContainers",
        #[prost(message, repeated, tag = "2")] containers: Vec<Container> => list "containers",
        #[prost(string, tag = "3")] restart_policy: String => str "restartPolicy",
        #[prost(int64, optional, tag = "4")] termination_grace_period_seconds: Option<i64> => opt "terminationGracePeriodSeconds",
        #[prost(string, tag = "6")] dns_policy: String => str "dnsPolicy",
        #[prost(btree_map = "string, string", tag = "7")] node_selector: BTreeMap<String, String> => labels "nodeSelector",
        #[prost(string, tag = "8")] service_account_name: String => str "serviceAccountName",
    }
    Container {
        #[prost(string, tag = "1")] name: String => str "name",
        #[prost(string, tag = "2")] image: String => str "image",
        #[prost(string, repeated, tag = "3")] command: Vec<String> => strs "command",
        #[prost(string, repeated, tag = "4")] args: Vec<String> => strs "args",
        #[prost(string, tag = "5")] working_dir: String => str "workingDir",
        #[prost(message, repeated, tag = "6")] ports: Vec<ContainerPort> => list "ports",
        #[prost(message, repeated, tag = "7")] env: Vec<EnvVar> => list "env",
        #[prost(message, optional, tag = "8")] resources: Option<ResourceRequirements> => msg "resources",
        #[prost(string, tag = "14")] image_pull_policy: String => str "imagePullPolicy",
    }
    ContainerPort {
        #[prost(string, tag = "1")] name: String => str "name",
        #[prost(int32, tag = "2")] host_port: i32 => int "hostPort",
        #[prost(int32, tag = "3")] container_port: i32 => int "containerPort",
        #[prost(string, tag = "4")] protocol: String => str "protocol",
        #[prost(string, tag = "5")] host_ip: String => str "hostIP",
    }
    EnvVar {
        #[prost(string, tag = "1")] name: String => str "name",
        #[prost(string, tag = "2")] value: String => str "value",
    }
    ResourceRequirements {
        #[prost(btree_map = "string, message", tag = "1")] limits: BTreeMap<String, Quantity> => quantities "limits",
        #[prost(btree_map = "string, message", tag = "2")] requests: BTreeMap<String, Quantity> => quantities "requests",
    }

    // apps/v1
    Deployment {
        #[prost(message, optional, tag = "1")] metadata: Option<ObjectMeta> => msg "metadata",
        #[prost(message, optional, tag = "2")] spec: Option<DeploymentSpec> => msg "spec",
    }
    DeploymentSpec {
        #[prost(int32, optional, tag = "1")] replicas: Option<i32> => opt "replicas",
        #[prost(message, optional, tag = "2")] selector: Option<LabelSelector> => msg "selector",
        #[prost(message, optional, tag = "3")] template: Option<PodTemplateSpec> => msg "template",
        #[prost(message, optional, tag = "4")] strategy: Option<DeploymentStrategy> => msg "strategy",
        #[prost(int32, tag = "5")] min_ready_seconds: i32 => int "minReadySeconds",
        #[prost(int32, optional, tag = "6")] revision_history_limit: Option<i32> => opt "revisionHistoryLimit",
        #[prost(bool, tag = "7")] paused: bool => flag "paused",
        #[prost(int32, optional, tag = "9")] progress_deadline_seconds: Option<i32> => opt "progressDeadlineSeconds",
    }
    DeploymentStrategy {
        #[prost(string, tag = "1")] r#type: String => str "type",
        #[prost(message, optional, tag = "2")] rolling_update: Option<RollingUpdateDeployment> => msg "rollingUpdate",
    }
    RollingUpdateDeployment {
        #[prost(message, optional, tag = "1")] max_unavailable: Option<IntOrString> => msg "maxUnavailable",
        #[prost(message, optional, tag = "2")] max_surge: Option<IntOrString> => msg "maxSurge",
    }

    // authentication.k8s.io/v1 and authorization.k8s.io/v1
    SelfSubjectReview {
        #[prost(message, optional, tag = "1")] metadata: Option<ObjectMeta> => msg "metadata",
    }
    SelfSubjectAccessReview {
        #[prost(message, optional, tag = "1")] metadata: Option<ObjectMeta> => msg "metadata",
        #[prost(message, optional, tag = "2")] spec: Option<SelfSubjectAccessReviewSpec> => msg "spec",
    }
    SelfSubjectAccessReviewSpec {
        #[prost(message, optional, tag = "1")] resource_attributes: Option<ResourceAttributes> => msg "resourceAttributes",
        #[prost(message, optional, tag = "2")] non_resource_attributes: Option<NonResourceAttributes> => msg "nonResourceAttributes",
    }
    ResourceAttributes {
        #[prost(string, tag = "1")] namespace: String => str "namespace",
        #[prost(string, tag = "2")] verb: String => str "verb",
        #[prost(string, tag = "3")] group: String => str "group",
        #[prost(string, tag = "4")] version: String => str "version",
        #[prost(string, tag = "5")] resource: String => str "resource",
        #[prost(string, tag = "6")] subresource: String => str "subresource",
        #[prost(string, tag = "7")] name: String => str "name",
    }
    NonResourceAttributes {
        #[prost(string, tag = "1")] path: String => str "path",
        #[prost(string, tag = "2")] verb: String => str "verb",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Bodies captured from kubectl 1.32 against a recording server.
    macro_rules! body {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/rest/protobuf/bodies/",
                $name,
                ".pb"
            ))
        };
    }

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let type_meta = Some(TypeMeta {
            api_version: api_version.into(),
            kind: kind.into(),
        });
        let unknown = Unknown {
            type_meta,
            raw,
            ..Unknown::default()
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    #[test]
    fn service_nodeport() {
        // kubectl create service nodeport frontend-svc --tcp=80:5000 --node-port=32233
        let expected = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "frontend-svc", "labels": {"app": "frontend-svc"}},
            "spec": {
                "ports": [{"name": "80-5000", "protocol": "TCP", "port": 80,
                           "targetPort": 5000, "nodePort": 32233}],
                "selector": {"app": "frontend-svc"},
                "type": "NodePort"
            }
        });
        assert_eq!(to_json(body!("svc_nodeport")).unwrap(), expected);
    }

    #[test]
    fn service_clusterip() {
        // kubectl create service clusterip web --tcp=80:8080 --tcp=443:8443
        let expected = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "443-8443", "protocol": "TCP", "port": 443, "targetPort": 8443}
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP"
            }
        });
        assert_eq!(to_json(body!("svc_clusterip")).unwrap(), expected);
    }

    #[test]
    fn service_loadbalancer() {
        // kubectl create service loadbalancer lb --tcp=5678:8080
        let expected = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "lb", "labels": {"app": "lb"}},
            "spec": {
                "ports": [{"name": "5678-8080", "protocol": "TCP", "port": 5678, "targetPort": 8080}],
                "selector": {"app": "lb"},
                "type": "LoadBalancer"
            }
        });
        assert_eq!(to_json(body!("svc_loadbalancer")).unwrap(), expected);
    }

    #[test]
    fn service_externalname() {
        // kubectl create service externalname ext --external-name=example.com
        let expected = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ext", "labels": {"app": "ext"}},
            "spec": {
                "selector": {"app": "ext"},
                "type": "ExternalName",
                "externalName": "example.com"
            }
        });
        assert_eq!(to_json(body!("svc_externalname")).unwrap(), expected);
    }

    #[test]
    fn namespace() {
        // kubectl create namespace shop
        let expected = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop"},
            "spec": {}
        });
        assert_eq!(to_json(body!("namespace")).unwrap(), expected);
    }

    #[test]
    fn deployment() {
        // kubectl create deployment web --image=nginx --port=80 --replicas=2
        let expected = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {}
                    }]}
                },
                "strategy": {}
            }
        });
        assert_eq!(to_json(body!("deployment")).unwrap(), expected);
    }

    #[test]
    fn configmap_and_secret() {
        // kubectl create configmap cfg --from-literal=a=1
        let expected = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"a": "1"}
        });
        assert_eq!(to_json(body!("configmap")).unwrap(), expected);
        // kubectl create secret generic sec --from-literal=pw=s3cr3t
        let expected = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sec"},
            "data": {"pw": "czNjcjN0"}
        });
        assert_eq!(to_json(body!("secret")).unwrap(), expected);
    }

    #[test]
    fn self_subject_review() {
        // kubectl auth whoami
        let expected = json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {}
        });
        assert_eq!(to_json(body!("whoami")).unwrap(), expected);
    }

    #[test]
    fn self_subject_access_reviews() {
        // kubectl auth can-i create services -n default
        let expected = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {
                "namespace": "default", "verb": "create", "resource": "services"
            }}
        });
        assert_eq!(to_json(body!("can_i_create_services")).unwrap(), expected);
        // kubectl auth can-i list pods --subresource=log
        let expected = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {
                "namespace": "default", "verb": "list", "resource": "pods", "subresource": "log"
            }}
        });
        assert_eq!(to_json(body!("can_i_list_pods_log")).unwrap(), expected);
    }

    #[test]
    fn pointer_fields_keep_zero_values_and_strings() {
        let strategy = DeploymentStrategy {
            r#type: "RollingUpdate".into(),
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::default()),
                max_surge: Some(IntOrString {
                    r#type: 1,
                    str_val: "25%".into(),
                    ..IntOrString::default()
                }),
            }),
        };
        let container = Container {
            name: "app".into(),
            env: vec![EnvVar {
                name: "MODE".into(),
                value: "prod".into(),
            }],
            ..Container::default()
        };
        let template = PodTemplateSpec {
            spec: Some(PodSpec {
                containers: vec![container],
                ..PodSpec::default()
            }),
            ..PodTemplateSpec::default()
        };
        let deployment = Deployment {
            metadata: Some(ObjectMeta {
                name: "d".into(),
                annotations: BTreeMap::from([("note".into(), "x".into())]),
                creation_timestamp: Some(Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                ..ObjectMeta::default()
            }),
            spec: Some(DeploymentSpec {
                replicas: Some(0),
                strategy: Some(strategy),
                template: Some(template),
                ..DeploymentSpec::default()
            }),
        };
        let body = envelope("apps/v1", "Deployment", deployment.encode_to_vec());
        let expected = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "d",
                "annotations": {"note": "x"},
                "creationTimestamp": "2023-11-14T22:13:20Z"
            },
            "spec": {
                "replicas": 0,
                "template": {"spec": {"containers": [
                    {"name": "app", "env": [{"name": "MODE", "value": "prod"}]}
                ]}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}
                }
            }
        });
        assert_eq!(to_json(&body).unwrap(), expected);
    }

    #[test]
    fn service_optional_fields_and_non_resource_review() {
        let spec = ServiceSpec {
            r#type: "ClusterIP".into(),
            session_affinity: "ClientIP".into(),
            session_affinity_config: Some(SessionAffinityConfig {
                client_ip: Some(ClientIpConfig {
                    timeout_seconds: Some(60),
                }),
            }),
            allocate_load_balancer_node_ports: Some(false),
            ip_family_policy: Some("SingleStack".into()),
            ..ServiceSpec::default()
        };
        let service = Service {
            metadata: None,
            spec: Some(spec),
        };
        let expected = json!({
            "apiVersion": "v1", "kind": "Service",
            "spec": {
                "type": "ClusterIP",
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                "allocateLoadBalancerNodePorts": false,
                "ipFamilyPolicy": "SingleStack"
            }
        });
        let body = envelope("v1", "Service", service.encode_to_vec());
        assert_eq!(to_json(&body).unwrap(), expected);

        let review = SelfSubjectAccessReview {
            metadata: None,
            spec: Some(SelfSubjectAccessReviewSpec {
                resource_attributes: None,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: "/healthz".into(),
                    verb: "get".into(),
                }),
            }),
        };
        let body = envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            review.encode_to_vec(),
        );
        let expected = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}
        });
        assert_eq!(to_json(&body).unwrap(), expected);
    }

    #[test]
    fn time_formats_as_rfc3339() {
        let time = |seconds| Time {
            seconds: Some(seconds),
            nanos: None,
        };
        assert_eq!(time(0).rfc3339().unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(time(951_782_400).rfc3339().unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(time(-1).rfc3339().unwrap(), "1969-12-31T23:59:59Z");
        assert_eq!(Time::default().rfc3339(), None);
    }

    #[test]
    fn base64_pads_like_go() {
        let encoded: Vec<String> = ["", "f", "fo", "foo", "foob"]
            .iter()
            .map(|s| base64(s.as_bytes()))
            .collect();
        assert_eq!(encoded, ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg=="]);
    }

    #[test]
    fn errors_name_what_failed() {
        let err = to_json(b"{\"kind\":\"Service\"}").unwrap_err();
        assert!(matches!(err, ProtobufError::BadMagic));

        let err = to_json(b"k8s\0\x0a\x05ab").unwrap_err();
        assert!(matches!(err, ProtobufError::Envelope(_)));

        let err = to_json(&envelope("v1", "Pod", Vec::new())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported kind \"Pod\" in \"v1\" for protobuf bodies"
        );

        let err = to_json(&envelope("v1", "Service", vec![0x0a, 0x09, 0x01])).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot decode protobuf Service (v1): "));

        let unknown = Unknown {
            content_encoding: "gzip".into(),
            ..Unknown::default()
        };
        let body = [MAGIC.to_vec(), unknown.encode_to_vec()].concat();
        let err = to_json(&body).unwrap_err();
        assert!(matches!(err, ProtobufError::UnsupportedEncoding(e) if e == "gzip"));
    }
}
