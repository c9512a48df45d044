//! Relaying questions the cluster zone does not own to the node's upstream
//! resolvers (`--dns-upstream`).
//!
//! Plain RFC 1035 transport: UDP first, TCP when the UDP answer comes back
//! truncated (or UDP fails). Upstreams are tried in the order given, each
//! once, so a dead first resolver costs one timeout, not the query.
//!
//! The work is bounded by design, because an upstream that stops answering
//! turns every forwarded question into two seconds of held state, and
//! clients (or a misbehaving pod) keep asking:
//! - at most `max` questions wait on the upstreams at once — dnsmasq's
//!   `dns-forward-max` (default 150, ours too) and CoreDNS forward's
//!   `max_concurrent`. A question takes a [`Slot`] before any work starts;
//!   when none is free the responder answers REFUSED at once, as CoreDNS
//!   does over `max_concurrent` (a capacity signal, not a resolution
//!   failure, and not cached as a negative answer), and counts it;
//! - identical questions in flight share one upstream exchange (as dnsmasq
//!   does), so a burst of one name costs one socket;
//! - a UDP answer is read into a buffer no larger than what the client can
//!   take (at most [`MAX_UDP_ANSWER`]); a larger one is fetched over TCP.
//!
//! Each exchange keeps its own socket, so its source port is random (RFC
//! 5452's defence against spoofed answers); the cap bounds those sockets.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_server::proto::op::{Message, Query};
use hickory_server::proto::rr::{Name, RecordType};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, Instant};

/// How long one upstream gets for one exchange. glibc gives the whole
/// lookup 5 s per nameserver; 2 s leaves room to try a second upstream.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Questions that may wait on the upstreams at once by default: dnsmasq's
/// `dns-forward-max`. At ~2 s per dead upstream this still relays 75
/// questions a second when every upstream is silent, and thousands when
/// they answer in milliseconds.
pub const DEFAULT_FORWARD_MAX: usize = 150;
/// The largest UDP answer read from an upstream: the EDNS payload resolvers
/// offer in practice (DNS flag day 2020 settled on 1232; 4096 is the old
/// default). What does not fit is asked again over TCP.
pub const MAX_UDP_ANSWER: usize = 4096;
/// Without EDNS a UDP answer holds at most 512 bytes (RFC 1035 §4.2.1).
const CLASSIC_PAYLOAD: usize = 512;

/// Why no upstream produced an answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolvers are configured")]
    NoUpstreams,
    #[error("upstream {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("upstream {0} did not answer in time")]
    Timeout(SocketAddr),
    #[error("upstream {upstream} sent an undecodable answer: {detail}")]
    Decode {
        upstream: SocketAddr,
        detail: String,
    },
    #[error("upstream {0} sent a UDP answer larger than the client takes")]
    TooLarge(SocketAddr),
    #[error("cannot encode the question: {0}")]
    Encode(String),
    /// The same question was already on its way and that exchange failed.
    #[error("the same question in flight failed: {0}")]
    Coalesced(String),
}

/// What the forwarder counts, registered by [`crate::metrics::Metrics`]
/// (unregistered copies count for nobody, as in tests).
#[derive(Debug, Clone, Default)]
pub struct ForwardMetrics {
    /// Questions refused at once because `max` were already in flight
    /// (CoreDNS: `coredns_forward_max_concurrent_rejects_total`).
    pub max_concurrent_rejects: Counter,
    /// Questions holding a slot now.
    pub in_flight: Gauge,
    /// Questions that joined an identical one already in flight.
    pub coalesced: Counter,
    /// Forwarded questions no upstream answered (the client got SERVFAIL).
    pub failures: Counter,
}

/// The node's upstream resolvers and the bound on the work they are given.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Arc<[SocketAddr]>,
    slots: Arc<Semaphore>,
    flights: Arc<Flights>,
    metrics: ForwardMetrics,
}

impl Default for Forwarder {
    fn default() -> Self {
        Forwarder::new(Vec::new())
    }
}

/// Leave for one question to wait on the upstreams: one of `max`, taken
/// before the work starts and given back when it is dropped, so the work
/// in flight can never exceed the cap, whichever transport asked.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl Forwarder {
    /// Upstreams with the default cap and metrics that count for nobody.
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Forwarder::bounded(upstreams, DEFAULT_FORWARD_MAX, ForwardMetrics::default())
    }

    /// Upstreams with at most `max` questions in flight (at least one).
    pub fn bounded(upstreams: Vec<SocketAddr>, max: usize, metrics: ForwardMetrics) -> Self {
        Forwarder {
            upstreams: upstreams.into(),
            slots: Arc::new(Semaphore::new(max.max(1))),
            flights: Arc::default(),
            metrics,
        }
    }

    /// Whether anything is forwarded at all (else outside names are REFUSED).
    pub fn enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// A slot for one question, or `None` (counted) when `max` are in
    /// flight: the caller answers at once instead of waiting.
    pub fn try_slot(&self) -> Option<Slot> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.in_flight.inc();
                Some(Slot {
                    _permit: permit,
                    in_flight: self.metrics.in_flight.clone(),
                })
            }
            Err(_) => {
                self.metrics.max_concurrent_rejects.inc();
                None
            }
        }
    }

    /// Sends `query` (a whole DNS message, as the client sent it) to the
    /// upstreams in turn and returns the first answer; `max_udp` is the
    /// largest UDP answer the client takes. The slot is held until then.
    pub async fn exchange(
        &self,
        slot: Slot,
        query: &[u8],
        max_udp: usize,
    ) -> Result<Message, ForwardError> {
        let outcome = match self.flights.join(flight_key(query)) {
            Flight::Follower(answer) => {
                self.metrics.coalesced.inc();
                match answer.await {
                    Ok(Ok(message)) => Ok(message),
                    Ok(Err(detail)) => Err(ForwardError::Coalesced(detail)),
                    Err(_) => Err(ForwardError::Coalesced("it was abandoned".into())),
                }
            }
            Flight::Leader(lead) => {
                let outcome = self.ask_upstreams(query, max_udp).await;
                lead.land(&outcome);
                outcome
            }
        };
        drop(slot);
        if outcome.is_err() {
            self.metrics.failures.inc();
        }
        outcome
    }

    /// Asks the upstreams for `name`/`qtype` on our own behalf (to complete
    /// an ExternalName CNAME).
    pub async fn lookup(
        &self,
        slot: Slot,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Message, ForwardError> {
        let mut message = Message::query();
        message.add_query(Query::query(name.clone(), qtype));
        message.metadata.recursion_desired = true;
        let bytes = message
            .to_vec()
            .map_err(|e| ForwardError::Encode(e.to_string()))?;
        self.exchange(slot, &bytes, CLASSIC_PAYLOAD).await
    }

    async fn ask_upstreams(&self, query: &[u8], max_udp: usize) -> Result<Message, ForwardError> {
        let id = query_id(query);
        let buffer = max_udp.clamp(CLASSIC_PAYLOAD, MAX_UDP_ANSWER);
        let mut last = ForwardError::NoUpstreams;
        for &upstream in self.upstreams.iter() {
            match exchange_one(upstream, query, id, buffer).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::debug!(error = %e, "upstream failed");
                    last = e;
                }
            }
        }
        Err(last)
    }
}

// === impl Flights ===

/// What a follower receives: the leader's answer, or why it failed.
type Landed = Result<Message, String>;

/// Questions on their way to the upstreams, by their bytes without the ID
/// (so only byte-identical questions share an answer: same name, case,
/// flags and EDNS options), with the followers waiting for the same answer.
#[derive(Debug, Default)]
struct Flights(Mutex<HashMap<Vec<u8>, Vec<oneshot::Sender<Landed>>>>);

enum Flight<'a> {
    /// The first asker: does the exchange and hands its outcome on.
    Leader(Lead<'a>),
    /// An identical question was in flight: wait for its outcome.
    Follower(oneshot::Receiver<Landed>),
}

/// The leader's claim on a question in flight. Dropped without landing
/// (the leader's task was cancelled), it takes the question off the table
/// and its followers fail rather than wait forever.
struct Lead<'a> {
    flights: &'a Flights,
    key: Option<Vec<u8>>,
}

impl Flights {
    fn join(&self, key: Vec<u8>) -> Flight<'_> {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match table.entry(key) {
            Entry::Occupied(mut waiting) => {
                let (tx, rx) = oneshot::channel();
                waiting.get_mut().push(tx);
                Flight::Follower(rx)
            }
            Entry::Vacant(slot) => {
                let key = slot.key().clone();
                slot.insert(Vec::new());
                Flight::Leader(Lead {
                    flights: self,
                    key: Some(key),
                })
            }
        }
    }

    fn take(&self, key: &[u8]) -> Vec<oneshot::Sender<Landed>> {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.remove(key).unwrap_or_default()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Lead<'_> {
    /// Hands the outcome to every follower; a question asked after this
    /// starts a new exchange.
    fn land(mut self, outcome: &Result<Message, ForwardError>) {
        let Some(key) = self.key.take() else {
            return;
        };
        let landed: Landed = match outcome {
            Ok(message) => Ok(message.clone()),
            Err(e) => Err(e.to_string()),
        };
        for follower in self.flights.take(&key) {
            // A follower that stopped waiting is no one's loss.
            let _ = follower.send(landed.clone());
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flights.take(&key);
        }
    }
}

/// The question's bytes with the ID zeroed: the coalescing key.
fn flight_key(query: &[u8]) -> Vec<u8> {
    let mut key = query.to_vec();
    for byte in key.iter_mut().take(2) {
        *byte = 0;
    }
    key
}

fn query_id(query: &[u8]) -> u16 {
    match query {
        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    }
}

async fn exchange_one(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    buffer: usize,
) -> Result<Message, ForwardError> {
    match udp(upstream, query, id, buffer).await {
        Ok(answer) if !answer.metadata.truncation => Ok(answer),
        Ok(_) | Err(ForwardError::Io { .. } | ForwardError::TooLarge(_)) => {
            tcp(upstream, query).await
        }
        Err(e) => Err(e),
    }
}

fn io(upstream: SocketAddr) -> impl Fn(std::io::Error) -> ForwardError {
    move |source| ForwardError::Io { upstream, source }
}

fn decode(upstream: SocketAddr, bytes: &[u8]) -> Result<Message, ForwardError> {
    Message::from_vec(bytes).map_err(|e| ForwardError::Decode {
        upstream,
        detail: e.to_string(),
    })
}

/// One UDP exchange from a fresh ephemeral port; datagrams with another id
/// (stray or spoofed) are skipped until the deadline. The buffer holds one
/// byte more than `buffer`, so an answer that fills it is known to be cut
/// (the kernel drops the rest of a datagram) and is asked again over TCP.
async fn udp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    buffer: usize,
) -> Result<Message, ForwardError> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io(upstream))?;
    socket.connect(upstream).await.map_err(io(upstream))?;
    socket.send(query).await.map_err(io(upstream))?;
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let mut buf = vec![0u8; buffer + 1];
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| ForwardError::Timeout(upstream))?
            .map_err(io(upstream))?;
        if query_id(&buf[..n]) != id {
            continue;
        }
        if n > buffer {
            return Err(ForwardError::TooLarge(upstream));
        }
        match decode(upstream, &buf[..n]) {
            Ok(answer) => return Ok(answer),
            Err(_) => continue,
        }
    }
}

/// One TCP exchange: two-byte length prefix each way (RFC 1035 §4.2.2).
async fn tcp(upstream: SocketAddr, query: &[u8]) -> Result<Message, ForwardError> {
    let exchange = async {
        let len = u16::try_from(query.len())
            .map_err(|_| ForwardError::Encode("query too long".into()))?;
        let mut stream = TcpStream::connect(upstream).await.map_err(io(upstream))?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await.map_err(io(upstream))?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.map_err(io(upstream))?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut body).await.map_err(io(upstream))?;
        decode(upstream, &body)
    };
    timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| ForwardError::Timeout(upstream))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn forwarder(max: usize) -> (Forwarder, ForwardMetrics) {
        let metrics = ForwardMetrics::default();
        let upstream = "127.0.0.1:9".parse().unwrap();
        (
            Forwarder::bounded(vec![upstream], max, metrics.clone()),
            metrics,
        )
    }

    #[test]
    fn no_more_than_max_slots_are_out_and_each_refusal_is_counted() {
        let (fwd, metrics) = forwarder(2);
        let a = fwd.try_slot().expect("first slot");
        let b = fwd.try_slot().expect("second slot");
        assert_eq!(metrics.in_flight.get(), 2);
        assert!(fwd.try_slot().is_none());
        assert!(fwd.try_slot().is_none());
        assert_eq!(metrics.max_concurrent_rejects.get(), 2);

        drop(a);
        assert_eq!(metrics.in_flight.get(), 1);
        let c = fwd.try_slot().expect("a freed slot is taken again");
        assert!(fwd.try_slot().is_none());
        assert_eq!(metrics.max_concurrent_rejects.get(), 3);
        drop((b, c));
        assert_eq!(metrics.in_flight.get(), 0);
    }

    #[test]
    fn clones_share_one_cap() {
        let (fwd, _) = forwarder(1);
        let other = fwd.clone();
        let _held = fwd.try_slot().unwrap();
        assert!(other.try_slot().is_none(), "TCP and UDP share the cap");
    }

    #[test]
    fn a_cap_of_zero_still_lets_one_question_through() {
        let (fwd, _) = forwarder(0);
        let _one = fwd.try_slot().unwrap();
        assert!(fwd.try_slot().is_none());
    }

    #[test]
    fn questions_coalesce_on_their_bytes_without_the_id() {
        assert_eq!(flight_key(&[0x12, 0x34, 1, 0, 7]), [0, 0, 1, 0, 7]);
        assert_eq!(
            flight_key(&[0xab, 0xcd, 1, 0, 7]),
            flight_key(&[0x12, 0x34, 1, 0, 7])
        );
        assert_ne!(flight_key(&[0, 1, 1, 0, 7]), flight_key(&[0, 1, 1, 0, 8]));
        assert_eq!(flight_key(&[9]), [0]);
    }

    fn answer(id: u16) -> Message {
        let mut m = Message::query();
        m.metadata.id = id;
        m
    }

    #[test]
    fn followers_get_the_leaders_answer_and_later_askers_lead_anew() {
        let flights = Flights::default();
        let Flight::Leader(lead) = flights.join(vec![1, 2]) else {
            panic!("the first asker leads");
        };
        let Flight::Follower(mut first) = flights.join(vec![1, 2]) else {
            panic!("the same question follows");
        };
        let Flight::Follower(mut second) = flights.join(vec![1, 2]) else {
            panic!("the same question follows");
        };
        let Flight::Leader(other) = flights.join(vec![1, 3]) else {
            panic!("another question leads");
        };
        lead.land(&Ok(answer(7)));
        assert_eq!(first.try_recv().unwrap().unwrap().metadata.id, 7);
        assert_eq!(second.try_recv().unwrap().unwrap().metadata.id, 7);
        assert!(matches!(flights.join(vec![1, 2]), Flight::Leader(_)));
        drop(other);
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn a_failed_or_abandoned_leader_fails_its_followers() {
        let flights = Flights::default();
        let Flight::Leader(lead) = flights.join(vec![1]) else {
            panic!("leads");
        };
        let Flight::Follower(mut failed) = flights.join(vec![1]) else {
            panic!("follows");
        };
        lead.land(&Err(ForwardError::Timeout("127.0.0.1:53".parse().unwrap())));
        assert_eq!(
            failed.try_recv().unwrap().unwrap_err(),
            "upstream 127.0.0.1:53 did not answer in time"
        );

        let Flight::Leader(lead) = flights.join(vec![1]) else {
            panic!("leads again");
        };
        let Flight::Follower(mut orphan) = flights.join(vec![1]) else {
            panic!("follows");
        };
        drop(lead);
        assert!(orphan.try_recv().is_err(), "no answer will come");
        assert_eq!(flights.len(), 0);
    }

    /// An upstream that reads and never answers: the followers of a
    /// question wait on the leader's one exchange, and all hold slots.
    #[tokio::test]
    async fn identical_questions_in_flight_share_one_exchange() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let metrics = ForwardMetrics::default();
        let fwd = Forwarder::bounded(vec![silent.local_addr().unwrap()], 8, metrics.clone());
        let name = Name::from_ascii("example.com.").unwrap();
        let mut asking = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let (fwd, name, slot) = (fwd.clone(), name.clone(), fwd.try_slot().unwrap());
            asking.spawn(async move {
                let mut m = Message::query();
                m.metadata.id = 1;
                m.add_query(Query::query(name, RecordType::A));
                fwd.exchange(slot, &m.to_vec().unwrap(), 512).await
            });
        }
        // The leader's datagram reaches the upstream; no second one does.
        let mut buf = [0u8; 512];
        timeout(Duration::from_secs(5), silent.recv(&mut buf))
            .await
            .expect("the question reaches the upstream")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(silent.try_recv(&mut buf).is_err(), "one datagram upstream");
        assert_eq!(metrics.coalesced.get(), 2);
        assert_eq!(metrics.in_flight.get(), 3);
        asking.abort_all();
        while asking.join_next().await.is_some() {}
        assert_eq!(metrics.in_flight.get(), 0);
        assert_eq!(fwd.flights.len(), 0);
    }
}
