//! The DNS responder over real sockets on loopback: UDP and TCP, answers
//! following the view, forwarding, truncation, bind errors, and bounded
//! work under a flood. A second responder with its own zone plays the
//! upstream resolver (or a socket that reads and never answers), so
//! nothing leaves the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use switchyard_agent::dns::{self, DnsError, ForwardMetrics};
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

/// An upstream that reads every question and never answers; counts them.
async fn silent_upstream() -> (SocketAddr, Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let heard = Arc::new(AtomicU64::new(0));
    let counting = heard.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while socket.recv_from(&mut buf).await.is_ok() {
            counting.fetch_add(1, Ordering::Relaxed);
        }
    });
    (addr, heard)
}

/// A responder forwarding to `upstreams` with at most `max` in flight.
async fn start_bounded(
    view: Arc<ClusterView>,
    upstreams: Vec<SocketAddr>,
    max: usize,
) -> (SocketAddr, ForwardMetrics, watch::Sender<Arc<ClusterView>>) {
    let (tx, rx) = watch::channel(view);
    let metrics = ForwardMetrics::default();
    let server = dns::bind("127.0.0.1:0".parse().unwrap(), rx, upstreams)
        .await
        .unwrap()
        .forward_max(max)
        .counting(metrics.clone());
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run());
    (addr, metrics, tx)
}

fn question_with_id(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.metadata.recursion_desired = true;
    m.to_vec().unwrap()
}

/// What one flooding client saw.
#[derive(Debug, Default)]
struct Flood {
    sent: u64,
    refused: u64,
    servfail: u64,
    other: u64,
}

/// One client asking for distinct outside names as fast as the responder
/// answers, with at most `window` unanswered (so the responder's socket
/// never overflows and every question must get an answer), until `done`.
async fn flood(server: SocketAddr, client: u16, window: u64, done: Arc<AtomicBool>) -> Flood {
    const MAX_PER_CLIENT: u64 = 50_000;
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    socket.connect(server).await.unwrap();
    let answered = Arc::new(AtomicU64::new(0));
    let reader = {
        let (socket, answered) = (socket.clone(), answered.clone());
        tokio::spawn(async move {
            let mut tally = Flood::default();
            let mut buf = vec![0u8; 4096];
            // Until nothing came for longer than the upstream timeout (2 s):
            // the questions that got slots are answered when it passes.
            while let Ok(Ok(n)) = timeout(Duration::from_secs(4), socket.recv(&mut buf)).await {
                let m = Message::from_vec(&buf[..n]).unwrap();
                match m.metadata.response_code {
                    ResponseCode::Refused => tally.refused += 1,
                    ResponseCode::ServFail => tally.servfail += 1,
                    _ => tally.other += 1,
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
            tally
        })
    };
    let mut sent = 0u64;
    while sent < MAX_PER_CLIENT && !done.load(Ordering::Relaxed) {
        if sent - answered.load(Ordering::Relaxed) >= window {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let name = format!("q{sent}.c{client}.flood.test.");
        socket
            .send(&question_with_id(&name, sent as u16))
            .await
            .unwrap();
        sent += 1;
    }
    let mut tally = reader.await.unwrap();
    tally.sent = sent;
    tally
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Issue 24: a flood of questions for outside names whose upstream never
/// answers holds at most `max` slots; the rest are REFUSED at once, and a
/// cluster name asked every 5 ms meanwhile is answered every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forwarded_queries_is_bounded_and_cluster_names_keep_answering() {
    const MAX: usize = 20;
    const PROBES: usize = 300;
    let (upstream, heard) = silent_upstream().await;
    let (addr, metrics, _tx) = start_bounded(
        view(
            "cluster.local",
            vec![service("default", "web", "10.96.0.20")],
        ),
        vec![upstream],
        MAX,
    )
    .await;

    let done = Arc::new(AtomicBool::new(false));
    let flooding: Vec<_> = (0..3)
        .map(|client| tokio::spawn(flood(addr, client, 2 * MAX as u64, done.clone())))
        .collect();

    // The cluster name, every 5 ms, each answer waited for (as dns-query).
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    probe.connect(addr).await.unwrap();
    let mut latencies = Vec::with_capacity(PROBES);
    let mut most_in_flight = 0;
    let mut buf = vec![0u8; 4096];
    for i in 0..PROBES {
        let id = 40_000 + i as u16;
        let sent = Instant::now();
        probe
            .send(&question_with_id("web.default.svc.cluster.local.", id))
            .await
            .unwrap();
        let reply = loop {
            let n = timeout(Duration::from_secs(1), probe.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("cluster query {i} unanswered under the flood"))
                .unwrap();
            let m = Message::from_vec(&buf[..n]).unwrap();
            if m.metadata.id == id {
                break m;
            }
        };
        latencies.push(sent.elapsed());
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answers(&reply),
            ["web.default.svc.cluster.local. 30 IN A 10.96.0.20"]
        );
        most_in_flight = most_in_flight.max(metrics.in_flight.get());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, Ordering::Relaxed);
    let mut total = Flood::default();
    for f in flooding {
        let f = f.await.unwrap();
        total.sent += f.sent;
        total.refused += f.refused;
        total.servfail += f.servfail;
        total.other += f.other;
    }
    latencies.sort();
    println!(
        "cluster name under a flood: {} queries, all answered, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    println!(
        "flood: {} sent, {} REFUSED at the cap, {} SERVFAIL after the upstream timeout, {} forwarded upstream, most in flight {most_in_flight} (cap {MAX})",
        total.sent,
        total.refused,
        total.servfail,
        heard.load(Ordering::Relaxed),
    );

    assert!(
        most_in_flight <= MAX as i64,
        "in flight {most_in_flight} > {MAX}"
    );
    assert_eq!(
        total.refused + total.servfail + total.other,
        total.sent,
        "every flood question answered"
    );
    assert_eq!(
        total.other, 0,
        "only REFUSED (over the cap) or SERVFAIL (timed out)"
    );
    assert!(total.refused > 0, "the cap was reached: {total:?}");
    assert_eq!(total.refused, metrics.max_concurrent_rejects.get());
    // Each question that had a slot went upstream once and failed there.
    assert_eq!(total.servfail, metrics.failures.get());
    assert_eq!(total.servfail, heard.load(Ordering::Relaxed));
    assert_eq!(metrics.in_flight.get(), 0, "every slot given back");
}

/// The cap is shared by UDP and TCP: with every slot held by UDP questions
/// to a silent upstream, an outside name over TCP is REFUSED at once, an
/// ExternalName gets its CNAME alone, and cluster names answer on both.
#[tokio::test]
async fn udp_and_tcp_share_the_forward_cap() {
    const MAX: usize = 4;
    let (upstream, heard) = silent_upstream().await;
    let ext = external("default", "ext", "api.example.test");
    let (addr, metrics, _tx) = start_bounded(
        view(
            "cluster.local",
            vec![service("default", "web", "10.96.0.20"), ext],
        ),
        vec![upstream],
        MAX,
    )
    .await;
    let holder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..MAX {
        let q = question_with_id(&format!("hold{i}.example.test."), i as u16);
        holder.send_to(&q, addr).await.unwrap();
    }
    // Wait until every slot holds a question the upstream heard.
    let deadline = Instant::now() + Duration::from_secs(1);
    while heard.load(Ordering::Relaxed) < MAX as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(heard.load(Ordering::Relaxed), MAX as u64);
    assert_eq!(metrics.in_flight.get(), MAX as i64);

    let m = tcp(addr, "other.example.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let m = udp(addr, "other.example.test.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(metrics.max_concurrent_rejects.get(), 2);

    let m = udp(addr, "ext.default.svc.cluster.local.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&m),
        ["ext.default.svc.cluster.local. 30 IN CNAME api.example.test."]
    );
    for m in [
        tcp(addr, "web.default.svc.cluster.local.", RecordType::A).await,
        udp(addr, "web.default.svc.cluster.local.", RecordType::A, false).await,
    ] {
        assert_eq!(
            answers(&m),
            ["web.default.svc.cluster.local. 30 IN A 10.96.0.20"]
        );
    }
    assert_eq!(
        heard.load(Ordering::Relaxed),
        MAX as u64,
        "nothing more went upstream"
    );
}
