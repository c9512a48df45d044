//! Drives `serve` with a scripted SPDY client built from our own codec, to
//! cover what kubectl never exercises: a peer that does flow control.
// The harness helpers are test code too; clippy only exempts #[test] fns.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use switchyard_spdy::frame::{
    self as spdy, Frame, HeaderCompressor, HeaderDecompressor, DEFAULT_WINDOW, FLAG_FIN,
};
use switchyard_spdy::portforward::{self, Duplex};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

struct Client {
    rd: ReadHalf<DuplexStream>,
    wr: WriteHalf<DuplexStream>,
    comp: HeaderCompressor,
    decomp: HeaderDecompressor,
    buf: BytesMut,
}

impl Client {
    fn new(io: DuplexStream) -> Self {
        let (rd, wr) = tokio::io::split(io);
        Self {
            rd,
            wr,
            comp: HeaderCompressor::new().unwrap(),
            decomp: HeaderDecompressor::new(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        spdy::encode(&frame, &mut self.comp, &mut out).unwrap();
        self.wr.write_all(&out).await.unwrap();
    }

    async fn recv(&mut self) -> Frame {
        loop {
            if let Some(f) = spdy::decode(&mut self.buf, &mut self.decomp).unwrap() {
                return f;
            }
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.rd.read_buf(&mut self.buf));
            assert!(read.await.unwrap().unwrap() > 0, "server hung up");
        }
    }

    async fn open_pair(&mut self, port: u16, request: &str, error_id: u32, data_id: u32) {
        for (id, kind) in [(error_id, "error"), (data_id, "data")] {
            let headers = vec![
                ("streamtype".to_string(), kind.to_string()),
                ("port".to_string(), port.to_string()),
                ("requestid".to_string(), request.to_string()),
            ];
            self.send(Frame::SynStream {
                stream_id: id,
                associated_id: 0,
                priority: 0,
                flags: 0,
                headers,
            })
            .await;
            let reply = self.recv().await;
            assert!(matches!(reply, Frame::SynReply { stream_id, .. } if stream_id == id));
        }
    }
}

async fn echo_dial(_port: u16) -> Result<Box<dyn Duplex>, String> {
    let (ours, theirs) = tokio::io::duplex(16 * 1024);
    tokio::spawn(async move {
        let (mut r, mut w) = tokio::io::split(theirs);
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    });
    Ok(Box::new(ours) as Box<dyn Duplex>)
}

#[tokio::test]
async fn echo_respects_peer_windows_and_replenishes_ours() {
    let (server_io, client_io) = tokio::io::duplex(256 * 1024);
    let server = tokio::spawn(portforward::serve(server_io, echo_dial));
    let mut c = Client::new(client_io);
    c.open_pair(80, "0", 1, 3).await;
    // Prove we do flow control, so the server must honour our windows.
    c.send(Frame::WindowUpdate {
        stream_id: 3,
        delta: 1,
    })
    .await;

    let payload: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    let mut our_window = i64::from(DEFAULT_WINDOW); // what we may still send
    let mut granted = i64::from(DEFAULT_WINDOW) + 1; // what the server may send us
    let mut sent = 0usize;
    let mut echoed = Vec::new();
    let mut error_closed = false;
    let mut data_closed = false;
    while !(data_closed && error_closed) {
        // Send what our window allows, FIN once everything is out.
        while sent < payload.len() && our_window > 0 {
            let n = (payload.len() - sent)
                .min(16 * 1024)
                .min(our_window as usize);
            let last = sent + n == payload.len();
            let chunk = Bytes::copy_from_slice(&payload[sent..sent + n]);
            let flags = if last { FLAG_FIN } else { 0 };
            c.send(Frame::Data {
                stream_id: 3,
                flags,
                data: chunk,
            })
            .await;
            sent += n;
            our_window -= n as i64;
        }
        match c.recv().await {
            Frame::WindowUpdate {
                stream_id: 3,
                delta,
            } => our_window += i64::from(delta),
            Frame::WindowUpdate { .. } | Frame::Ping { .. } => {}
            Frame::Data {
                stream_id: 3,
                flags,
                data,
            } => {
                echoed.extend_from_slice(&data);
                assert!(echoed.len() as i64 <= granted, "server overran our window");
                // Re-open the window only after "consuming" a good chunk.
                if echoed.len() as i64 > granted - 8192 {
                    c.send(Frame::WindowUpdate {
                        stream_id: 3,
                        delta: 32_768,
                    })
                    .await;
                    c.send(Frame::WindowUpdate {
                        stream_id: 0,
                        delta: 32_768,
                    })
                    .await;
                    granted += 32_768;
                }
                data_closed |= flags & FLAG_FIN != 0;
            }
            Frame::Data {
                stream_id: 1,
                flags,
                data,
            } => {
                assert!(data.is_empty(), "unexpected error text {data:?}");
                error_closed = flags & FLAG_FIN != 0;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(echoed, payload);
    drop(c);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn dial_failure_is_reported_on_error_stream() {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(portforward::serve(server_io, |_port| async {
        Err::<Box<dyn Duplex>, _>("connection refused".to_string())
    }));
    let mut c = Client::new(client_io);
    c.open_pair(9999, "7", 1, 3).await;
    let mut error_text = None;
    let mut data_fin = false;
    while error_text.is_none() || !data_fin {
        match c.recv().await {
            Frame::Data {
                stream_id: 1,
                flags,
                data,
            } if flags & FLAG_FIN != 0 => {
                error_text = Some(String::from_utf8(data.to_vec()).unwrap());
            }
            Frame::Data {
                stream_id: 3,
                flags,
                ..
            } => data_fin = flags & FLAG_FIN != 0,
            other => panic!("unexpected frame {other:?}"),
        }
    }
    let text = error_text.unwrap();
    assert!(
        text.starts_with("error forwarding port 9999 to pod"),
        "{text}"
    );
    assert!(text.ends_with(": connection refused"), "{text}");
    drop(c);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_streams_are_reset_and_pings_echoed() {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(portforward::serve(server_io, echo_dial));
    let mut c = Client::new(client_io);
    let headers = vec![("streamtype".to_string(), "data".to_string())];
    c.send(Frame::SynStream {
        stream_id: 1,
        associated_id: 0,
        priority: 0,
        flags: 0,
        headers,
    })
    .await;
    assert!(matches!(
        c.recv().await,
        Frame::RstStream {
            stream_id: 1,
            status: 5
        }
    ));
    c.send(Frame::Ping { id: 3 }).await;
    assert_eq!(c.recv().await, Frame::Ping { id: 3 });
    drop(c);
    server.await.unwrap().unwrap();
}
