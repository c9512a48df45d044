//! Mirror pods through a real control plane, without root: a node's
//! certificate writes its own mirror pods and nothing else (NodeRestriction,
//! word for word), and the agent's manifest loop keeps them in step with a
//! directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::ControlPlane;
use switchyard_api::v1::resources_client::ResourcesClient;
use switchyard_api::v1::{ApplyOutcome, ApplyRequest, ListRequest, ObjectRef, Resource};

fn pod(name: &str, node: &str, annotations: &str, port: u16) -> Resource {
    Resource {
        kind: "Pod".into(),
        json: format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","annotations":{{{annotations}}}}},"spec":{{"nodeName":"{node}","hostNetwork":true,"containers":[{{"name":"c","ports":[{{"containerPort":{port}}}]}}]}},"status":{{"podIP":"10.0.0.1"}}}}"#
        ),
    }
}

const MIRROR: &str = r#""kubernetes.io/config.mirror":"abc""#;

fn apply(r: Resource) -> ApplyRequest {
    ApplyRequest {
        resource: Some(r),
        create_only: false,
    }
}

fn pod_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: "Pod".into(),
        namespace: "default".into(),
        name: name.into(),
    }
}

fn refusal(status: tonic::Status) -> (tonic::Code, String) {
    (status.code(), status.message().to_string())
}

fn forbidden(message: &str) -> (tonic::Code, String) {
    (tonic::Code::PermissionDenied, message.to_string())
}

#[test]
fn a_node_writes_only_its_own_mirror_pods() {
    let cp = ControlPlane::start(&[]);
    cp.apply_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-2\nspec:\n  nodeName: node-2\n  containers:\n    - name: c\nstatus:\n  podIP: 10.244.2.11\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: plain-1\nspec:\n  nodeName: node-1\n  containers:\n    - name: c\nstatus:\n  podIP: 10.244.1.11\n",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let node1 = cp.join("node-1").await.borrow().clone();
        let mut api = ResourcesClient::new(node1);

        // Its own mirror pod: created, updated, listed, deleted.
        let created = api
            .apply(apply(pod("web-node-1", "node-1", MIRROR, 8080)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created.outcome(), ApplyOutcome::Created);
        let updated = api
            .apply(apply(pod("web-node-1", "node-1", MIRROR, 8081)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated.outcome(), ApplyOutcome::Configured);
        // A node lists the pods bound to it, and only those.
        let listed = api
            .list(ListRequest {
                kind: "Pod".into(),
                all_namespaces: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut names: Vec<String> = listed
            .items
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.json).unwrap()["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        assert_eq!(names, vec!["plain-1", "web-node-1"]);

        // Not a mirror pod.
        let err = api
            .apply(apply(pod("web-1", "node-1", "", 8080)))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            forbidden("pods \"web-1\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"node-1\" can only create mirror pods")
        );
        // A mirror pod for another node.
        let err = api
            .apply(apply(pod("web-node-2", "node-2", MIRROR, 8080)))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            forbidden("pods \"web-node-2\" is forbidden: node \"node-1\" can only create pods with spec.nodeName set to itself")
        );
        // Another node's pod.
        let err = api.delete(pod_ref("web-2")).await.unwrap_err();
        assert_eq!(
            refusal(err),
            forbidden("pods \"web-2\" is forbidden: node \"node-1\" can only delete pods with spec.nodeName set to itself")
        );
        // Its own pod that is not a mirror pod: neither updated nor deleted.
        let err = api
            .apply(apply(pod("plain-1", "node-1", MIRROR, 8080)))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            forbidden("pods \"plain-1\" is forbidden: node \"node-1\" can only update pod status for pods with spec.nodeName set to itself")
        );
        let err = api.delete(pod_ref("plain-1")).await.unwrap_err();
        assert_eq!(
            refusal(err),
            forbidden("pods \"plain-1\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"node-1\" can only delete mirror pods")
        );
        // Nor anything else.
        let err = api
            .get(pod_ref("web-node-1"))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            forbidden("pods \"web-node-1\" is forbidden: User \"node:node-1\" cannot get resource \"pods\" in API group \"\" in the namespace \"default\"")
        );

        api.delete(pod_ref("web-node-1")).await.unwrap();
        let err = api.delete(pod_ref("web-node-1")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    });
    // What the admin sees: the refusals changed nothing.
    let out = cp.ok(&["get", "pods", "-o", "name"]);
    assert_eq!(out, "pod/plain-1\npod/web-2\n");
    // The refusal is audited.
    let refused = cp
        .audit_events()
        .into_iter()
        .find(|e| e["user"]["username"] == "node:node-1" && e["objectRef"]["name"] == "web-2")
        .expect("the refused delete is audited");
    assert_eq!(refused["responseStatus"]["code"], 403);
}

/// The agent's manifest loop (`--pod-manifests`) against the real control
/// plane with node-1's certificate: a file appears, changes and goes, and
/// a mirror pod left behind while the agent was away is removed at start.
#[test]
fn the_manifest_loop_keeps_mirror_pods_in_step_with_the_files() {
    let cp = ControlPlane::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("web.yaml");
    let web = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  hostNetwork: true\n  containers:\n    - name: main\n      ports:\n        - name: http\n          containerPort: 8080\n";
    std::fs::write(&manifest, web).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let channels = rt.block_on(cp.join("node-1"));
    // Left over from an earlier run whose file is gone.
    rt.block_on(async {
        ResourcesClient::new(channels.borrow().clone())
            .apply(apply(pod("stale-node-1", "node-1", MIRROR, 9000)))
            .await
            .unwrap();
    });
    let metrics = switchyard_agent::metrics::Metrics::new();
    let _loop = rt.spawn(switchyard_agent::mirror::run(
        dir.path().to_path_buf(),
        "node-1".into(),
        "10.0.0.1".parse().unwrap(),
        channels,
        metrics,
    ));
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let names = || cp.ok(&["get", "pods", "-o", "name"]);
    wait("the mirror pod, and the stale one gone", &|| {
        names() == "pod/web-node-1\n"
    });
    let got = cp.json(&["get", "pod", "web-node-1"]);
    assert_eq!(got["spec"]["nodeName"], "node-1");
    assert_eq!(got["spec"]["hostNetwork"], true);
    assert_eq!(got["status"]["podIP"], "10.0.0.1");
    assert_eq!(got["metadata"]["labels"]["app"], "web");
    let hash = got["metadata"]["annotations"]["kubernetes.io/config.mirror"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hash.len(), 32);

    std::fs::write(&manifest, web.replace("8080", "8081")).unwrap();
    wait("the update", &|| {
        cp.json(&["get", "pod", "web-node-1"])["spec"]["containers"][0]["ports"][0]["containerPort"]
            == 8081
    });
    let updated = cp.json(&["get", "pod", "web-node-1"]);
    assert_ne!(
        updated["metadata"]["annotations"]["kubernetes.io/config.mirror"],
        hash.as_str()
    );

    std::fs::remove_file(&manifest).unwrap();
    let removed = Instant::now();
    wait("the deletion", &|| names().is_empty());
    assert!(
        removed.elapsed() < Duration::from_secs(3),
        "{:?}",
        removed.elapsed()
    );
}
