//! A Kubernetes client library (kube-rs, on k8s-openapi's types) against
//! the control plane's REST API, with the control plane's kubeconfig:
//! create, list, a watch from a list's resourceVersion through 500 changes
//! without a gap, patch and delete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use support::ControlPlane;

const CHANGES: usize = 500;

async fn client(cp: &ControlPlane) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(cp.config()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_creates_lists_watches_patches_and_deletes() {
    let cp = ControlPlane::start(&[]);
    let services: Api<Service> = Api::namespaced(client(&cp).await, "default");

    let created = services
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    let ip: std::net::Ipv4Addr = created
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    // In the default service CIDR, 10.96.0.0/12.
    assert!(
        ip.octets()[0] == 10 && (96..112).contains(&ip.octets()[1]),
        "{ip}"
    );
    let refused = services
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap_err();
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (409, "AlreadyExists")
            );
            assert_eq!(status.message, "services \"web\" already exists");
        }
        other => panic!("{other}"),
    }

    let listed = services.list(&ListParams::default()).await.unwrap();
    let names: Vec<_> = listed
        .items
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["web"]);
    let from = listed.metadata.resource_version.unwrap();

    let watching = services.clone();
    let watch = tokio::spawn(async move {
        let stream = watching
            .watch(&WatchParams::default(), &from)
            .await
            .unwrap();
        stream
            .try_filter(|e| std::future::ready(!matches!(e, WatchEvent::Bookmark(_))))
            .take(CHANGES + 1)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
    for n in 0..CHANGES {
        let patch = json!({"metadata": {"labels": {"n": n.to_string()}}});
        services
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
    }
    let deleted = services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = deleted
        .left()
        .expect("a deleted Service is answered with the Service");
    assert_eq!(deleted.metadata.name.as_deref(), Some("web"));

    let events = tokio::time::timeout(std::time::Duration::from_secs(60), watch)
        .await
        .expect("the watch delivered every change within a minute")
        .unwrap();
    let mut last_version = 0u64;
    for (n, event) in events.iter().take(CHANGES).enumerate() {
        let WatchEvent::Modified(svc) = event else {
            panic!("event {n} is not MODIFIED: {event:?}")
        };
        assert_eq!(
            svc.metadata.labels.as_ref().unwrap()["n"],
            n.to_string(),
            "event {n}"
        );
        let version: u64 = svc
            .metadata
            .resource_version
            .as_ref()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            version > last_version,
            "event {n}: {version} after {last_version}"
        );
        last_version = version;
    }
    assert!(
        matches!(&events[CHANGES], WatchEvent::Deleted(svc) if svc.metadata.name.as_deref() == Some("web"))
    );
    let left = services.list(&ListParams::default()).await.unwrap();
    assert!(left.items.is_empty());
}
