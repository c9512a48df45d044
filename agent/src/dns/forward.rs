//! Relaying questions the cluster zone does not own to the node's upstream
//! resolvers (`--dns-upstream`).
//!
//! Plain RFC 1035 transport: UDP first, TCP when the UDP answer comes back
//! truncated (or UDP fails). Upstreams are tried in the order given, each
//! once, so a dead first resolver costs one timeout, not the query.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::{Message, Query};
use hickory_server::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, Instant};

/// How long one upstream gets for one exchange. glibc gives the whole
/// lookup 5 s per nameserver; 2 s leaves room to try a second upstream.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

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
    #[error("cannot encode the question: {0}")]
    Encode(String),
}

/// The node's upstream resolvers.
#[derive(Debug, Clone, Default)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Forwarder { upstreams }
    }

    /// Whether anything is forwarded at all (else outside names are REFUSED).
    pub fn enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// Sends `query` (a whole DNS message, as the client sent it) to the
    /// upstreams in turn and returns the first answer.
    pub async fn exchange(&self, query: &[u8]) -> Result<Message, ForwardError> {
        let id = query_id(query);
        let mut last = ForwardError::NoUpstreams;
        for &upstream in &self.upstreams {
            match exchange_one(upstream, query, id).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::debug!(error = %e, "upstream failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Asks the upstreams for `name`/`qtype` on our own behalf (to complete
    /// an ExternalName CNAME).
    pub async fn lookup(&self, name: &Name, qtype: RecordType) -> Result<Message, ForwardError> {
        let mut message = Message::query();
        message.add_query(Query::query(name.clone(), qtype));
        message.metadata.recursion_desired = true;
        let bytes = message
            .to_vec()
            .map_err(|e| ForwardError::Encode(e.to_string()))?;
        self.exchange(&bytes).await
    }
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
) -> Result<Message, ForwardError> {
    match udp(upstream, query, id).await {
        Ok(answer) if !answer.metadata.truncation => Ok(answer),
        Ok(_) | Err(ForwardError::Io { .. }) => tcp(upstream, query).await,
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
/// (stray or spoofed) are skipped until the deadline.
async fn udp(upstream: SocketAddr, query: &[u8], id: u16) -> Result<Message, ForwardError> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io(upstream))?;
    socket.connect(upstream).await.map_err(io(upstream))?;
    socket.send(query).await.map_err(io(upstream))?;
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| ForwardError::Timeout(upstream))?
            .map_err(io(upstream))?;
        match decode(upstream, &buf[..n]) {
            Ok(answer) if answer.metadata.id == id => return Ok(answer),
            _ => continue,
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
