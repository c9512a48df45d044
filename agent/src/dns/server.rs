//! The responder: answers from the latest [`ClusterView`] and relays
//! everything else; TCP through hickory's server, UDP through our own loop
//! ([`super::udp`]), which can stop reading without dropping what it read.
//!
//! The view is read from the `watch` channel on every question, so an answer
//! changes the moment a push lands — no zone to rebuild, no reload.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::forward::Forwarder;
use super::records::{resolve, Answer, Resolution};
use super::udp;
use super::DnsError;
use crate::view::ClusterView;

/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_QUEUE: usize = 32;
/// How long a stopping server waits for its TCP connections to finish.
const TCP_DRAIN: Duration = Duration::from_secs(1);
/// How many times to look for a port free for both UDP and TCP when the
/// caller asked for port 0.
const PORT_TRIES: usize = 16;

/// A bound, not yet serving responder. Binding first lets the caller report
/// a taken port or a missing address before it spawns anything.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    responder: Arc<Responder>,
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
            responder: Arc::new(Responder {
                view,
                forwarder: Forwarder::new(upstreams),
            }),
        }
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
        let (stop, stopped) = watch::channel(false);
        let udp = tokio::spawn(udp::serve(
            self.udp,
            self.responder.clone(),
            stopped.clone(),
        ));
        let tcp = tokio::spawn(serve_tcp(self.tcp, self.responder, stopped));
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
    /// Stops reading the sockets and answers every UDP query already read,
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

/// TCP through hickory's server, until stopped.
async fn serve_tcp(
    listener: TcpListener,
    responder: Arc<Responder>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), DnsError> {
    let mut server = Server::new(Tcp(responder));
    server.register_listener(listener, TCP_IDLE, TCP_QUEUE);
    let token = server.shutdown_token().clone();
    tokio::select! {
        done = server.block_until_done() => return done.map_err(|e| DnsError::Stopped(e.to_string())),
        _ = stopped.wait_for(|s| *s) => token.cancel(),
    }
    match tokio::time::timeout(TCP_DRAIN, server.block_until_done()).await {
        Ok(done) => done.map_err(|e| DnsError::Stopped(e.to_string())),
        Err(_) => Ok(()),
    }
}

/// The responder as hickory's TCP server calls it.
struct Tcp(Arc<Responder>);

#[tonic::async_trait]
impl RequestHandler for Tcp {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let message = self.0.respond(request).await;
        let builder = MessageResponseBuilder::new(&request.queries, message.edns.as_ref());
        let empty: &[Record] = &[];
        let built = builder.build(
            message.metadata,
            &message.answers,
            &message.authorities,
            empty,
            &message.additionals,
        );
        response.send_response(built).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot send DNS response");
            serve_failed(request)
        })
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
    /// The whole response to `request`, for either transport to send.
    pub(super) async fn respond(&self, request: &Request) -> Message {
        let reply = match refusal(request) {
            Some(rcode) => Reply::Error(rcode),
            None => self.reply(request).await,
        };
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

    async fn reply(&self, request: &Request) -> Reply {
        let [query] = request.queries.queries() else {
            return Reply::Error(ResponseCode::FormErr);
        };
        let view = self.view.borrow().clone();
        let qtype = query.query_type();
        match resolve(&view, query.original().name(), qtype) {
            Resolution::Answer(answer) => Reply::Zone(self.chase(answer, qtype).await),
            Resolution::NotOurs if self.forwarder.enabled() => {
                match self.forwarder.exchange(request.as_slice()).await {
                    Ok(message) => Reply::Relayed(message),
                    Err(e) => {
                        tracing::warn!(error = %e, "forwarding failed");
                        Reply::Error(ResponseCode::ServFail)
                    }
                }
            }
            Resolution::NotOurs => Reply::Error(ResponseCode::Refused),
        }
    }

    /// Completes a CNAME to an outside name with the upstreams' records
    /// (as CoreDNS does for ExternalName). Without upstreams, or when they
    /// fail, the client gets the CNAME alone and may resolve it itself.
    async fn chase(&self, mut answer: Answer, qtype: RecordType) -> Answer {
        let Some(target) = answer.chase.take() else {
            return answer;
        };
        if !self.forwarder.enabled() {
            return answer;
        }
        match self.forwarder.lookup(&target, qtype).await {
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

/// EDNS in the answer when the question had it (RFC 6891), advertising at
/// least the classic 512 bytes.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(512));
        edns.set_version(0);
        edns
    })
}

fn serve_failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
