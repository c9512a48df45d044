//! The DNS responder over real sockets on loopback: UDP and TCP, answers
//! following the view, forwarding, truncation, and bind errors. A second
//! responder with its own zone plays the upstream resolver, so nothing
//! leaves the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use switchyard_agent::dns::{self, DnsError};
use switchyard_agent::model::ServiceKey;
use switchyard_agent::view::ClusterView;
use switchyard_api::v1::{ClusterConfig, Endpoint, ServicePort, ServiceState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::timeout;

fn service(ns: &str, name: &str, ip: &str) -> ServiceState {
    ServiceState {
        namespace: ns.into(),
        name: name.into(),
        r#type: "ClusterIP".into(),
        cluster_ip: ip.into(),
        ports: vec![ServicePort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 80,
            node_port: 0,
        }],
        ..Default::default()
    }
}

fn headless(ns: &str, name: &str, endpoints: usize) -> ServiceState {
    ServiceState {
        headless: true,
        cluster_ip: String::new(),
        endpoints: (0..endpoints)
            .map(|i| Endpoint {
                ip: format!("10.244.{}.{}", i / 200, i % 200 + 1),
                ready: true,
                ..Default::default()
            })
            .collect(),
        ..service(ns, name, "")
    }
}

fn external(ns: &str, name: &str, target: &str) -> ServiceState {
    ServiceState {
        r#type: "ExternalName".into(),
        external_name: target.into(),
        cluster_ip: String::new(),
        ports: Vec::new(),
        ..service(ns, name, "")
    }
}

fn view(domain: &str, services: Vec<ServiceState>) -> Arc<ClusterView> {
    Arc::new(ClusterView {
        version: 1,
        cluster: ClusterConfig {
            cluster_domain: domain.into(),
            cluster_dns: "10.96.0.10".into(),
            ..Default::default()
        },
        services: services
            .into_iter()
            .map(|s| {
                (
                    ServiceKey::new(s.namespace.as_str(), s.name.as_str()),
                    Arc::new(s),
                )
            })
            .collect(),
        ..Default::default()
    })
}

/// A responder on a random loopback port; the sender updates its view.
async fn start(
    view: Arc<ClusterView>,
    upstreams: Vec<SocketAddr>,
) -> (SocketAddr, watch::Sender<Arc<ClusterView>>) {
    let (tx, rx) = watch::channel(view);
    let server = dns::bind("127.0.0.1:0".parse().unwrap(), rx, upstreams)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run());
    (addr, tx)
}

fn question(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.metadata.recursion_desired = true;
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

async fn udp(server: SocketAddr, name: &str, qtype: RecordType, edns: bool) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(&question(name, qtype, edns)).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("UDP answer in time")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

async fn tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let q = question(name, qtype, false);
    let mut stream = TcpStream::connect(server).await.unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    timeout(Duration::from_secs(10), stream.read_exact(&mut len))
        .await
        .expect("TCP answer in time")
        .unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    Message::from_vec(&body).unwrap()
}

fn answers(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.to_string()).collect()
}

#[tokio::test]
async fn answers_over_udp_and_tcp() {
    let (addr, _tx) = start(
        view(
            "cluster.local",
            vec![service("default", "web", "10.96.0.20")],
        ),
        vec![],
    )
    .await;
    let name = "web.default.svc.cluster.local.";
    let expected = ["web.default.svc.cluster.local. 30 IN A 10.96.0.20"];
    for m in [
        udp(addr, name, RecordType::A, false).await,
        udp(addr, name, RecordType::A, true).await,
        tcp(addr, name, RecordType::A).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert!(!m.metadata.recursion_available);
        assert_eq!(answers(&m), expected);
    }
    let nx = udp(
        addr,
        "nope.default.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities.len(), 1, "SOA for negative caching");
    let nodata = udp(addr, name, RecordType::AAAA, true).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities.len(), 1);
    assert!(nodata.edns.is_some(), "EDNS answered with EDNS");
}

#[tokio::test]
async fn answers_follow_the_view_immediately() {
    let (addr, tx) = start(view("cluster.local", vec![]), vec![]).await;
    let name = "web.default.svc.cluster.local.";
    let rcode = |m: &Message| m.metadata.response_code;
    assert_eq!(
        rcode(&udp(addr, name, RecordType::A, false).await),
        ResponseCode::NXDomain
    );

    tx.send_replace(view(
        "cluster.local",
        vec![service("default", "web", "10.96.0.20")],
    ));
    let m = udp(addr, name, RecordType::A, false).await;
    assert_eq!(
        answers(&m),
        ["web.default.svc.cluster.local. 30 IN A 10.96.0.20"]
    );

    tx.send_replace(view(
        "cluster.local",
        vec![service("default", "web", "10.96.0.21")],
    ));
    let m = udp(addr, name, RecordType::A, false).await;
    assert_eq!(
        answers(&m),
        ["web.default.svc.cluster.local. 30 IN A 10.96.0.21"]
    );

    tx.send_replace(view("cluster.local", vec![]));
    assert_eq!(
        rcode(&udp(addr, name, RecordType::A, false).await),
        ResponseCode::NXDomain
    );
}

#[tokio::test]
async fn outside_names_are_refused_without_upstreams() {
    let (addr, _tx) = start(view("cluster.local", vec![]), vec![]).await;
    let m = udp(addr, "example.com.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn zone_transfers_and_other_classes_are_refused() {
    let (addr, _tx) = start(view("cluster.local", vec![]), vec![]).await;
    let m = tcp(addr, "cluster.local.", RecordType::AXFR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn outside_names_are_forwarded_to_upstreams() {
    let (upstream, _utx) = start(
        view("upstream.test", vec![service("prod", "api", "192.0.2.7")]),
        vec![],
    )
    .await;
    let (addr, _tx) = start(view("cluster.local", vec![]), vec![upstream]).await;
    let m = udp(addr, "api.prod.svc.upstream.test.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_available);
    assert_eq!(
        answers(&m),
        ["api.prod.svc.upstream.test. 30 IN A 192.0.2.7"]
    );
    // The upstream's NXDOMAIN comes back as is.
    let m = udp(addr, "gone.prod.svc.upstream.test.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // In-zone names are still answered here.
    let m = udp(addr, "svc.cluster.local.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
}

#[tokio::test]
async fn a_dead_upstream_is_skipped_and_all_dead_is_servfail() {
    let (upstream, _utx) = start(
        view("upstream.test", vec![service("prod", "api", "192.0.2.7")]),
        vec![],
    )
    .await;
    // A port nothing listens on: UDP and TCP both refused at once.
    let dead = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let (addr, _tx) = start(view("cluster.local", vec![]), vec![dead, upstream]).await;
    let m = udp(addr, "api.prod.svc.upstream.test.", RecordType::A, false).await;
    assert_eq!(
        answers(&m),
        ["api.prod.svc.upstream.test. 30 IN A 192.0.2.7"]
    );

    let (addr, _tx) = start(view("cluster.local", vec![]), vec![dead]).await;
    let m = udp(addr, "example.com.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn external_names_are_completed_through_the_upstreams() {
    let (upstream, _utx) = start(
        view("upstream.test", vec![service("prod", "api", "192.0.2.7")]),
        vec![],
    )
    .await;
    let ext = external("default", "ext", "api.prod.svc.upstream.test");
    let (addr, _tx) = start(view("cluster.local", vec![ext.clone()]), vec![upstream]).await;
    let m = udp(addr, "ext.default.svc.cluster.local.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&m),
        [
            "ext.default.svc.cluster.local. 30 IN CNAME api.prod.svc.upstream.test.",
            "api.prod.svc.upstream.test. 30 IN A 192.0.2.7",
        ]
    );
    // Without upstreams the client gets the CNAME alone.
    let (addr, _tx) = start(view("cluster.local", vec![ext]), vec![]).await;
    let m = udp(addr, "ext.default.svc.cluster.local.", RecordType::A, false).await;
    assert_eq!(
        answers(&m),
        ["ext.default.svc.cluster.local. 30 IN CNAME api.prod.svc.upstream.test."]
    );
}

#[tokio::test]
async fn large_answers_truncate_over_udp_and_complete_over_tcp() {
    let big = headless("default", "big", 120);
    let (addr, _tx) = start(view("cluster.local", vec![big.clone()]), vec![]).await;
    let name = "big.default.svc.cluster.local.";
    let m = udp(addr, name, RecordType::A, false).await;
    assert!(
        m.metadata.truncation,
        "512-byte UDP answer must be truncated"
    );
    assert!(m.answers.len() < 120);
    assert_eq!(tcp(addr, name, RecordType::A).await.answers.len(), 120);

    // Forwarded: the upstream's UDP answer is truncated, so the responder
    // asks it again over TCP.
    let (upstream, _utx) = start(view("upstream.test", vec![big]), vec![]).await;
    let (fwd, _tx) = start(view("cluster.local", vec![]), vec![upstream]).await;
    let m = tcp(fwd, "big.default.svc.upstream.test.", RecordType::A).await;
    assert_eq!(m.answers.len(), 120);
}

#[tokio::test]
async fn bind_errors_are_reported_before_serving() {
    let (addr, _tx) = start(view("cluster.local", vec![]), vec![]).await;
    let (_tx2, rx) = watch::channel(view("cluster.local", vec![]));
    let err = dns::bind(addr, rx.clone(), vec![]).await.err().unwrap();
    assert!(matches!(err, DnsError::Bind { proto: "udp", .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    // An address this host does not have.
    let err = dns::bind("192.0.2.1:0".parse().unwrap(), rx, vec![])
        .await
        .err()
        .unwrap();
    assert!(matches!(err, DnsError::Bind { .. }), "{err}");
}

fn dig(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+short"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// `dig` (when installed) reads the answers as any resolver would.
#[tokio::test]
async fn dig_reads_the_answers() {
    if std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("dig not installed; skipping");
        return;
    }
    let (addr, _tx) = start(
        view(
            "cluster.local",
            vec![service("default", "web", "10.96.0.20")],
        ),
        vec![],
    )
    .await;
    let port = addr.port();
    let got = tokio::task::spawn_blocking(move || {
        [
            dig(port, &["web.default.svc.cluster.local"]),
            dig(port, &["+tcp", "WEB.Default.svc.cluster.local"]),
            dig(
                port,
                &["-t", "SRV", "_http._tcp.web.default.svc.cluster.local"],
            ),
            dig(port, &["-x", "10.96.0.20"]),
            dig(port, &["-t", "TXT", "dns-version.cluster.local"]),
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        got,
        [
            "10.96.0.20\n",
            "10.96.0.20\n",
            "0 100 80 web.default.svc.cluster.local.\n",
            "web.default.svc.cluster.local.\n",
            "\"1.1.0\"\n",
        ]
    );
}
