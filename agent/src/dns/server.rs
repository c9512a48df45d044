//! The responder: hickory's UDP/TCP server with a handler that answers from
//! the latest [`ClusterView`] and relays everything else.
//!
//! The view is read from the `watch` channel on every question, so an answer
//! changes the moment a push lands — no zone to rebuild, no reload.

use std::iter;
use std::net::SocketAddr;
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

use super::forward::Forwarder;
use super::records::{resolve, Answer, Resolution};
use super::DnsError;
use crate::view::ClusterView;

/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_QUEUE: usize = 32;
/// How many times to look for a port free for both UDP and TCP when the
/// caller asked for port 0.
const PORT_TRIES: usize = 16;

/// A bound, not yet serving responder. Binding first lets the caller report
/// a taken port or a missing address before it spawns anything.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    responder: Responder,
}

/// Binds UDP and TCP on `listen` (with port 0: one port free for both).
pub async fn bind(
    listen: SocketAddr,
    view: watch::Receiver<Arc<ClusterView>>,
    upstreams: Vec<SocketAddr>,
) -> Result<DnsServer, DnsError> {
    let (udp, tcp) = bind_both(listen).await?;
    Ok(DnsServer {
        udp,
        tcp,
        responder: Responder {
            view,
            forwarder: Forwarder::new(upstreams),
        },
    })
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
    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> Result<SocketAddr, DnsError> {
        self.udp
            .local_addr()
            .map_err(|e| DnsError::Stopped(e.to_string()))
    }

    /// Serves until a socket fails; dropping the future stops the server.
    pub async fn run(self) -> Result<(), DnsError> {
        let mut server = Server::new(self.responder);
        server.register_socket(self.udp);
        server.register_listener(self.tcp, TCP_IDLE, TCP_QUEUE);
        server
            .block_until_done()
            .await
            .map_err(|e| DnsError::Stopped(e.to_string()))
    }
}

/// Answers one question at a time from the current view.
struct Responder {
    view: watch::Receiver<Arc<ClusterView>>,
    forwarder: Forwarder,
}

#[tonic::async_trait]
impl RequestHandler for Responder {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        let edns = response_edns(request);
        let refusal = refusal(request);
        let reply = match refusal {
            Some(rcode) => Reply::Error(rcode),
            None => self.reply(request).await,
        };
        send(
            request,
            edns.as_ref(),
            reply,
            self.forwarder.enabled(),
            response,
        )
        .await
    }
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

async fn send<R: ResponseHandler>(
    request: &Request,
    edns: Option<&Edns>,
    reply: Reply,
    recursion: bool,
    mut response: R,
) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.recursion_available = recursion;
    let builder = MessageResponseBuilder::new(&request.queries, edns);
    let empty: &[Record] = &[];
    let sent = match &reply {
        Reply::Zone(a) => {
            metadata.authoritative = true;
            metadata.response_code = a.rcode;
            let msg = builder.build(metadata, &a.answers, &a.authority, empty, &a.additionals);
            response.send_response(msg).await
        }
        Reply::Relayed(m) => {
            metadata.response_code = m.metadata.response_code;
            metadata.authoritative = m.metadata.authoritative;
            let msg = builder.build(metadata, &m.answers, &m.authorities, empty, &m.additionals);
            response.send_response(msg).await
        }
        Reply::Error(rcode) => {
            metadata.response_code = *rcode;
            let msg = builder.build(metadata, empty, empty, empty, iter::empty());
            response.send_response(msg).await
        }
    };
    sent.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "cannot send DNS response");
        serve_failed(request)
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
