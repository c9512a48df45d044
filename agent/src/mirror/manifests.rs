//! From a manifest file's text to the mirror pods it declares (pure).
//!
//! A file holds one or more documents (YAML separated by `---`, JSON
//! objects one after another, or a `kind: List`); every `v1` Pod in it
//! becomes a mirror pod of this host, as kubelet makes them of static
//! pods: named `<name>-<node>`, bound to this node, in the manifest's
//! namespace or `default`, annotated with [`MIRROR_ANNOTATION`] whose value
//! is a hash of the pod as declared. A `hostNetwork` pod takes the node's
//! address; any other must give its `status.podIP` (Switchyard runs no
//! workloads). Other kinds are ignored with a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde_json::Value;
use sha2::{Digest, Sha256};
use switchyard_api::resources::{Pod, DEFAULT_NAMESPACE, MIRROR_ANNOTATION};

/// The host the pods are declared on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub node_name: String,
    /// The address `hostNetwork` pods take: the first `--node-ip`.
    pub node_ip: IpAddr,
}

/// A pod by namespace and (mirror) name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A mirror pod as this host declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorPod {
    pub key: PodKey,
    /// The value of its [`MIRROR_ANNOTATION`].
    pub hash: String,
    /// The whole object, annotation included.
    pub pod: Pod,
}

/// What was wrong with a file; the file then declares what it did before.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("error parsing {file}: {message}")]
    Syntax { file: String, message: String },
    #[error("error validating \"{file}\" (document {document}): {message}")]
    Invalid {
        file: String,
        document: usize,
        message: String,
    },
}

/// The pods one file declares, and the documents it ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    pub pods: Vec<MirrorPod>,
    /// One line per object of another kind.
    pub ignored: Vec<String>,
}

/// Parses one file's text. `file` names it in messages; a name ending in
/// `.json` is read as a stream of JSON values, anything else as YAML.
pub fn parse(file: &str, text: &str, host: &Host) -> Result<Declared, ManifestError> {
    let syntax = |message: String| ManifestError::Syntax {
        file: file.to_string(),
        message,
    };
    let documents: Vec<Value> = if file.ends_with(".json") {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| syntax(e.to_string()))?
    } else {
        // YAML 1.2 booleans only, as swctl reads manifests.
        let options = serde_saphyr::options! { strict_booleans: true };
        serde_saphyr::from_multiple_with_options(text, options)
            .map_err(|e| syntax(e.to_string()))?
    };
    let mut declared = Declared::default();
    for (index, document) in documents.into_iter().enumerate() {
        let invalid = |message: String| ManifestError::Invalid {
            file: file.to_string(),
            document: index + 1,
            message,
        };
        for object in expand(document).map_err(invalid)? {
            match object.get("kind").and_then(Value::as_str) {
                Some("Pod") => {
                    let pod = decode(object).map_err(invalid)?;
                    declared.pods.push(mirror(pod, host).map_err(invalid)?);
                }
                kind => declared.ignored.push(format!(
                    "ignoring {} {:?} in {file} (document {}): only Pods are mirrored",
                    kind.unwrap_or("an object without kind"),
                    object
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    index + 1
                )),
            }
        }
    }
    Ok(declared)
}

/// A document's objects: itself, or the items of a `kind: List`.
fn expand(document: Value) -> Result<Vec<Value>, String> {
    match document {
        Value::Object(mut map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
            match map.remove("items") {
                Some(Value::Array(items)) => Ok(items),
                None => Ok(Vec::new()),
                Some(_) => Err("items: expected a list".to_string()),
            }
        }
        Value::Object(map) => Ok(vec![Value::Object(map)]),
        other => Err(format!(
            "expected an object, found {}",
            switchyard_api::resources::json_type(&other)
        )),
    }
}

fn decode(object: Value) -> Result<Pod, String> {
    match object.get("apiVersion").and_then(Value::as_str) {
        Some("v1") => {}
        other => {
            return Err(format!(
                "no matches for kind \"Pod\" in version \"{}\"",
                other.unwrap_or("")
            ))
        }
    }
    serde_json::from_value(object)
        .map_err(|e| format!("Pod in version \"v1\" cannot be handled as a Pod: {e}"))
}

/// The mirror pod of a declared pod on `host`.
pub fn mirror(mut pod: Pod, host: &Host) -> Result<MirrorPod, String> {
    if pod.metadata.name.is_empty() {
        return Err("metadata.name: Required value".to_string());
    }
    pod.api_version = "v1".to_string();
    pod.kind = "Pod".to_string();
    let meta = &mut pod.metadata;
    meta.name = format!("{}-{}", meta.name, host.node_name);
    let namespace = match meta.namespace.take().filter(|ns| !ns.is_empty()) {
        Some(ns) => ns,
        None => DEFAULT_NAMESPACE.to_string(),
    };
    meta.namespace = Some(namespace);
    // The server's to stamp.
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.annotations.remove(MIRROR_ANNOTATION);
    pod.spec.node_name = Some(host.node_name.clone());
    if pod.spec.host_network {
        pod.status.pod_ip = Some(host.node_ip.to_string());
        pod.status.pod_ips.clear();
    } else if pod.ips().is_empty() {
        return Err(
            "status.podIP: Required value: a pod without hostNetwork must give its address"
                .to_string(),
        );
    }
    let hash = hash(&pod);
    pod.metadata
        .annotations
        .insert(MIRROR_ANNOTATION.to_string(), hash.clone());
    let key = PodKey {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone(),
    };
    Ok(MirrorPod { key, hash, pod })
}

/// 32 hex digits of the SHA-256 of the pod's JSON (kubelet's config hash
/// is as long): it changes whenever what the API would hold changes.
pub fn hash(pod: &Pod) -> String {
    let json = serde_json::to_vec(pod).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The pods declared by all files, the first file (in path order) winning
/// a name declared twice; the second value says which were dropped.
pub fn desired<'a, P: fmt::Display + 'a>(
    files: impl IntoIterator<Item = (P, &'a [MirrorPod])>,
) -> (BTreeMap<PodKey, MirrorPod>, Vec<String>) {
    let mut pods: BTreeMap<PodKey, MirrorPod> = BTreeMap::new();
    let mut first: BTreeMap<PodKey, String> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for (file, declared) in files {
        for pod in declared {
            if let Some(by) = first.get(&pod.key) {
                conflicts.push(format!(
                    "ignoring pod {} in {file}: {by} declares it too",
                    pod.key
                ));
                continue;
            }
            first.insert(pod.key.clone(), file.to_string());
            pods.insert(pod.key.clone(), pod.clone());
        }
    }
    (pods, conflicts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn host() -> Host {
        Host {
            node_name: "node-1".into(),
            node_ip: std::net::Ipv4Addr::new(172, 18, 0, 11).into(),
        }
    }

    const WEB: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  hostNetwork: true
  containers:
    - name: main
      ports:
        - name: http
          containerPort: 8080
";

    #[test]
    fn a_host_network_pod_becomes_a_mirror_pod_on_the_node_address() {
        let declared = parse("/etc/pods/web.yaml", WEB, &host()).unwrap();
        assert!(declared.ignored.is_empty());
        let [m] = &declared.pods[..] else {
            panic!("{declared:?}")
        };
        assert_eq!(
            m.key,
            PodKey {
                namespace: "default".into(),
                name: "web-node-1".into()
            }
        );
        let pod = &m.pod;
        assert_eq!(pod.metadata.name, "web-node-1");
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(pod.status.pod_ip.as_deref(), Some("172.18.0.11"));
        assert_eq!(
            pod.metadata.annotations.get(MIRROR_ANNOTATION),
            Some(&m.hash)
        );
        assert_eq!(m.hash.len(), 32);
        assert!(m.hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(pod.is_mirror());
        let json = serde_json::to_value(pod).unwrap();
        assert_eq!(json["spec"]["hostNetwork"], true);
        assert_eq!(json["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn the_hash_follows_what_the_api_would_hold() {
        let h = |text: &str, host: &Host| parse("a.yaml", text, host).unwrap().pods[0].hash.clone();
        let base = h(WEB, &host());
        assert_eq!(base, h(WEB, &host()), "stable");
        assert_eq!(
            base,
            h(&format!("# a comment\n{WEB}"), &host()),
            "formatting is not content"
        );
        assert_ne!(base, h(&WEB.replace("8080", "8081"), &host()));
        assert_ne!(base, h(&WEB.replace("app: web", "app: api"), &host()));
        let moved = Host {
            node_ip: std::net::Ipv4Addr::new(172, 18, 0, 12).into(),
            ..host()
        };
        assert_ne!(base, h(WEB, &moved), "a new node address is a new pod");
        // A hash the file states is replaced by the agent's own.
        let stated = WEB.replace(
            "  labels:",
            "  annotations:\n    kubernetes.io/config.mirror: forged\n  labels:",
        );
        assert_eq!(base, h(&stated, &host()));
    }

    #[test]
    fn several_documents_namespaces_and_other_kinds() {
        let text = format!(
            "{WEB}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: db\n  namespace: data\n  uid: stale\n  resourceVersion: \"7\"\nspec:\n  nodeName: node-9\n  containers:\n    - name: main\nstatus:\n  podIP: 10.244.1.5\n"
        );
        let declared = parse("/etc/pods/all.yml", &text, &host()).unwrap();
        let names: Vec<String> = declared.pods.iter().map(|p| p.key.to_string()).collect();
        assert_eq!(names, vec!["default/web-node-1", "data/db-node-1"]);
        let db = &declared.pods[1].pod;
        assert_eq!(
            db.spec.node_name.as_deref(),
            Some("node-1"),
            "bound here, whatever the file says"
        );
        assert_eq!(db.status.pod_ip.as_deref(), Some("10.244.1.5"));
        assert_eq!(
            (
                db.metadata.uid.as_deref(),
                db.metadata.resource_version.as_deref()
            ),
            (None, None)
        );
        assert_eq!(
            declared.ignored,
            vec!["ignoring Service \"web\" in /etc/pods/all.yml (document 2): only Pods are mirrored"]
        );
    }

    #[test]
    fn json_files_and_lists() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"hostNetwork":true,"containers":[{"name":"c"}]}}
{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c"}]},"status":{"podIP":"10.244.1.9"}}]}"#;
        let declared = parse("pods.json", json, &host()).unwrap();
        let names: Vec<&str> = declared.pods.iter().map(|p| p.key.name.as_str()).collect();
        assert_eq!(names, vec!["a-node-1", "b-node-1"]);
    }

    #[test]
    fn errors_name_the_file_and_document() {
        let no_ip = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: db\nspec:\n  containers:\n    - name: c\n";
        assert_eq!(
            parse("d/db.yaml", &format!("{WEB}---\n{no_ip}"), &host()),
            Err(ManifestError::Invalid {
                file: "d/db.yaml".into(),
                document: 2,
                message:
                    "status.podIP: Required value: a pod without hostNetwork must give its address"
                        .into()
            })
        );
        let unnamed = WEB.replace("  name: web\n", "");
        assert_eq!(
            parse("d/x.yaml", &unnamed, &host())
                .unwrap_err()
                .to_string(),
            "error validating \"d/x.yaml\" (document 1): metadata.name: Required value"
        );
        let v2 = WEB.replace("apiVersion: v1", "apiVersion: v2");
        assert_eq!(
            parse("d/x.yaml", &v2, &host()).unwrap_err().to_string(),
            "error validating \"d/x.yaml\" (document 1): no matches for kind \"Pod\" in version \"v2\""
        );
        assert!(matches!(
            parse("d/x.yaml", "kind: Pod\n  bad: [", &host()),
            Err(ManifestError::Syntax { .. })
        ));
        assert!(matches!(
            parse("d/x.yaml", "- just\n- a list\n", &host()),
            Err(ManifestError::Invalid { message, .. }) if message == "expected an object, found a list"
        ));
        assert_eq!(parse("d/empty.yaml", "", &host()), Ok(Declared::default()));
    }

    #[test]
    fn the_first_file_wins_a_name_declared_twice() {
        let a = parse("a.yaml", WEB, &host()).unwrap().pods;
        let b = parse("b.yaml", &WEB.replace("8080", "9090"), &host())
            .unwrap()
            .pods;
        let (pods, conflicts) = desired([("a.yaml", &a[..]), ("b.yaml", &b[..])]);
        assert_eq!(pods.len(), 1);
        assert_eq!(pods.values().next().unwrap().hash, a[0].hash);
        assert_eq!(
            conflicts,
            vec!["ignoring pod default/web-node-1 in b.yaml: a.yaml declares it too"]
        );
    }
}
