//! The responder: answers from the latest [`ClusterView`] and relays
//! everything else, over UDP ([`super::udp`]) and TCP ([`super::tcp`]),
//! our own loops, which can stop reading without dropping what they read.
//!
//! The view is read from the `watch` channel on every question, so an answer
//! changes the moment a push lands — no zone to rebuild, no reload.
//!
//! A question is first looked at without waiting ([`Responder::step`]):
//! the cluster zone, refusals and over-cap questions are answered there and
//! then, so the UDP loop answers them inline and they never queue behind
//! forwarded ones; only what needs an upstream goes on, holding one of the
//! forwarder's slots ([`super::forward`]), so the work in flight is bounded
//! whatever the clients send.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use hickory_server::proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use hickory_server::server::Request;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::forward::{ForwardMetrics, Forwarder, Slot, DEFAULT_FORWARD_MAX};
use super::records::{resolve, Answer, Resolution};
use super::DnsError;
use super::{tcp, udp};
use crate::view::ClusterView;

/// Without EDNS a UDP answer may hold 512 bytes (RFC 1035 §4.2.1).
const CLASSIC_PAYLOAD: u16 = 512;
/// How many times to look for a port free for both UDP and TCP when the
/// caller asked for port 0.
const PORT_TRIES: usize = 16;

/// A bound, not yet serving responder. Binding first lets the caller report
/// a taken port or a missing address before it spawns anything.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    view: watch::Receiver<Arc<ClusterView>>,
    upstreams: Vec<SocketAddr>,
    forward_max: usize,
    forward_metrics: ForwardMetrics,
}

/// Binds UDP and TCP on `listen` (with port 0: one port free for both).
pub async fn bind(
    listen: SocketAddr,
    view: watch::Receiver<Arc<ClusterView>>,
    upstreams: Vec<SocketAddr>,
) -> Result<DnsServer, DnsError> {
    let (udp, tcp) = bind_both(listen).await?;
    Ok(DnsServer::new(udp, tcp, view, upstreams))
}

/// A responder on sockets bound before, by this process or the agent it
/// took over from ([`crate::handover`]).
pub fn from_std(
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    view: watch::Receiver<Arc<ClusterView>>,
    upstreams: Vec<SocketAddr>,
) -> Result<DnsServer, DnsError> {
    let tokio_sockets = || {
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        Ok::<_, std::io::Error>((UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?))
    };
    let (udp, tcp) = tokio_sockets().map_err(|e| DnsError::Stopped(e.to_string()))?;
    Ok(DnsServer::new(udp, tcp, view, upstreams))
}

async fn bind_both(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let tries = if listen.port() == 0 { PORT_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| DnsError::Bind {
                proto: "udp",
                addr: listen,
                source,
            })?;
        let addr = udp.local_addr().map_err(|source| DnsError::Bind {
            proto: "udp",
            addr: listen,
            source,
        })?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => {
                last = Some(DnsError::Bind {
                    proto: "tcp",
                    addr,
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or(DnsError::Stopped("no port tried".into())))
}

impl DnsServer {
    fn new(
        udp: UdpSocket,
        tcp: TcpListener,
        view: watch::Receiver<Arc<ClusterView>>,
        upstreams: Vec<SocketAddr>,
    ) -> Self {
        DnsServer {
            udp,
            tcp,
            view,
            upstreams,
            forward_max: DEFAULT_FORWARD_MAX,
            forward_metrics: ForwardMetrics::default(),
        }
    }

    /// At most `max` questions wait on the upstreams at once (UDP and TCP
    /// together); more are REFUSED at once. Default [`DEFAULT_FORWARD_MAX`].
    pub fn forward_max(mut self, max: usize) -> Self {
        self.forward_max = max;
        self
    }

    /// Counts forwarding in `metrics` (the agent's registered ones).
    pub fn counting(mut self, metrics: ForwardMetrics) -> Self {
        self.forward_metrics = metrics;
        self
    }

    /// Second handles on the two sockets, to hand over to a successor
    /// while this server keeps reading them.
    pub fn sockets(&self) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
        let udp = self.udp.as_fd().try_clone_to_owned()?;
        let tcp = self.tcp.as_fd().try_clone_to_owned()?;
        Ok((udp.into(), tcp.into()))
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> Result<SocketAddr, DnsError> {
        self.udp
            .local_addr()
            .map_err(|e| DnsError::Stopped(e.to_string()))
    }

    /// Serves in tasks of its own until [`Serving::stop`].
    pub fn start(self) -> Serving {
        let responder = Arc::new(Responder {
            view: self.view,
            forwarder: Forwarder::bounded(self.upstreams, self.forward_max, self.forward_metrics),
        });
        let (stop, stopped) = watch::channel(false);
        let udp = tokio::spawn(udp::serve(self.udp, responder.clone(), stopped.clone()));
        let tcp = tokio::spawn(tcp::serve(self.tcp, responder, stopped));
        Serving { stop, udp, tcp }
    }

    /// Serves until a socket fails; dropping the future does not stop the
    /// server (use [`Self::start`] for that).
    pub async fn run(self) -> Result<(), DnsError> {
        let Serving {
            udp,
            tcp,
            stop: _stop,
        } = self.start();
        let finished = tokio::select! {
            done = udp => done,
            done = tcp => done,
        };
        finished.map_err(|e| DnsError::Stopped(e.to_string()))?
    }
}

/// A responder at work.
pub struct Serving {
    stop: watch::Sender<bool>,
    udp: JoinHandle<Result<(), DnsError>>,
    tcp: JoinHandle<Result<(), DnsError>>,
}

impl Serving {
    /// Stops reading the sockets and answers every query already read,
    /// so a process that hands its sockets over and exits loses none (a
    /// TCP client whose connection this process holds reconnects).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in [self.udp, self.tcp] {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "DNS responder stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "DNS responder task failed"),
            }
        }
    }
}

/// Answers one question at a time from the current view.
pub(super) struct Responder {
    view: watch::Receiver<Arc<ClusterView>>,
    forwarder: Forwarder,
}

/// What goes back to the client.
enum Reply {
    /// An authoritative answer from the cluster zone.
    Zone(Answer),
    /// An upstream's answer, relayed.
    Relayed(Message),
    Error(ResponseCode),
}

/// What a question needs, decided without waiting.
pub(super) enum Step {
    /// The whole response: from the zone, a refusal, or REFUSED because
    /// the forwarder is at its cap.
    Now(Message),
    /// The response needs the upstreams; [`Responder::finish`] makes it.
    Upstream(Upstream),
}

/// Upstream work for one question, holding its forwarder slot.
pub(super) struct Upstream {
    slot: Slot,
    work: Work,
}

enum Work {
    /// Relay the question as the client asked it.
    Forward,
    /// Complete a zone answer's CNAME to an outside name.
    Chase(Box<Chase>),
}

struct Chase {
    answer: Answer,
    target: Name,
    qtype: RecordType,
}

/// A question looked at: answered, or upstream work.
enum Plan {
    Ready(Reply),
    Upstream(Upstream),
}

/// Requests the responder does not take: anything but one standard IN
/// query, and zone transfers.
fn refusal(request: &Request) -> Option<ResponseCode> {
    if request.metadata.op_code != OpCode::Query {
        return Some(ResponseCode::NotImp);
    }
    let [query] = request.queries.queries() else {
        return Some(ResponseCode::FormErr);
    };
    let transfer = matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR);
    if query.query_class() != DNSClass::IN || transfer {
        return Some(ResponseCode::Refused);
    }
    None
}

impl Responder {
    /// The whole response to `request`, for a transport that may wait.
    pub(super) async fn respond(&self, request: &Request) -> Message {
        match self.step(request) {
            Step::Now(message) => message,
            Step::Upstream(upstream) => self.finish(request, upstream).await,
        }
    }

    /// Answers `request` at once unless it needs the upstreams and a
    /// slot is free for it.
    pub(super) fn step(&self, request: &Request) -> Step {
        let reply = match refusal(request) {
            Some(rcode) => Reply::Error(rcode),
            None => match self.plan(request) {
                Plan::Ready(reply) => reply,
                Plan::Upstream(upstream) => return Step::Upstream(upstream),
            },
        };
        Step::Now(self.message(request, reply))
    }

    /// The response once the upstreams had their say (or failed).
    pub(super) async fn finish(&self, request: &Request, upstream: Upstream) -> Message {
        let Upstream { slot, work } = upstream;
        let reply = match work {
            Work::Forward => {
                let max_udp = usize::from(udp_payload(request));
                match self
                    .forwarder
                    .exchange(slot, request.as_slice(), max_udp)
                    .await
                {
                    Ok(message) => Reply::Relayed(message),
                    Err(e) => {
                        // Counted in the metrics; a dead upstream under load
                        // would otherwise log every question.
                        tracing::debug!(error = %e, "forwarding failed");
                        Reply::Error(ResponseCode::ServFail)
                    }
                }
            }
            Work::Chase(chase) => Reply::Zone(self.chase(slot, *chase).await),
        };
        self.message(request, reply)
    }

    /// The reply when it is ready now, else the upstream work it needs.
    fn plan(&self, request: &Request) -> Plan {
        let [query] = request.queries.queries() else {
            return Plan::Ready(Reply::Error(ResponseCode::FormErr));
        };
        let view = self.view.borrow().clone();
        let qtype = query.query_type();
        match resolve(&view, query.original().name(), qtype) {
            Resolution::Answer(mut answer) => match answer.chase.take() {
                Some(target) if self.forwarder.enabled() => match self.forwarder.try_slot() {
                    Some(slot) => Plan::Upstream(Upstream {
                        slot,
                        work: Work::Chase(Box::new(Chase {
                            answer,
                            target,
                            qtype,
                        })),
                    }),
                    // At the cap the client gets the CNAME alone, as when
                    // the upstreams fail, and may resolve it itself.
                    None => Plan::Ready(Reply::Zone(answer)),
                },
                _ => Plan::Ready(Reply::Zone(answer)),
            },
            Resolution::NotOurs if self.forwarder.enabled() => match self.forwarder.try_slot() {
                Some(slot) => Plan::Upstream(Upstream {
                    slot,
                    work: Work::Forward,
                }),
                // CoreDNS's answer over max_concurrent: a capacity signal
                // the client does not cache, unlike a failed resolution.
                None => Plan::Ready(Reply::Error(ResponseCode::Refused)),
            },
            Resolution::NotOurs => Plan::Ready(Reply::Error(ResponseCode::Refused)),
        }
    }

    fn message(&self, request: &Request, reply: Reply) -> Message {
        let mut message = Message::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        message.metadata = Metadata::response_from_request(&request.metadata);
        message.metadata.recursion_available = self.forwarder.enabled();
        message.queries = request
            .queries
            .queries()
            .iter()
            .map(|q| q.original().clone())
            .collect();
        message.edns = response_edns(request);
        match reply {
            Reply::Zone(a) => {
                message.metadata.authoritative = true;
                message.metadata.response_code = a.rcode;
                message.answers = a.answers;
                message.authorities = a.authority;
                message.additionals = a.additionals;
            }
            Reply::Relayed(m) => {
                message.metadata.response_code = m.metadata.response_code;
                message.metadata.authoritative = m.metadata.authoritative;
                message.answers = m.answers;
                message.authorities = m.authorities;
                message.additionals = m.additionals;
            }
            Reply::Error(rcode) => message.metadata.response_code = rcode,
        }
        message
    }

    /// Completes a CNAME to an outside name with the upstreams' records
    /// (as CoreDNS does for ExternalName). When they fail the client gets
    /// the CNAME alone and may resolve it itself.
    async fn chase(&self, slot: Slot, chase: Chase) -> Answer {
        let Chase {
            mut answer,
            target,
            qtype,
        } = chase;
        match self.forwarder.lookup(slot, &target, qtype).await {
            Ok(mut upstream) => {
                answer.answers.append(&mut upstream.answers);
                if upstream.metadata.response_code == ResponseCode::NXDomain {
                    answer.rcode = ResponseCode::NXDomain;
                }
            }
            Err(e) => tracing::debug!(error = %e, %target, "cannot complete CNAME"),
        }
        answer
    }
}

/// The largest UDP message the client takes: its EDNS payload, at least
/// the classic 512 bytes.
pub(super) fn udp_payload(request: &Request) -> u16 {
    request
        .edns
        .as_ref()
        .map_or(CLASSIC_PAYLOAD, |e| e.max_payload().max(CLASSIC_PAYLOAD))
}

/// EDNS in the answer when the question had it (RFC 6891), advertising at
/// least the classic 512 bytes.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(CLASSIC_PAYLOAD));
        edns.set_version(0);
        edns
    })
}
