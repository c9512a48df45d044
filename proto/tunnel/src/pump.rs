//! One forwarded TCP connection joined to one tunnel frame stream, with the
//! tunnel's end-to-end flow control.
//!
//! Both ends of a forwarded connection (swctl and the agent) run this same
//! code. Why credits on top of HTTP/2's flow control: every
//! connection of an agent (and of a swctl) shares one HTTP/2 connection, and
//! HTTP/2 data a receiver has not read yet still counts against that
//! connection's window. If a slow reader stopped us reading its stream, it
//! would stall every other connection. So the receiving half here always
//! reads its stream at once into a queue that the sender's credit bounds
//! (WINDOW per direction), and the sender waits for credit instead.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use switchyard_api::v1::tunnel_frame::Frame;
use switchyard_api::v1::{TunnelCloseWrite, TunnelFrame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tonic::Status;

/// Cost one side may have in flight towards the other, per connection.
pub const WINDOW: u32 = 256 * 1024;
/// Largest data frame.
pub const CHUNK: usize = 32 * 1024;
/// What a data frame costs beyond its bytes, so tiny frames stay bounded too.
pub const FRAME_OVERHEAD: u32 = 64;
/// Frames buffered towards the stream; credit bounds what is in flight.
pub const OUTBOUND_BUFFER: usize = 16;

const MAX_FRAME_COST: u32 = CHUNK as u32 + FRAME_OVERHEAD;
/// A peer within its window can never queue more frames than this.
const MAX_QUEUED: usize = (WINDOW / FRAME_OVERHEAD) as usize + 1;
/// After our side is done, how long to wait for the peer to end its stream.
const LINGER: Duration = Duration::from_secs(10);

// A peer that respects its window can neither overflow the queue nor be
// unable to send one full frame.
const _: () = assert!(MAX_QUEUED as u32 * FRAME_OVERHEAD > WINDOW);
const _: () = assert!(MAX_FRAME_COST < WINDOW);

#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("reading from the local connection: {0}")]
    Read(std::io::Error),
    #[error("writing to the local connection: {0}")]
    Write(std::io::Error),
    /// The other end (or the broker) failed the stream; its words, and its
    /// code, which tells a connection cut short by the broker (ABORTED).
    #[error("{}", .0.message())]
    Remote(Status),
    #[error("the tunnel closed before the connection finished")]
    Aborted,
    #[error("protocol error: {0}")]
    Protocol(&'static str),
}

/// Bytes that went each way over a finished connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
}

/// What a data frame of `len` bytes costs against the window.
pub fn cost(len: usize) -> u32 {
    u32::try_from(len)
        .unwrap_or(u32::MAX)
        .saturating_add(FRAME_OVERHEAD)
}

pub fn data_frame(data: Vec<u8>) -> TunnelFrame {
    TunnelFrame {
        frame: Some(Frame::Data(data)),
    }
}

pub fn credit_frame(n: u32) -> TunnelFrame {
    TunnelFrame {
        frame: Some(Frame::Credit(n)),
    }
}

pub fn close_write_frame() -> TunnelFrame {
    TunnelFrame {
        frame: Some(Frame::CloseWrite(TunnelCloseWrite {})),
    }
}

enum Chunk {
    Data(Vec<u8>),
    Eof,
}

/// What a pump shuttles bytes to: a TCP connection (swctl's client, the
/// agent's pod), or an in-memory pipe (the REST API's port-forward, whose
/// other end speaks kubectl's protocol).
pub trait Socket: AsyncRead + AsyncWrite + Unpin {
    /// Ends the connection as failed (a TCP reset), not cleanly.
    fn reset(&mut self);
}

impl Socket for TcpStream {
    fn reset(&mut self) {
        let _ = self.set_zero_linger();
    }
}

/// A pipe has no reset: its other end sees the failure as the pipe's end,
/// and the protocol above it (kubectl's error stream) says why.
impl Socket for DuplexStream {
    fn reset(&mut self) {}
}

/// Shuttles bytes between `socket` and the stream until both directions
/// closed (half-closes are passed on as they happen). On error the socket
/// is reset, so the local peer sees the failure rather than a clean end.
/// The socket is borrowed so that a caller who drops the pump for a reason
/// of its own can still reset the socket, rather than close it with a FIN.
pub async fn pump<T, S>(
    socket: &mut T,
    inbound: S,
    outbound: mpsc::Sender<TunnelFrame>,
) -> Result<Totals, PumpError>
where
    T: Socket,
    S: Stream<Item = Result<TunnelFrame, Status>> + Unpin,
{
    let result = exchange(socket, inbound, outbound).await;
    if result.is_err() {
        socket.reset();
    }
    result
}

async fn exchange<T, S>(
    socket: &mut T,
    inbound: S,
    outbound: mpsc::Sender<TunnelFrame>,
) -> Result<Totals, PumpError>
where
    T: Socket,
    S: Stream<Item = Result<TunnelFrame, Status>> + Unpin,
{
    let credit = Semaphore::new(WINDOW as usize);
    let owed = AtomicU32::new(0);
    let (queue_tx, queue_rx) = mpsc::channel(MAX_QUEUED);
    let (mut rd, mut wr) = tokio::io::split(socket);
    // Our stream ends when both of these are done and drop their senders.
    let up = uplink(&mut rd, &credit, outbound.clone());
    let write = write_out(&mut wr, queue_rx, &owed, outbound);
    let down = downlink(inbound, &credit, &owed, queue_tx);
    let both = async { tokio::try_join!(up, write) };
    tokio::pin!(both, down);
    let mut down_done = false;
    let (sent, received) = loop {
        tokio::select! {
            r = &mut both => break r?,
            r = &mut down, if !down_done => {
                r?;
                down_done = true;
            }
        }
    };
    if !down_done {
        // Everything is delivered; let the peer end its stream cleanly.
        let _ = tokio::time::timeout(LINGER, down).await;
    }
    Ok(Totals { sent, received })
}

/// Socket → stream: reads only while the peer has granted credit.
async fn uplink(
    rd: &mut (impl AsyncRead + Unpin),
    credit: &Semaphore,
    outbound: mpsc::Sender<TunnelFrame>,
) -> Result<u64, PumpError> {
    let mut total = 0u64;
    loop {
        credit
            .acquire_many(MAX_FRAME_COST)
            .await
            .map_err(|_| PumpError::Aborted)?
            .forget();
        let mut buf = Vec::with_capacity(CHUNK);
        let n = rd.read_buf(&mut buf).await.map_err(PumpError::Read)?;
        let used = if n == 0 { 0 } else { cost(n) };
        credit.add_permits((MAX_FRAME_COST - used) as usize);
        let frame = if n == 0 {
            close_write_frame()
        } else {
            data_frame(buf)
        };
        outbound.send(frame).await.map_err(|_| PumpError::Aborted)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// Stream → queue: never waits on the socket, so the HTTP/2 stream is
/// always drained; the peer's window bounds the queue.
async fn downlink<S>(
    mut inbound: S,
    credit: &Semaphore,
    owed: &AtomicU32,
    queue: mpsc::Sender<Chunk>,
) -> Result<(), PumpError>
where
    S: Stream<Item = Result<TunnelFrame, Status>> + Unpin,
{
    let mut closed = false;
    while let Some(item) = inbound.next().await {
        let frame = item.map_err(PumpError::Remote)?;
        match frame.frame {
            Some(Frame::Data(data)) if !closed => {
                let c = cost(data.len());
                if owed.fetch_add(c, Ordering::SeqCst).saturating_add(c) > WINDOW {
                    return Err(PumpError::Protocol("the peer overran its window"));
                }
                queue
                    .try_send(Chunk::Data(data))
                    .map_err(|_| PumpError::Protocol("the peer overran its window"))?;
            }
            Some(Frame::Credit(n)) => {
                if credit.available_permits().saturating_add(n as usize) > WINDOW as usize {
                    return Err(PumpError::Protocol("the peer granted more than the window"));
                }
                credit.add_permits(n as usize);
            }
            Some(Frame::CloseWrite(_)) if !closed => {
                closed = true;
                queue
                    .try_send(Chunk::Eof)
                    .map_err(|_| PumpError::Protocol("the peer overran its window"))?;
            }
            _ => return Err(PumpError::Protocol("unexpected frame")),
        }
    }
    if closed {
        Ok(())
    } else {
        Err(PumpError::Aborted)
    }
}

/// Queue → socket, granting the peer credit for every frame written.
async fn write_out(
    wr: &mut (impl AsyncWrite + Unpin),
    mut queue: mpsc::Receiver<Chunk>,
    owed: &AtomicU32,
    outbound: mpsc::Sender<TunnelFrame>,
) -> Result<u64, PumpError> {
    let mut total = 0u64;
    while let Some(chunk) = queue.recv().await {
        let data = match chunk {
            Chunk::Data(data) => data,
            Chunk::Eof => {
                wr.shutdown().await.map_err(PumpError::Write)?;
                return Ok(total);
            }
        };
        wr.write_all(&data).await.map_err(PumpError::Write)?;
        total += data.len() as u64;
        let c = cost(data.len());
        owed.fetch_sub(c, Ordering::SeqCst);
        outbound
            .send(credit_frame(c))
            .await
            .map_err(|_| PumpError::Aborted)?;
    }
    Err(PumpError::Aborted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::ReceiverStream;

    /// Two pumps wired back to back through channels (no broker), each with
    /// a local socket pair; returns the two outer sockets.
    async fn wired() -> (TcpStream, TcpStream) {
        let (a_outer, mut a_inner) = socket_pair().await;
        let (b_outer, mut b_inner) = socket_pair().await;
        let (a_tx, a_rx) = mpsc::channel(OUTBOUND_BUFFER);
        let (b_tx, b_rx) = mpsc::channel(OUTBOUND_BUFFER);
        let a_in = ReceiverStream::new(b_rx).map(Ok);
        let b_in = ReceiverStream::new(a_rx).map(Ok);
        tokio::spawn(async move { pump(&mut a_inner, a_in, a_tx).await });
        tokio::spawn(async move { pump(&mut b_inner, b_in, b_tx).await });
        (a_outer, b_outer)
    }

    async fn socket_pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    #[tokio::test]
    async fn carries_bytes_both_ways_and_half_closes() {
        let (mut a, mut b) = wired().await;
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        a.write_all(&payload).await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, payload);
        // b can still answer after a's half-close.
        b.write_all(b"reply").await.unwrap();
        b.shutdown().await.unwrap();
        let mut reply = Vec::new();
        a.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"reply");
    }

    #[tokio::test]
    async fn a_peer_overrunning_its_window_is_refused() {
        let (_outer, mut inner) = socket_pair().await;
        let (tx, _rx) = mpsc::channel(OUTBOUND_BUFFER);
        let frames: Vec<Result<TunnelFrame, Status>> =
            (0..10).map(|_| Ok(data_frame(vec![0; CHUNK]))).collect();
        let err = pump(&mut inner, futures::stream::iter(frames), tx)
            .await
            .unwrap_err();
        assert!(matches!(err, PumpError::Protocol(_)), "{err}");
    }

    #[tokio::test]
    async fn a_stream_ending_without_close_write_aborts() {
        let (_outer, mut inner) = socket_pair().await;
        let (tx, _rx) = mpsc::channel(OUTBOUND_BUFFER);
        let frames = vec![Ok(data_frame(b"x".to_vec()))];
        let err = pump(&mut inner, futures::stream::iter(frames), tx)
            .await
            .unwrap_err();
        assert!(matches!(err, PumpError::Aborted), "{err}");
    }
}
