//! Server side of kubectl's port-forward protocol (`portforward.k8s.io` over
//! SPDY/3.1), for both ways kubectl reaches it: a direct HTTP/1.1
//! `Upgrade: SPDY/3.1`, or SPDY tunnelled through WebSocket binary messages
//! (KEP-4006, subprotocol [`WEBSOCKET_PROTOCOL`]).
//!
//! kubectl opens two streams per local TCP connection, `streamtype: error`
//! and `streamtype: data`, tied together by `requestid`. Once both have
//! arrived we dial the pod port and splice bytes; a dial failure is reported
//! as text on the error stream, exactly as kubelet does, because that text is
//! what kubectl prints.
//!
//! Flow control: kubectl's SPDY library (moby/spdystream) neither sends nor
//! honours WINDOW_UPDATE. We therefore only stall on the peer's window once
//! it has sent a WINDOW_UPDATE (proving it does flow control), and bound what
//! we buffer per stream so a peer ignoring our window still gets backpressure.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::frame::{
    self, Frame, FrameError, HeaderCompressor, HeaderDecompressor, RecvWindow, RstStatus,
    SendWindow, DEFAULT_WINDOW, FLAG_FIN, SETTINGS_INITIAL_WINDOW_SIZE,
};

/// The `X-Stream-Protocol-Version` kubectl asks for and we must echo.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol kubectl 1.31+ offers for SPDY tunnelling.
pub const WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

const HEADER_STREAM_TYPE: &str = "streamtype";
const HEADER_PORT: &str = "port";
const HEADER_REQUEST_ID: &str = "requestid";
const STREAM_TYPE_ERROR: &str = "error";
const STREAM_TYPE_DATA: &str = "data";
/// Matches io.Copy's buffer on the kubectl side; well under any window.
const CHUNK: usize = 32 * 1024;
/// Per-stream inbound buffer limit; only reached by peers that ignore our window.
const INBOUND_BUDGET: usize = 1024 * 1024;
/// Outbound data frames queued ahead of the socket before tasks wait.
const OUTBOUND_QUEUE: usize = 64;
/// How long to let the writer drain after the peer went away.
const WRITER_GRACE: Duration = Duration::from_secs(5);

/// A byte stream to the pod port; what `dial` hands back.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + ?Sized> Duplex for T {}

/// Why a port-forward session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum PortForwardError {
    #[error("upgraded connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("SPDY protocol error: {0}")]
    Frame(#[from] FrameError),
}

/// Knobs the HTTP layer may want; `Default` matches kubelet's behaviour.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Named in error-stream messages, as kubelet names the pod (`name_namespace`).
    pub pod: String,
    /// Named in error-stream messages after the pod.
    pub uid: String,
    /// How long the first stream of a pair waits for its partner.
    pub pair_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            pod: String::new(),
            uid: String::new(),
            pair_timeout: Duration::from_secs(30),
        }
    }
}

/// Headers of the `101 Switching Protocols` answer on the direct SPDY path.
/// kubectl refuses the session unless `X-Stream-Protocol-Version` names the
/// protocol it asked for.
pub fn spdy_upgrade_headers() -> [(&'static str, &'static str); 3] {
    [
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", PROTOCOL),
    ]
}

/// Whether request header values (repeated or comma-separated, as in
/// `X-Stream-Protocol-Version` or `Sec-WebSocket-Protocol`) include `wanted`.
pub fn offers_protocol<'a>(values: impl IntoIterator<Item = &'a str>, wanted: &str) -> bool {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == wanted)
}

/// Headers of the `101` answer on the WebSocket path, given the client's
/// `Sec-WebSocket-Key`. Only call it when [`offers_protocol`] found
/// [`WEBSOCKET_PROTOCOL`]; kubectl treats any other subprotocol as failure.
pub fn websocket_upgrade_headers(sec_websocket_key: &str) -> [(&'static str, String); 4] {
    [
        ("Connection", "Upgrade".to_string()),
        ("Upgrade", "websocket".to_string()),
        (
            "Sec-WebSocket-Accept",
            tungstenite::handshake::derive_accept_key(sec_websocket_key.trim().as_bytes()),
        ),
        ("Sec-WebSocket-Protocol", WEBSOCKET_PROTOCOL.to_string()),
    ]
}

/// Presents a WebSocket as the byte stream the SPDY tunnel expects: inbound
/// binary messages are concatenated, each write becomes one binary message.
pub fn websocket_io<S>(ws: WebSocketStream<S>) -> WebSocketIo<S> {
    WebSocketIo {
        ws,
        pending: Bytes::new(),
        read_closed: false,
    }
}

/// See [`websocket_io`].
pub struct WebSocketIo<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
    read_closed: bool,
}

fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WebSocketIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() && !this.read_closed {
            match ready!(this.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Close(_))) | None => this.read_closed = true,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message on a SPDY tunnel",
                    )))
                }
                Some(Ok(_)) => {}
                Some(Err(tungstenite::Error::ConnectionClosed)) => this.read_closed = true,
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WebSocketIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.ws.poll_ready_unpin(cx)).map_err(ws_error)?;
        let message = Message::Binary(Bytes::copy_from_slice(buf));
        this.ws.start_send_unpin(message).map_err(ws_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().ws.poll_flush_unpin(cx).map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(self.get_mut().ws.poll_close_unpin(cx)) {
            Err(tungstenite::Error::ConnectionClosed) | Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(ws_error(e))),
        }
    }
}

/// One forwarded connection kubectl asked for: a complete error/data pair.
pub struct ForwardRequest {
    pub port: u16,
    pub request_id: String,
    data: StreamEnd,
    error: StreamEnd,
}

/// Our end of one SPDY stream, handed to the task that serves it.
struct StreamEnd {
    id: u32,
    inbound: mpsc::UnboundedReceiver<Chunk>,
    reset: watch::Receiver<bool>,
    budget: Arc<Semaphore>,
}

/// Inbound bytes plus the buffer budget they hold until written out.
struct Chunk {
    data: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// Outbound windows, shared by every task that sends data.
struct Flow {
    /// Set by the peer's first WINDOW_UPDATE; see the module docs.
    enforce: bool,
    initial_send: u32,
    session_send: SendWindow,
    streams: HashMap<u32, SendWindow>,
    session_recv: RecvWindow,
}

/// What every task needs to talk to the peer.
struct Shared {
    control: mpsc::UnboundedSender<Frame>,
    data: mpsc::Sender<Frame>,
    flow: Mutex<Flow>,
    flow_changed: Notify,
}

impl Shared {
    fn flow(&self) -> MutexGuard<'_, Flow> {
        self.flow
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn control(&self, frame: Frame) {
        // A closed writer means the session is ending; nothing left to tell.
        let _ = self.control.send(frame);
    }

    async fn data(&self, stream_id: u32, flags: u8, data: Bytes) -> bool {
        let frame = Frame::Data {
            stream_id,
            flags,
            data,
        };
        self.data.send(frame).await.is_ok()
    }

    /// Re-advertises session window the peer's data used up.
    fn session_consumed(&self, n: usize) {
        let due = self.flow().session_recv.consumed(n);
        if let Some(delta) = due {
            self.control(Frame::WindowUpdate {
                stream_id: 0,
                delta,
            });
        }
    }

    fn open_send_window(&self, stream_id: u32) {
        let mut flow = self.flow();
        let window = SendWindow::new(flow.initial_send);
        flow.streams.insert(stream_id, window);
    }

    fn close_send_window(&self, stream_id: u32) {
        self.flow().streams.remove(&stream_id);
        self.flow_changed.notify_waiters();
    }

    /// Waits until `want` bytes (or part of them) may be sent on `stream_id`;
    /// `None` once the stream is gone.
    async fn reserve(&self, stream_id: u32, want: usize) -> Option<usize> {
        loop {
            let changed = self.flow_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(granted) = self.try_reserve(stream_id, want)? {
                return Some(granted);
            }
            changed.await;
        }
    }

    fn try_reserve(&self, stream_id: u32, want: usize) -> Option<Option<usize>> {
        let mut guard = self.flow();
        let Flow {
            enforce,
            session_send,
            streams,
            ..
        } = &mut *guard;
        let stream = streams.get_mut(&stream_id)?;
        if !*enforce {
            stream.charge(want);
            session_send.charge(want);
            return Some(Some(want));
        }
        let room = stream.available().min(session_send.available()).max(0);
        let granted = usize::try_from(room).unwrap_or(0).min(want);
        if granted == 0 {
            return Some(None);
        }
        stream.take(granted);
        session_send.take(granted);
        Some(Some(granted))
    }

    /// Applies a peer WINDOW_UPDATE; `false` if it overflowed the window.
    fn window_update(&self, stream_id: u32, delta: u32) -> bool {
        let ok = {
            let mut flow = self.flow();
            flow.enforce = true;
            if stream_id == 0 {
                flow.session_send.grow(delta)
            } else {
                flow.streams
                    .get_mut(&stream_id)
                    .is_none_or(|w| w.grow(delta))
            }
        };
        self.flow_changed.notify_waiters();
        ok
    }

    fn initial_window(&self, size: u32) {
        {
            let mut flow = self.flow();
            let old = std::mem::replace(&mut flow.initial_send, size);
            for window in flow.streams.values_mut() {
                window.rebase(old, size);
            }
        }
        self.flow_changed.notify_waiters();
    }
}

/// Runs the port-forward protocol with kubelet's defaults; see [`serve_with`].
pub async fn serve<IO, D, F>(io: IO, dial: D) -> Result<(), PortForwardError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    D: Fn(u16) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Box<dyn Duplex>, String>> + Send + 'static,
{
    serve_with(io, ServeConfig::default(), dial).await
}

/// Runs the port-forward protocol on an upgraded connection until the peer
/// hangs up. `dial(port)` is called once per forwarded connection; its error
/// text reaches the kubectl user, so make it say what went wrong.
pub async fn serve_with<IO, D, F>(
    io: IO,
    config: ServeConfig,
    dial: D,
) -> Result<(), PortForwardError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    D: Fn(u16) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Box<dyn Duplex>, String>> + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (data_tx, data_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let mut writer_task = tokio::spawn(write_frames(writer, control_rx, data_rx));
    let shared = Arc::new(Shared {
        control: control_tx,
        data: data_tx,
        flow: Mutex::new(Flow {
            enforce: false,
            initial_send: DEFAULT_WINDOW,
            session_send: SendWindow::new(DEFAULT_WINDOW),
            streams: HashMap::new(),
            session_recv: RecvWindow::new(DEFAULT_WINDOW),
        }),
        flow_changed: Notify::new(),
    });
    let dial: Arc<Dialer> = Arc::new(move |port| Box::pin(dial(port)) as DialFuture);
    let mut session = Session::new(shared, dial, Arc::new(config));
    let result = session.run(reader).await;
    drop(session);
    if tokio::time::timeout(WRITER_GRACE, &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
    result
}

type DialFuture = Pin<Box<dyn Future<Output = Result<Box<dyn Duplex>, String>> + Send>>;
type Dialer = dyn Fn(u16) -> DialFuture + Send + Sync;

/// Serialises frames onto the connection. Control frames (replies, window
/// updates, pings) jump the data queue so a busy download cannot starve them.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut io: W,
    mut control: mpsc::UnboundedReceiver<Frame>,
    mut data: mpsc::Receiver<Frame>,
) -> Result<(), PortForwardError> {
    let mut compressor = HeaderCompressor::new()?;
    let mut buf = BytesMut::with_capacity(CHUNK * 2);
    loop {
        let frame = tokio::select! {
            biased;
            Some(f) = control.recv() => f,
            Some(f) = data.recv() => f,
            else => break,
        };
        frame::encode(&frame, &mut compressor, &mut buf)?;
        while buf.len() < CHUNK * 2 {
            let Some(next) = control.try_recv().or_else(|_| data.try_recv()).ok() else {
                break;
            };
            frame::encode(&next, &mut compressor, &mut buf)?;
        }
        io.write_all(&buf).await?;
        io.flush().await?;
        buf.clear();
    }
    // Best effort: the peer may already be gone.
    let _ = io.shutdown().await;
    Ok(())
}

/// A stream kubectl opened whose pair is not complete yet.
#[derive(Default)]
struct PendingPair {
    port: u16,
    error: Option<StreamEnd>,
    data: Option<StreamEnd>,
}

/// The reader side's view of one open stream.
struct InboundStream {
    sender: Option<mpsc::UnboundedSender<Chunk>>,
    budget: Arc<Semaphore>,
    reset: watch::Sender<bool>,
}

enum Event {
    PairTimeout(String),
}

/// State owned by the frame-reading loop.
struct Session {
    shared: Arc<Shared>,
    dial: Arc<Dialer>,
    config: Arc<ServeConfig>,
    streams: HashMap<u32, InboundStream>,
    pairs: HashMap<String, PendingPair>,
    tasks: JoinSet<()>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    last_stream_id: u32,
}

impl Session {
    fn new(shared: Arc<Shared>, dial: Arc<Dialer>, config: Arc<ServeConfig>) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Self {
            shared,
            dial,
            config,
            streams: HashMap::new(),
            pairs: HashMap::new(),
            tasks: JoinSet::new(),
            events_tx,
            events_rx,
            last_stream_id: 0,
        }
    }

    async fn run<R: AsyncRead + Unpin>(&mut self, mut io: R) -> Result<(), PortForwardError> {
        let mut decompressor = HeaderDecompressor::new();
        let mut buf = BytesMut::with_capacity(CHUNK * 2);
        loop {
            match frame::decode(&mut buf, &mut decompressor) {
                Ok(Some(frame)) => {
                    self.on_frame(frame).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(self.protocol_error(e)),
            }
            tokio::select! {
                biased;
                Some(event) = self.events_rx.recv() => self.on_event(event),
                read = io.read_buf(&mut buf) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
            }
            while self.tasks.try_join_next().is_some() {}
        }
    }

    fn protocol_error(&self, e: FrameError) -> PortForwardError {
        tracing::warn!(error = %e, "port-forward: bad SPDY frame, closing session");
        self.shared.control(Frame::GoAway {
            last_good_id: self.last_stream_id,
            status: 1,
        });
        e.into()
    }

    async fn on_frame(&mut self, frame: Frame) {
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => self.on_syn_stream(stream_id, flags, &headers),
            Frame::Data {
                stream_id,
                flags,
                data,
            } => self.on_data(stream_id, flags, data).await,
            Frame::Headers {
                stream_id, flags, ..
            } if flags & FLAG_FIN != 0 => self.finish_inbound(stream_id),
            Frame::RstStream { stream_id, .. } => self.on_reset(stream_id),
            Frame::WindowUpdate { stream_id, delta } => self.on_window_update(stream_id, delta),
            Frame::Settings { entries, .. } => {
                let initial = entries
                    .iter()
                    .find(|s| s.id == SETTINGS_INITIAL_WINDOW_SIZE);
                if let Some(setting) = initial {
                    self.shared.initial_window(setting.value);
                }
            }
            // Odd ids are the client's pings: echo them. Even ones would be
            // answers to pings we never send.
            Frame::Ping { id } if id % 2 == 1 => self.shared.control(Frame::Ping { id }),
            Frame::GoAway { .. } => tracing::debug!("port-forward: peer sent GOAWAY"),
            other => tracing::debug!(?other, "port-forward: ignoring frame"),
        }
    }

    fn on_event(&mut self, event: Event) {
        let Event::PairTimeout(request_id) = event;
        let Some(pair) = self.pairs.remove(&request_id) else {
            return;
        };
        let msg = format!("timed out waiting for streams (request={request_id})");
        tracing::warn!("port-forward: {msg}");
        self.abandon(pair, Some(msg));
    }

    /// Reports on, then closes, whatever half of a pair did arrive.
    fn abandon(&mut self, pair: PendingPair, msg: Option<String>) {
        if let Some(data) = pair.data {
            self.reset_stream(data.id);
        }
        if let Some(error) = pair.error {
            self.streams.remove(&error.id);
            let shared = self.shared.clone();
            let text = Bytes::from(msg.unwrap_or_default());
            self.tasks.spawn(async move {
                shared.data(error.id, FLAG_FIN, text).await;
                shared.close_send_window(error.id);
            });
        }
    }

    fn reset_stream(&mut self, stream_id: u32) {
        self.streams.remove(&stream_id);
        self.shared.close_send_window(stream_id);
        self.shared.control(Frame::RstStream {
            stream_id,
            status: RstStatus::Cancel as u32,
        });
    }

    fn on_syn_stream(&mut self, stream_id: u32, flags: u8, headers: &[(String, String)]) {
        self.last_stream_id = self.last_stream_id.max(stream_id);
        let (port, kind) = match parse_stream_headers(headers) {
            Ok(parsed) => parsed,
            Err(why) => {
                tracing::warn!(stream_id, "port-forward: rejecting stream: {why}");
                self.shared.control(Frame::RstStream {
                    stream_id,
                    status: RstStatus::Cancel as u32,
                });
                return;
            }
        };
        let request_id = request_id(headers, stream_id, kind);
        let end = self.open_stream(stream_id, flags);
        self.shared.control(Frame::SynReply {
            stream_id,
            flags: 0,
            headers: Vec::new(),
        });
        self.add_to_pair(request_id, port, kind, end);
    }

    fn open_stream(&mut self, stream_id: u32, flags: u8) -> StreamEnd {
        let (sender, inbound) = mpsc::unbounded_channel();
        let (reset_tx, reset) = watch::channel(false);
        let budget = Arc::new(Semaphore::new(INBOUND_BUDGET));
        let half_closed = flags & FLAG_FIN != 0;
        self.streams.insert(
            stream_id,
            InboundStream {
                sender: (!half_closed).then_some(sender),
                budget: budget.clone(),
                reset: reset_tx,
            },
        );
        self.shared.open_send_window(stream_id);
        StreamEnd {
            id: stream_id,
            inbound,
            reset,
            budget,
        }
    }

    fn add_to_pair(&mut self, request_id: String, port: u16, kind: StreamKind, end: StreamEnd) {
        let pair = self.pairs.entry(request_id.clone()).or_insert_with(|| {
            let events = self.events_tx.clone();
            let timeout = self.config.pair_timeout;
            let id = request_id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                let _ = events.send(Event::PairTimeout(id));
            });
            PendingPair {
                port,
                ..PendingPair::default()
            }
        });
        let slot = match kind {
            StreamKind::Error => &mut pair.error,
            StreamKind::Data => &mut pair.data,
        };
        if slot.is_some() {
            self.duplicate_stream(&request_id, kind, end.id);
            return;
        }
        *slot = Some(end);
        if pair.error.is_some() && pair.data.is_some() {
            if let Some(pair) = self.pairs.remove(&request_id) {
                self.start_forward(request_id, pair);
            }
        }
    }

    /// kubelet reports a second stream of the same type on the pair's error
    /// stream; we also reset the extra stream so it does not linger.
    fn duplicate_stream(&mut self, request_id: &str, kind: StreamKind, stream_id: u32) {
        let msg = format!(
            "error processing stream for request {request_id}: {} stream already assigned",
            kind.name()
        );
        tracing::warn!("port-forward: {msg}");
        self.reset_stream(stream_id);
        if let Some(pair) = self.pairs.remove(request_id) {
            self.abandon(pair, Some(msg));
        }
    }

    fn start_forward(&mut self, request_id: String, pair: PendingPair) {
        let (Some(data), Some(error)) = (pair.data, pair.error) else {
            return;
        };
        let request = ForwardRequest {
            port: pair.port,
            request_id,
            data,
            error,
        };
        let shared = self.shared.clone();
        let dial = self.dial.clone();
        let config = self.config.clone();
        self.tasks
            .spawn(async move { forward(request, shared, dial, config).await });
    }

    async fn on_data(&mut self, stream_id: u32, flags: u8, data: Bytes) {
        let len = data.len();
        let delivered = match self.streams.get(&stream_id) {
            Some(stream) if len > 0 => deliver(stream, data).await,
            _ => false,
        };
        if !delivered {
            // Nobody will consume it, but the session window still must recover.
            self.shared.session_consumed(len);
        }
        if flags & FLAG_FIN != 0 {
            self.finish_inbound(stream_id);
        }
    }

    fn finish_inbound(&mut self, stream_id: u32) {
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.sender = None;
        }
    }

    fn on_reset(&mut self, stream_id: u32) {
        if let Some(stream) = self.streams.remove(&stream_id) {
            let _ = stream.reset.send(true);
        }
        self.shared.close_send_window(stream_id);
    }

    fn on_window_update(&mut self, stream_id: u32, delta: u32) {
        if !self.shared.window_update(stream_id, delta) {
            self.shared.control(Frame::RstStream {
                stream_id,
                status: RstStatus::FlowControlError as u32,
            });
        }
    }
}

/// Queues inbound bytes for the stream's consumer, waiting (and so pausing
/// the whole session, like kubelet) while its buffer budget is used up.
async fn deliver(stream: &InboundStream, data: Bytes) -> bool {
    let Some(sender) = &stream.sender else {
        return false;
    };
    let cost = u32::try_from(data.len().min(INBOUND_BUDGET)).unwrap_or(u32::MAX);
    let Ok(permit) = stream.budget.clone().acquire_many_owned(cost).await else {
        return false;
    };
    sender
        .send(Chunk {
            data,
            _permit: permit,
        })
        .is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Error,
    Data,
}

impl StreamKind {
    fn name(self) -> &'static str {
        match self {
            StreamKind::Error => STREAM_TYPE_ERROR,
            StreamKind::Data => STREAM_TYPE_DATA,
        }
    }
}

/// Applies kubelet's acceptance rules to a new stream's headers.
fn parse_stream_headers(headers: &[(String, String)]) -> Result<(u16, StreamKind), String> {
    let port = frame::header(headers, HEADER_PORT)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("{HEADER_PORT:?} header is required"))?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port == 0 {
        return Err(format!("port {port:?} must be > 0"));
    }
    let kind = match frame::header(headers, HEADER_STREAM_TYPE) {
        Some(STREAM_TYPE_ERROR) => StreamKind::Error,
        Some(STREAM_TYPE_DATA) => StreamKind::Data,
        Some("") | None => return Err(format!("{HEADER_STREAM_TYPE:?} header is required")),
        Some(other) => return Err(format!("invalid stream type {other:?}")),
    };
    Ok((port, kind))
}

/// Very old clients sent no request id; kubelet derives one from the stream
/// ids (error stream N, data stream N+2), and so do we.
fn request_id(headers: &[(String, String)], stream_id: u32, kind: StreamKind) -> String {
    match frame::header(headers, HEADER_REQUEST_ID) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => match kind {
            StreamKind::Error => stream_id.to_string(),
            StreamKind::Data => (i64::from(stream_id) - 2).to_string(),
        },
    }
}

/// Serves one forwarded connection from dial to close.
async fn forward(
    request: ForwardRequest,
    shared: Arc<Shared>,
    dial: Arc<Dialer>,
    config: Arc<ServeConfig>,
) {
    let ForwardRequest {
        port,
        request_id,
        data,
        error,
    } = request;
    tracing::debug!(port, request_id, "port-forward: dialing");
    let mut reset = data.reset.clone();
    let dialed = tokio::select! {
        dialed = dial(port) => dialed,
        _ = reset.wait_for(|r| *r) => Err("stream reset by client".to_string()),
    };
    let conn = match dialed {
        Ok(conn) => conn,
        Err(why) => {
            shared.close_send_window(data.id);
            shared.data(data.id, FLAG_FIN, Bytes::new()).await;
            report(&shared, &config, port, error.id, Err(why)).await;
            return;
        }
    };
    let (pod_rd, pod_wr) = tokio::io::split(conn);
    let StreamEnd {
        id,
        inbound,
        reset,
        budget,
    } = data;
    let up = uplink(inbound, pod_wr, id, reset.clone(), budget, shared.clone());
    // kubectl waits for the error stream only after the download is over, so
    // close it then, while the upload may still be draining into the pod.
    let down = async {
        let outcome = downlink(pod_rd, id, reset, &shared).await;
        report(&shared, &config, port, error.id, outcome).await;
    };
    tokio::join!(up, down);
}

/// Closes the error stream, first writing kubelet's message if it failed.
async fn report(
    shared: &Shared,
    config: &ServeConfig,
    port: u16,
    error_id: u32,
    outcome: Result<(), String>,
) {
    let text = match outcome {
        Ok(()) => Bytes::new(),
        Err(why) => {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: {why}",
                config.pod, config.uid
            );
            tracing::info!("port-forward: {msg}");
            Bytes::from(msg)
        }
    };
    shared.data(error_id, FLAG_FIN, text).await;
    shared.close_send_window(error_id);
}

/// kubectl -> pod: honours half-close by shutting down the pod's write side.
async fn uplink<W: AsyncWrite + Unpin>(
    mut inbound: mpsc::UnboundedReceiver<Chunk>,
    mut pod: W,
    stream_id: u32,
    mut reset: watch::Receiver<bool>,
    budget: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let mut window = RecvWindow::new(DEFAULT_WINDOW);
    loop {
        let chunk = tokio::select! {
            chunk = inbound.recv() => chunk,
            _ = reset.wait_for(|r| *r) => break,
        };
        let Some(chunk) = chunk else {
            let _ = pod.shutdown().await;
            break;
        };
        let len = chunk.data.len();
        if pod.write_all(&chunk.data).await.is_err() {
            break;
        }
        drop(chunk);
        if let Some(delta) = window.consumed(len) {
            shared.control(Frame::WindowUpdate { stream_id, delta });
        }
        shared.session_consumed(len);
    }
    // Unblocks the reader if it is waiting for budget on this stream.
    budget.close();
}

/// pod -> kubectl: ends with FIN on the data stream when the pod closes.
async fn downlink<R: AsyncRead + Unpin>(
    mut pod: R,
    stream_id: u32,
    mut reset: watch::Receiver<bool>,
    shared: &Shared,
) -> Result<(), String> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let read = tokio::select! {
            read = pod.read(&mut buf) => read,
            _ = reset.wait_for(|r| *r) => return Ok(()),
        };
        let n = read.map_err(|e| e.to_string())?;
        if n == 0 {
            shared.close_send_window(stream_id);
            shared.data(stream_id, FLAG_FIN, Bytes::new()).await;
            return Ok(());
        }
        if !send_chunk(shared, stream_id, &buf[..n]).await {
            return Ok(());
        }
    }
}

/// Sends `bytes`, split as the peer's windows allow; `false` once the stream
/// or session is gone.
async fn send_chunk(shared: &Shared, stream_id: u32, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        let Some(granted) = shared.reserve(stream_id, bytes.len()).await else {
            return false;
        };
        let (now, rest) = bytes.split_at(granted);
        if !shared.data(stream_id, 0, Bytes::copy_from_slice(now)).await {
            return false;
        }
        bytes = rest;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stream_headers_follow_kubelet_rules() {
        let ok = hdrs(&[("streamtype", "data"), ("port", "80"), ("requestid", "3")]);
        assert_eq!(parse_stream_headers(&ok), Ok((80, StreamKind::Data)));
        assert_eq!(request_id(&ok, 7, StreamKind::Data), "3");
        let no_port = hdrs(&[("streamtype", "data")]);
        assert!(parse_stream_headers(&no_port).is_err());
        let zero = hdrs(&[("streamtype", "data"), ("port", "0")]);
        assert!(parse_stream_headers(&zero).is_err());
        let bad_type = hdrs(&[("streamtype", "stdin"), ("port", "80")]);
        assert!(parse_stream_headers(&bad_type).is_err());
    }

    #[test]
    fn missing_request_id_pairs_by_stream_id() {
        let none = hdrs(&[]);
        assert_eq!(request_id(&none, 1, StreamKind::Error), "1");
        assert_eq!(request_id(&none, 3, StreamKind::Data), "1");
    }

    #[test]
    fn protocol_offers_are_parsed_from_lists() {
        assert!(offers_protocol(
            ["foo, SPDY/3.1+portforward.k8s.io"],
            WEBSOCKET_PROTOCOL
        ));
        assert!(offers_protocol(["x", "portforward.k8s.io"], PROTOCOL));
        assert!(!offers_protocol(["v4.channel.k8s.io"], PROTOCOL));
    }

    #[test]
    fn websocket_accept_key_matches_rfc6455_example() {
        let h = websocket_upgrade_headers("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(h[2].1, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(h[3].1, WEBSOCKET_PROTOCOL);
    }
}
