//! DNS over UDP: our own read loop around the responder.
//!
//! Hickory's server drops the queries it has read but not answered when it
//! stops; a process that hands its socket over ([`crate::handover`]) must
//! stop reading and still answer every query it took off the socket.
//!
//! The loop answers what it can at once, inline, before it reads the next
//! datagram: the cluster zone, refusals, and REFUSED when the forwarder is
//! at its cap ([`Responder::step`]). Only a question that holds a forwarder
//! slot gets a task of its own, so the tasks (and the memory they hold) are
//! bounded by the cap, and a cluster name never waits behind a forwarded
//! one — only behind the datagrams read before it, each answered in
//! microseconds.

use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::Message;
use hickory_server::server::Request;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::responder::{udp_payload, Responder, Step};
use super::DnsError;

/// A query larger than this is not a DNS query over UDP (EDNS payloads
/// top out at 4096 in practice; the datagram limit is 65,507).
const MAX_QUERY: usize = 65_535;
/// How long a stopping loop waits for the answers still being made
/// (one may wait on an upstream).
const DRAIN: Duration = Duration::from_secs(3);
/// Pause after a failed read, so a persistent error does not spin.
const READ_RETRY: Duration = Duration::from_millis(10);
/// The socket's receive buffer. The kernel drops what arrives while it is
/// full, and a drop costs a client its resolver timeout (5 s with glibc),
/// cluster names included. The default (208 KiB) holds 256 small
/// questions, 13 ms of a 20,000/s flood while the agent waits for a core;
/// this (doubled by the kernel for its overhead, as for any size) holds
/// ~1,260, 63 ms: late rather than never, as unbound's `so-rcvbuf` and
/// journald's socket do, and no more than that, since under a flood the
/// agent cannot keep up with, every question waits for the whole buffer.
const RECEIVE_BUFFER: usize = 512 << 10;

/// Reads and answers queries until `stopped` turns true, then answers what
/// it read and returns.
pub(super) async fn serve(
    socket: UdpSocket,
    responder: Arc<Responder>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), DnsError> {
    widen_receive_buffer(&socket);
    let socket = Arc::new(socket);
    // Only questions holding a forwarder slot: at most its cap.
    let mut forwarding = JoinSet::new();
    let mut buf = vec![0u8; MAX_QUERY];
    loop {
        // `recv_from` is cancel-safe: a stop never loses a datagram read.
        let got = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => break,
            got = socket.recv_from(&mut buf) => got,
        };
        match got {
            Ok((n, src)) => {
                // What is not a DNS message gets no answer, as from hickory.
                let Ok(request) = Request::from_bytes(buf[..n].to_vec(), src, Protocol::Udp) else {
                    continue;
                };
                match responder.step(&request) {
                    Step::Now(message) => send(&socket, &request, message).await,
                    Step::Upstream(upstream) => {
                        let (socket, responder) = (socket.clone(), responder.clone());
                        forwarding.spawn(async move {
                            let message = responder.finish(&request, upstream).await;
                            send(&socket, &request, message).await;
                        });
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "DNS read failed");
                tokio::time::sleep(READ_RETRY).await;
            }
        }
        while forwarding.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(DRAIN, async {
        while forwarding.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(left = forwarding.len(), "DNS answers still pending at stop");
    }
    Ok(())
}

/// [`RECEIVE_BUFFER`], past `net.core.rmem_max` when privileged (the
/// agent runs as root for nftables), else as much as that allows.
fn widen_receive_buffer(socket: &UdpSocket) {
    use rustix::net::sockopt;
    let widened = sockopt::set_socket_recv_buffer_size_force(socket, RECEIVE_BUFFER)
        .or_else(|_| sockopt::set_socket_recv_buffer_size(socket, RECEIVE_BUFFER));
    if let Err(e) = widened {
        tracing::debug!(error = %e, "cannot widen the DNS receive buffer");
    }
}

async fn send(socket: &UdpSocket, request: &Request, message: Message) {
    let limit = usize::from(udp_payload(request));
    let Some(bytes) = encode_within(message, limit) else {
        return;
    };
    let src = request.src();
    if let Err(e) = socket.send_to(&bytes, src).await {
        tracing::debug!(error = %e, %src, "cannot send DNS response");
    }
}

/// The message in at most `limit` bytes: whole if it fits, else with the
/// TC bit and as many answers as fit (the client asks again over TCP).
pub(super) fn encode_within(mut message: Message, limit: usize) -> Option<Vec<u8>> {
    let whole = message.to_vec().ok()?;
    if whole.len() <= limit {
        return Some(whole);
    }
    message.metadata.truncation = true;
    message.authorities.clear();
    message.additionals.clear();
    let answers = std::mem::take(&mut message.answers);
    let fits = |message: &mut Message, n: usize| {
        message.answers = answers[..n].to_vec();
        message.to_vec().is_ok_and(|b| b.len() <= limit)
    };
    // The most answers that fit, by bisection: `lo` always fits.
    let (mut lo, mut hi) = (0, answers.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(&mut message, mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    message.answers = answers[..lo].to_vec();
    message.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;
    use std::str::FromStr;

    use hickory_server::proto::op::{MessageType, OpCode, Query};
    use hickory_server::proto::rr::rdata::A;
    use hickory_server::proto::rr::{Name, RData, Record, RecordType};

    fn with_answers(n: u8) -> Message {
        let name = Name::from_str("big.default.svc.cluster.local.").unwrap();
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.answers = (0..n)
            .map(|i| {
                Record::from_rdata(name.clone(), 30, RData::A(A(Ipv4Addr::new(10, 244, 0, i))))
            })
            .collect();
        m
    }

    #[test]
    fn an_answer_that_fits_is_sent_whole() {
        let bytes = encode_within(with_answers(3), 512).unwrap();
        let back = Message::from_vec(&bytes).unwrap();
        assert!(!back.metadata.truncation);
        assert_eq!(back.answers.len(), 3);
    }

    #[test]
    fn a_large_answer_is_truncated_to_as_many_records_as_fit() {
        let bytes = encode_within(with_answers(120), 512).unwrap();
        assert!(bytes.len() <= 512, "{}", bytes.len());
        let back = Message::from_vec(&bytes).unwrap();
        assert!(back.metadata.truncation);
        // 12 header + 35 question + 16 per A record (its name compressed): 29.
        assert_eq!(back.answers.len(), 29);
        let one_more = with_answers(30).to_vec().unwrap();
        assert!(one_more.len() > 512, "{}", one_more.len());
    }
}
