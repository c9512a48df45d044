//! SPDY/3.1 framing: the wire format kubectl's port-forward speaks once the
//! connection is upgraded.
//!
//! Only the codec lives here (frame layout, the zlib-compressed name/value
//! header blocks, and the flow-control window arithmetic); the session logic
//! that decides what to send is in `portforward`. Header compression is a
//! single zlib stream per direction for the whole session, so the codec keeps
//! that state in [`HeaderCompressor`] and [`HeaderDecompressor`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::dictionary::SPDY3_DICTIONARY;

/// The only protocol version we accept; SPDY/2 used a different dictionary.
pub const VERSION: u16 = 3;
/// Control and data frames both carry a 24-bit length.
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;
/// SPDY/3.1 starts every stream window and the session window here.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// Windows are signed 31-bit quantities; growing past this is a protocol error.
pub const MAX_WINDOW: i64 = (1 << 31) - 1;

/// FIN on a data frame or on SYN_STREAM/SYN_REPLY/HEADERS: the sender is done.
pub const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM only: the receiver must not send on this stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS id whose value replaces the initial per-stream window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;
const HEADER_LEN: usize = 8;
const STREAM_ID_MASK: u32 = 0x7fff_ffff;
/// A decompressed header block larger than this is treated as hostile.
const MAX_HEADER_BLOCK: usize = 1 << 20;

/// RST_STREAM status codes (SPDY/3.1 section 2.6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RstStatus {
    ProtocolError = 1,
    InvalidStream = 2,
    RefusedStream = 3,
    UnsupportedVersion = 4,
    Cancel = 5,
    InternalError = 6,
    FlowControlError = 7,
    StreamInUse = 8,
    StreamAlreadyClosed = 9,
    FrameTooLarge = 11,
}

/// Name/value pairs of a header block, in wire order; a value that holds
/// several values keeps SPDY's NUL separators.
pub type HeaderList = Vec<(String, String)>;

/// One entry of a SETTINGS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A decoded SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_id: u32,
        priority: u8,
        flags: u8,
        headers: HeaderList,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: HeaderList,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: HeaderList,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
}

/// Why bytes on the wire could not be turned into a frame (or back).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("unknown control frame type {0}")]
    UnknownType(u16),
    #[error("{kind} frame has invalid length {len}")]
    Length { kind: &'static str, len: usize },
    #[error("malformed header block: {0}")]
    HeaderBlock(&'static str),
    #[error("header compression failed: {0}")]
    Zlib(String),
    #[error("frame payload of {0} bytes exceeds the 24-bit length field")]
    TooLarge(usize),
}

/// Compresses outgoing header blocks; one per session direction because
/// SPDY's zlib stream spans every header block the session sends.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl HeaderCompressor {
    pub fn new() -> Result<Self, FrameError> {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(SPDY3_DICTIONARY)
            .map_err(|e| FrameError::Zlib(e.to_string()))?;
        Ok(Self { zlib })
    }

    /// Sync-flushes so the peer can decode this block without later ones.
    pub fn compress(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, FrameError> {
        let raw = encode_header_block(headers)?;
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0usize;
        loop {
            out.reserve(256);
            let before = self.zlib.total_in();
            self.zlib
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::Zlib(e.to_string()))?;
            consumed += delta(before, self.zlib.total_in());
            // Done once all input is in and zlib left spare room (flush complete).
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Decompresses incoming header blocks; see [`HeaderCompressor`] for why it
/// is stateful.
pub struct HeaderDecompressor {
    zlib: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        Self {
            zlib: Decompress::new(true),
        }
    }

    pub fn decompress(&mut self, block: &[u8]) -> Result<HeaderList, FrameError> {
        let raw = self.inflate(block)?;
        decode_header_block(&raw)
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut consumed = 0usize;
        while consumed < block.len() || out.len() == out.capacity() {
            if out.len() >= MAX_HEADER_BLOCK {
                return Err(FrameError::HeaderBlock("header block too large"));
            }
            out.reserve(1024);
            let before = self.zlib.total_in();
            let status = self.inflate_step(&block[consumed..], &mut out)?;
            let used = delta(before, self.zlib.total_in());
            consumed += used;
            if status == Status::StreamEnd || (used == 0 && out.len() < out.capacity()) {
                break;
            }
        }
        Ok(out)
    }

    /// The first block asks for the dictionary; supply it and carry on.
    fn inflate_step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Status, FrameError> {
        match self.zlib.decompress_vec(input, out, FlushDecompress::Sync) {
            Ok(status) => Ok(status),
            Err(e) if e.needs_dictionary().is_some() => {
                self.zlib
                    .set_dictionary(SPDY3_DICTIONARY)
                    .map_err(|e| FrameError::Zlib(e.to_string()))?;
                Ok(Status::Ok)
            }
            Err(e) => Err(FrameError::Zlib(e.to_string())),
        }
    }
}

fn delta(before: u64, after: u64) -> usize {
    usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX)
}

fn len_u32(len: usize) -> Result<u32, FrameError> {
    u32::try_from(len).map_err(|_| FrameError::TooLarge(len))
}

fn encode_header_block(headers: &[(String, String)]) -> Result<Vec<u8>, FrameError> {
    let mut raw = Vec::new();
    raw.put_u32(len_u32(headers.len())?);
    for (name, value) in headers {
        raw.put_u32(len_u32(name.len())?);
        raw.extend_from_slice(name.to_ascii_lowercase().as_bytes());
        raw.put_u32(len_u32(value.len())?);
        raw.extend_from_slice(value.as_bytes());
    }
    Ok(raw)
}

fn decode_header_block(mut raw: &[u8]) -> Result<HeaderList, FrameError> {
    let count = take_u32(&mut raw)?;
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = take_string(&mut raw)?;
        let value = take_string(&mut raw)?;
        headers.push((name.to_ascii_lowercase(), value));
    }
    Ok(headers)
}

fn take_u32(raw: &mut &[u8]) -> Result<u32, FrameError> {
    if raw.len() < 4 {
        return Err(FrameError::HeaderBlock("truncated length"));
    }
    Ok(raw.get_u32())
}

fn take_string(raw: &mut &[u8]) -> Result<String, FrameError> {
    let len = take_u32(raw)? as usize;
    if raw.len() < len {
        return Err(FrameError::HeaderBlock("truncated string"));
    }
    let (text, rest) = raw.split_at(len);
    *raw = rest;
    String::from_utf8(text.to_vec()).map_err(|_| FrameError::HeaderBlock("non-UTF-8 header"))
}

/// Looks up a header the way kubelet does: first value, case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

/// Appends the wire form of `frame` to `out`.
pub fn encode(
    frame: &Frame,
    compressor: &mut HeaderCompressor,
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    match frame {
        Frame::Data {
            stream_id,
            flags,
            data,
        } => encode_data(*stream_id, *flags, data, out),
        Frame::SynStream {
            stream_id,
            associated_id,
            priority,
            flags,
            headers,
        } => {
            let block = compressor.compress(headers)?;
            let mut body = BytesMut::with_capacity(10 + block.len());
            body.put_u32(stream_id & STREAM_ID_MASK);
            body.put_u32(associated_id & STREAM_ID_MASK);
            body.put_u8((priority & 0x07) << 5);
            body.put_u8(0);
            body.extend_from_slice(&block);
            control(TYPE_SYN_STREAM, *flags, &body, out)
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        } => headers_like(TYPE_SYN_REPLY, *stream_id, *flags, headers, compressor, out),
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => headers_like(TYPE_HEADERS, *stream_id, *flags, headers, compressor, out),
        _ => encode_fixed(frame, out),
    }
}

/// Control frames whose bodies are plain integers (no header block).
fn encode_fixed(frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
    let mut body = BytesMut::with_capacity(16);
    let (kind, flags) = match frame {
        Frame::RstStream { stream_id, status } => {
            body.put_u32(stream_id & STREAM_ID_MASK);
            body.put_u32(*status);
            (TYPE_RST_STREAM, 0)
        }
        Frame::Settings { flags, entries } => {
            body.put_u32(len_u32(entries.len())?);
            for s in entries {
                body.put_u32((u32::from(s.flags) << 24) | (s.id & 0x00ff_ffff));
                body.put_u32(s.value);
            }
            (TYPE_SETTINGS, *flags)
        }
        Frame::Ping { id } => {
            body.put_u32(*id);
            (TYPE_PING, 0)
        }
        Frame::GoAway {
            last_good_id,
            status,
        } => {
            body.put_u32(last_good_id & STREAM_ID_MASK);
            body.put_u32(*status);
            (TYPE_GOAWAY, 0)
        }
        Frame::WindowUpdate { stream_id, delta } => {
            body.put_u32(stream_id & STREAM_ID_MASK);
            body.put_u32(delta & STREAM_ID_MASK);
            (TYPE_WINDOW_UPDATE, 0)
        }
        Frame::Data { .. }
        | Frame::SynStream { .. }
        | Frame::SynReply { .. }
        | Frame::Headers { .. } => return Err(FrameError::HeaderBlock("not a fixed frame")),
    };
    control(kind, flags, &body, out)
}

fn headers_like(
    kind: u16,
    stream_id: u32,
    flags: u8,
    headers: &[(String, String)],
    compressor: &mut HeaderCompressor,
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    let block = compressor.compress(headers)?;
    let mut body = BytesMut::with_capacity(4 + block.len());
    body.put_u32(stream_id & STREAM_ID_MASK);
    body.extend_from_slice(&block);
    control(kind, flags, &body, out)
}

fn frame_len(len: usize) -> Result<u32, FrameError> {
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    len_u32(len)
}

fn control(kind: u16, flags: u8, body: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
    let len = frame_len(body.len())?;
    out.reserve(HEADER_LEN + body.len());
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32((u32::from(flags) << 24) | len);
    out.extend_from_slice(body);
    Ok(())
}

fn encode_data(
    stream_id: u32,
    flags: u8,
    data: &[u8],
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    let len = frame_len(data.len())?;
    out.reserve(HEADER_LEN + data.len());
    out.put_u32(stream_id & STREAM_ID_MASK);
    out.put_u32((u32::from(flags) << 24) | len);
    out.extend_from_slice(data);
    Ok(())
}

/// Takes one complete frame off the front of `buf`, or returns `None` when
/// more bytes are needed (the caller reads more and tries again).
pub fn decode(
    buf: &mut BytesMut,
    decompressor: &mut HeaderDecompressor,
) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let flags = buf[4];
    let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
    if buf.len() < HEADER_LEN + len {
        buf.reserve(HEADER_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let body = buf.split_to(len).freeze();
    if word & 0x8000_0000 == 0 {
        return Ok(Some(Frame::Data {
            stream_id: word & STREAM_ID_MASK,
            flags,
            data: body,
        }));
    }
    let version = ((word >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    decode_control((word & 0xffff) as u16, flags, body, decompressor).map(Some)
}

fn decode_control(
    kind: u16,
    flags: u8,
    mut body: Bytes,
    decompressor: &mut HeaderDecompressor,
) -> Result<Frame, FrameError> {
    let len = body.len();
    let need = |kind: &'static str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(FrameError::Length { kind, len })
        }
    };
    match kind {
        TYPE_SYN_STREAM => {
            need("SYN_STREAM", len >= 10)?;
            let stream_id = body.get_u32() & STREAM_ID_MASK;
            let associated_id = body.get_u32() & STREAM_ID_MASK;
            let priority = body.get_u8() >> 5;
            let _slot = body.get_u8();
            let headers = decompressor.decompress(&body)?;
            Ok(Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                flags,
                headers,
            })
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            need("SYN_REPLY/HEADERS", len >= 4)?;
            let stream_id = body.get_u32() & STREAM_ID_MASK;
            let headers = decompressor.decompress(&body)?;
            Ok(if kind == TYPE_SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    flags,
                    headers,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    flags,
                    headers,
                }
            })
        }
        TYPE_SETTINGS => decode_settings(flags, body),
        TYPE_PING => {
            need("PING", len == 4)?;
            Ok(Frame::Ping { id: body.get_u32() })
        }
        TYPE_RST_STREAM | TYPE_GOAWAY | TYPE_WINDOW_UPDATE => {
            need("RST_STREAM/GOAWAY/WINDOW_UPDATE", len == 8)?;
            let id = body.get_u32() & STREAM_ID_MASK;
            let value = body.get_u32();
            Ok(match kind {
                TYPE_RST_STREAM => Frame::RstStream {
                    stream_id: id,
                    status: value,
                },
                TYPE_GOAWAY => Frame::GoAway {
                    last_good_id: id,
                    status: value,
                },
                _ => Frame::WindowUpdate {
                    stream_id: id,
                    delta: value & STREAM_ID_MASK,
                },
            })
        }
        other => Err(FrameError::UnknownType(other)),
    }
}

fn decode_settings(flags: u8, mut body: Bytes) -> Result<Frame, FrameError> {
    let len = body.len();
    if len < 4 {
        return Err(FrameError::Length {
            kind: "SETTINGS",
            len,
        });
    }
    let count = body.get_u32() as usize;
    if body.len() != count.saturating_mul(8) {
        return Err(FrameError::Length {
            kind: "SETTINGS",
            len,
        });
    }
    let entries = (0..count)
        .map(|_| {
            let word = body.get_u32();
            Setting {
                flags: (word >> 24) as u8,
                id: word & 0x00ff_ffff,
                value: body.get_u32(),
            }
        })
        .collect();
    Ok(Frame::Settings { flags, entries })
}

/// How much we may still send on a stream or session. Signed because a
/// SETTINGS change to the initial window can push it below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    available: i64,
}

impl SendWindow {
    pub fn new(initial: u32) -> Self {
        Self {
            available: i64::from(initial),
        }
    }

    pub fn available(&self) -> i64 {
        self.available
    }

    /// Reserves up to `want` bytes; returns how many may be sent now.
    pub fn take(&mut self, want: usize) -> usize {
        let allowed = usize::try_from(self.available.max(0))
            .unwrap_or(0)
            .min(want);
        self.available -= allowed as i64;
        allowed
    }

    /// Charges bytes that were sent without asking (peer does no flow control).
    pub fn charge(&mut self, sent: usize) {
        self.available -= sent as i64;
    }

    /// Applies a WINDOW_UPDATE; `false` means the peer overflowed the window,
    /// which SPDY/3.1 treats as a flow-control error.
    pub fn grow(&mut self, delta: u32) -> bool {
        let next = self.available + i64::from(delta);
        if next > MAX_WINDOW {
            return false;
        }
        self.available = next;
        true
    }

    /// Applies a new SETTINGS_INITIAL_WINDOW_SIZE to an existing stream.
    pub fn rebase(&mut self, old_initial: u32, new_initial: u32) {
        self.available += i64::from(new_initial) - i64::from(old_initial);
    }
}

/// Tracks bytes we have consumed but not yet re-advertised, so WINDOW_UPDATEs
/// are batched (half a window at a time) instead of one per data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    unacked: u32,
    threshold: u32,
}

impl RecvWindow {
    pub fn new(window: u32) -> Self {
        Self {
            unacked: 0,
            threshold: (window / 2).max(1),
        }
    }

    /// Records consumed bytes; returns the delta to advertise when due.
    pub fn consumed(&mut self, n: usize) -> Option<u32> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.unacked = self.unacked.saturating_add(n);
        if self.unacked >= self.threshold {
            return Some(std::mem::take(&mut self.unacked));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let mut comp = HeaderCompressor::new().unwrap();
        let mut wire = BytesMut::new();
        for f in frames {
            encode(f, &mut comp, &mut wire).unwrap();
        }
        let mut decomp = HeaderDecompressor::new();
        let mut out = Vec::new();
        while let Some(f) = decode(&mut wire, &mut decomp).unwrap() {
            out.push(f);
        }
        assert!(wire.is_empty());
        out
    }

    fn every_frame() -> Vec<Frame> {
        let pf = hdrs(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]);
        vec![
            Frame::SynStream {
                stream_id: 1,
                associated_id: 0,
                priority: 3,
                flags: FLAG_FIN,
                headers: pf.clone(),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::RstStream {
                stream_id: 3,
                status: RstStatus::Cancel as u32,
            },
            Frame::Settings {
                flags: 1,
                entries: vec![Setting {
                    flags: 1,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 1 << 20,
                }],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_id: 5,
                status: 0,
            },
            Frame::Headers {
                stream_id: 5,
                flags: FLAG_FIN,
                headers: hdrs(&[("x", "a\0b")]),
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 32768,
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_id: 0,
                priority: 0,
                flags: 0,
                headers: pf,
            },
        ]
    }

    #[test]
    fn every_frame_type_round_trips_through_one_session() {
        let frames = every_frame();
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn partial_input_waits_for_more_bytes() {
        let mut comp = HeaderCompressor::new().unwrap();
        let mut wire = BytesMut::new();
        encode(&Frame::Ping { id: 9 }, &mut comp, &mut wire).unwrap();
        let mut decomp = HeaderDecompressor::new();
        let mut partial = BytesMut::from(&wire[..5]);
        assert_eq!(decode(&mut partial, &mut decomp).unwrap(), None);
        partial.extend_from_slice(&wire[5..]);
        assert_eq!(
            decode(&mut partial, &mut decomp).unwrap(),
            Some(Frame::Ping { id: 9 })
        );
    }

    #[test]
    fn ping_wire_layout_matches_spec() {
        let mut comp = HeaderCompressor::new().unwrap();
        let mut wire = BytesMut::new();
        encode(&Frame::Ping { id: 1 }, &mut comp, &mut wire).unwrap();
        assert_eq!(&wire[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
    }

    #[test]
    fn header_block_uses_spdy_dictionary() {
        let mut comp = HeaderCompressor::new().unwrap();
        let block = comp.compress(&hdrs(&[("port", "8080")])).unwrap();
        // zlib header with FDICT set, then the dictionary's Adler-32.
        assert_eq!(block[1] & 0x20, 0x20);
        assert_eq!(&block[2..6], &0xe3c6_a7c2u32.to_be_bytes());
        // A plain zlib stream without the dictionary cannot read it.
        let mut plain = Decompress::new(true);
        let mut out = Vec::with_capacity(256);
        let err = plain
            .decompress_vec(&block, &mut out, FlushDecompress::Sync)
            .unwrap_err();
        assert!(err.needs_dictionary().is_some());
    }

    #[test]
    fn header_blocks_share_one_zlib_stream() {
        let mut comp = HeaderCompressor::new().unwrap();
        let mut decomp = HeaderDecompressor::new();
        let big = "v".repeat(10_000);
        for i in 0..20 {
            let h = hdrs(&[("requestid", &i.to_string()), ("big", &big)]);
            let block = comp.compress(&h).unwrap();
            assert_eq!(decomp.decompress(&block).unwrap(), h);
        }
    }

    #[test]
    fn header_names_are_lowercased_and_lookup_takes_first_value() {
        let mut comp = HeaderCompressor::new().unwrap();
        let block = comp.compress(&hdrs(&[("StreamType", "error\0x")])).unwrap();
        let got = HeaderDecompressor::new().decompress(&block).unwrap();
        assert_eq!(got[0].0, "streamtype");
        assert_eq!(header(&got, "STREAMTYPE"), Some("error"));
    }

    #[test]
    fn truncated_header_block_is_an_error() {
        assert!(decode_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
    }

    #[test]
    fn unknown_version_is_rejected() {
        let mut wire = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        let err = decode(&mut wire, &mut HeaderDecompressor::new()).unwrap_err();
        assert!(matches!(err, FrameError::Version(2)));
    }

    #[test]
    fn send_window_takes_grows_and_rebases() {
        let mut w = SendWindow::new(DEFAULT_WINDOW);
        assert_eq!(w.take(100_000), 65_536);
        assert_eq!(w.take(1), 0);
        assert!(w.grow(10));
        assert_eq!(w.take(100), 10);
        w.rebase(DEFAULT_WINDOW, 1024);
        assert_eq!(w.available(), 1024 - 65_536);
        assert_eq!(w.take(1), 0);
        w.charge(5);
        assert_eq!(w.available(), 1024 - 65_536 - 5);
        let mut full = SendWindow::new(DEFAULT_WINDOW);
        assert!(
            !full.grow(u32::MAX >> 1),
            "overflow past 2^31-1 must be refused"
        );
        assert_eq!(full.available(), 65_536);
    }

    #[test]
    fn recv_window_batches_updates_at_half_window() {
        let mut w = RecvWindow::new(DEFAULT_WINDOW);
        assert_eq!(w.consumed(16_384), None);
        assert_eq!(w.consumed(16_383), None);
        assert_eq!(w.consumed(1), Some(32_768));
        assert_eq!(w.consumed(1), None);
    }
}
