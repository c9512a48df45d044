//! DNS over TCP: our own accept loop around the responder, so TCP is
//! bounded like UDP. Hickory's server took every connection, each in a
//! task of its own; here at most [`MAX_CONNECTIONS`] are open at once (the
//! next waits in the listen backlog, as dnsmasq and unbound limit theirs),
//! a connection answers one message at a time (RFC 7766 pipelining
//! without reordering), and a forwarded question holds one of the
//! forwarder's slots, which UDP shares.
//!
//! Clients use TCP after a truncated UDP answer, so connections are few
//! and short; an idle one is closed after [`IDLE`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::responder::Responder;
use super::udp::encode_within;
use super::DnsError;

/// TCP connections served at once.
pub(super) const MAX_CONNECTIONS: usize = 128;
/// A TCP client that sends nothing (or only part of a message) for this
/// long is dropped.
const IDLE: Duration = Duration::from_secs(10);
/// How long a stopping server waits for its TCP connections to finish the
/// message they are answering.
const DRAIN: Duration = Duration::from_secs(1);
/// Pause after a failed accept (out of file descriptors, say), so a
/// persistent error does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Accepts and serves connections until `stopped` turns true, then lets
/// open connections finish the message in hand.
pub(super) async fn serve(
    listener: TcpListener,
    responder: Arc<Responder>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), DnsError> {
    let room = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut open = JoinSet::new();
    loop {
        let permit = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => break,
            permit = room.clone().acquire_owned() => permit,
        };
        // Never closed, so never an error.
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (responder, stopped) = (responder.clone(), stopped.clone());
                open.spawn(connection(stream, peer, responder, permit, stopped));
            }
            Err(e) => {
                tracing::debug!(error = %e, "DNS TCP accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
        while open.try_join_next().is_some() {}
    }
    let drained =
        tokio::time::timeout(DRAIN, async { while open.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::debug!(
            left = open.len(),
            "closing DNS TCP connections at stop; their clients reconnect"
        );
    }
    Ok(())
}

/// Serves one connection: a length-prefixed message in, its answer out
/// (RFC 1035 §4.2.2), until the client closes, idles, or sends what is not
/// DNS, or the server stops between messages.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    responder: Arc<Responder>,
    _permit: OwnedSemaphorePermit,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let read = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => return,
            read = tokio::time::timeout(IDLE, read_message(&mut stream)) => read,
        };
        let Ok(Ok(Some(query))) = read else {
            return;
        };
        let Ok(request) = Request::from_bytes(query, peer, Protocol::Tcp) else {
            return;
        };
        let message = responder.respond(&request).await;
        let Some(bytes) = encode_within(message, usize::from(u16::MAX)) else {
            return;
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        if let Err(e) = stream.write_all(&framed).await {
            tracing::debug!(error = %e, %peer, "cannot send DNS response");
            return;
        }
    }
}

/// The next message, or `None` when the client closed between messages.
async fn read_message(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}
