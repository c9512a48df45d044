//! Answering one question: from the latest [`ClusterView`] for the cluster
//! zone, else through the forwarder. A question is first looked at without
//! waiting ([`Responder::step`]): the cluster zone, refusals and over-cap
//! questions are answered there and then; only what needs an upstream goes
//! on, holding one of the forwarder's slots ([`super::forward`]).
//!
//! The view is read from the `watch` channel on every question, so an answer
//! changes the moment a push lands — no zone to rebuild, no reload.

use std::sync::Arc;

use hickory_server::proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use hickory_server::server::Request;
use tokio::sync::watch;

use super::forward::{Forwarder, Slot};
use super::records::{resolve, Answer, Resolution};
use crate::view::ClusterView;

/// Without EDNS a UDP answer may hold 512 bytes (RFC 1035 §4.2.1).
const CLASSIC_PAYLOAD: u16 = 512;

/// Answers one question at a time from the current view.
pub(super) struct Responder {
    view: watch::Receiver<Arc<ClusterView>>,
    forwarder: Forwarder,
}

impl Responder {
    pub(super) fn new(view: watch::Receiver<Arc<ClusterView>>, forwarder: Forwarder) -> Self {
        Self { view, forwarder }
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
