//! The etcd store's history reads against a real etcd (Debian's `etcd`, one
//! member on loopback, see `switchyard_lab::etcd`): a slow etcd makes a read
//! fail, so the watcher relists, instead of handing on part of the history
//! as all of it; revisions another cluster wrote under its own prefix do not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_api::resources::{Kind, Object};
use switchyard_control_plane::store::coordination::Member;
use switchyard_control_plane::store::{Batch, EtcdConfig, EtcdStore, Put, Store, StoreError};
use switchyard_lab::etcd::EtcdCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The store's flags for `etcd` through `endpoints`, under `prefix`.
fn config(etcd: &EtcdCluster, endpoints: &str, prefix: &str) -> EtcdConfig {
    let flags = etcd.control_plane_flags_for(endpoints);
    let flag = |name: &str| {
        let at = flags.iter().position(|f| f == name).unwrap();
        PathBuf::from(&flags[at + 1])
    };
    EtcdConfig {
        endpoints: endpoints.split(',').map(str::to_string).collect(),
        ca_file: Some(flag("--etcd-cafile")),
        cert_file: Some(flag("--etcd-certfile")),
        key_file: Some(flag("--etcd-keyfile")),
        prefix: prefix.to_string(),
    }
}

/// A Service carrying `padding` bytes in an annotation.
fn service(name: &str, padding: usize) -> Object {
    let json = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {"padding": "x".repeat(padding)},
        },
        "spec": {"ports": [{"port": 80}]},
    });
    Object::from_json(Kind::Service, &json.to_string()).unwrap()
}

async fn create(store: &EtcdStore, object: Object) -> u64 {
    let batch = Batch {
        puts: vec![Put { object, expect: 0 }],
        ..Default::default()
    };
    store.commit(batch).await.unwrap()
}

/// A relay to `to` that passes what etcd sends back at about 50 KB/s: a
/// slow etcd (or the way to it), as a history read sees it.
async fn slow_relay(to: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(to).await else {
                    return;
                };
                let (mut client_reads, mut client_writes) = inbound.into_split();
                let (mut etcd_reads, mut etcd_writes) = outbound.into_split();
                let up = tokio::io::copy(&mut client_reads, &mut etcd_writes);
                let down = async {
                    let mut buf = [0u8; 1024];
                    loop {
                        let n = etcd_reads.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<(), std::io::Error>(());
                        }
                        client_writes.write_all(&buf[..n]).await?;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    address
}

/// The defect this guards against: a history read that ran out of time
/// returned what it had so far (here: nothing of the 2 MB on its way) as
/// the whole history, and a watcher resumed from it missed those changes
/// for good. Now it fails, naming how far it got, and the API turns that
/// into OUT_OF_RANGE: the watcher lists again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_read_from_a_slow_etcd_fails_rather_than_return_a_part() {
    if !switchyard_lab::require_etcd(
        "a_history_read_from_a_slow_etcd_fails_rather_than_return_a_part",
    ) {
        return;
    }
    let etcd = EtcdCluster::start(1).unwrap();
    let direct = EtcdStore::open(&config(&etcd, &etcd.endpoints(), "/sy")).unwrap();
    let mut after = 0;
    let mut until = 0;
    for i in 0..100 {
        let rev = create(&direct, service(&format!("s{i}"), 20_000)).await;
        if i == 0 {
            after = rev - 1;
        }
        until = rev;
    }
    let relay = slow_relay(etcd.client_address(0).parse().unwrap()).await;
    let slow = EtcdStore::open(&config(&etcd, &format!("https://{relay}"), "/sy")).unwrap();
    let started = Instant::now();
    let read = slow.events_after(after, until).await;
    let took = started.elapsed();
    match read {
        Err(StoreError::HistoryIncomplete {
            after: a,
            until: u,
            reached,
            ..
        }) => {
            assert_eq!((a, u), (after, until));
            assert!(reached < until, "reached {reached}");
        }
        Ok(events) => panic!(
            "{} of the 100 events handed on as the whole history",
            events.len()
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }
    assert!(took < Duration::from_secs(10), "the read took {took:?}");
    // The same read straight from etcd is whole.
    let whole = direct.events_after(after, until).await.unwrap();
    assert_eq!(whole.len(), 100);
}

fn member(name: &str) -> Member {
    Member {
        name: name.to_string(),
        address: "127.0.0.1:1".to_string(),
        started: String::new(),
        revision: 0,
        agents: 0,
        nodes: Default::default(),
        tunnels: Vec::new(),
        announced_unix_ms: 0,
    }
}

/// Another cluster writing under its own prefix after this one's last
/// write leaves a window whose last revisions have no event here. Without
/// a proof the read is whole it may only fail (etcd before 3.4.25/3.5.8
/// cannot prove it by progress notification); with a control plane
/// announcing itself under the prefix, as each does every two seconds,
/// the next announcement proves it, and the read is whole and exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clusters_revisions_end_a_history_read_whole() {
    if !switchyard_lab::require_etcd("another_clusters_revisions_end_a_history_read_whole") {
        return;
    }
    let etcd = EtcdCluster::start(1).unwrap();
    let ours = Arc::new(EtcdStore::open(&config(&etcd, &etcd.endpoints(), "/ours")).unwrap());
    let theirs = EtcdStore::open(&config(&etcd, &etcd.endpoints(), "/theirs")).unwrap();
    let mine = create(&ours, service("mine", 10)).await;
    let mut until = mine;
    for i in 0..5 {
        until = create(&theirs, service(&format!("t{i}"), 10)).await;
    }
    let names = |events: &[switchyard_control_plane::store::LoggedEvent]| -> Vec<(u64, String)> {
        events
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_str(&e.object).unwrap();
                (
                    e.revision,
                    v["metadata"]["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let expected = vec![(mine, "mine".to_string())];

    // Nothing of ours after `mine`: whole by an ordered progress
    // notification, or an error; never a part.
    match ours.events_after(mine - 1, until).await {
        Ok(events) => assert_eq!(names(&events), expected),
        Err(StoreError::HistoryIncomplete { reached, .. }) => assert_eq!(reached, mine),
        Err(e) => panic!("unexpected error: {e}"),
    }

    // A control plane of ours announcing itself, as each does.
    let coordination = ours.clone().coordination().unwrap();
    let lease = coordination.grant(10).await.unwrap();
    let announcer = {
        let coordination = coordination.clone();
        tokio::spawn(async move {
            loop {
                coordination.announce(lease, &member("cp-1")).await.unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let started = Instant::now();
    let events = ours.events_after(mine - 1, until).await.unwrap();
    let took = started.elapsed();
    announcer.abort();
    assert_eq!(names(&events), expected);
    assert!(
        took < Duration::from_secs(2),
        "the read waited {took:?}: the announcement did not end it"
    );
}
