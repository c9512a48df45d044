//! A deliberately minimal HTTP/1.1 server: enough for curl, readiness probes
//! and load-balancing tests, with no dependency beyond tokio.
//!
//! Routes: `GET /bytes/N` streams N bytes; `/status/CODE` answers with that
//! status; `POST /echo` echoes the body; anything else answers
//! `NAME <client-ip>:<client-port>\n`. Keep-alive follows HTTP/1.x defaults.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::backend::identity;

/// Bounds that keep a confused or hostile client from eating memory.
const MAX_HEADERS: usize = 100;
const MAX_LINE: usize = 8 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

type IoResult<T> = std::io::Result<T>;

/// One parsed request (headers we do not use are skipped).
#[derive(Debug, Default)]
struct Request {
    method: String,
    path: String,
    keep_alive: bool,
    body: Vec<u8>,
}

/// Serves requests on one connection until the client closes or asks to.
pub async fn serve_connection(stream: TcpStream, peer: SocketAddr, name: &str) -> IoResult<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(req) = read_request(&mut reader).await? {
        respond(&mut write, &req, name, peer).await?;
        if !req.keep_alive {
            break;
        }
    }
    write.shutdown().await
}

async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> IoResult<Option<String>> {
    let mut line = String::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_line(&mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> IoResult<Option<Request>> {
    let Some(line) = read_line(reader).await? else {
        return Ok(None);
    };
    let mut parts = line.split_whitespace();
    let mut req = Request {
        method: parts.next().unwrap_or_default().to_string(),
        path: parts.next().unwrap_or("/").to_string(),
        keep_alive: parts.next() == Some("HTTP/1.1"),
        body: Vec::new(),
    };
    let length = read_headers(reader, &mut req).await?;
    req.body = vec![0; length.min(MAX_BODY)];
    reader.read_exact(&mut req.body).await?;
    Ok(Some(req))
}

/// Reads headers up to the blank line, applying `Connection` to the request
/// and returning the body length.
async fn read_headers<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    req: &mut Request,
) -> IoResult<usize> {
    let mut length = 0;
    for _ in 0..MAX_HEADERS {
        let Some(line) = read_line(reader).await? else {
            break;
        };
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "connection" => req.keep_alive = value.eq_ignore_ascii_case("keep-alive"),
            _ => {}
        }
    }
    Ok(length)
}

async fn respond<W: AsyncWrite + Unpin>(
    w: &mut W,
    req: &Request,
    name: &str,
    peer: SocketAddr,
) -> IoResult<()> {
    let path = req.path.as_str();
    if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok())
    {
        write_head(w, 200, n, name, req).await?;
        return stream_bytes(w, n, req).await;
    }
    let status = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (200..600).contains(c))
        .unwrap_or(200);
    let body = if req.method == "POST" && path == "/echo" {
        req.body.clone()
    } else {
        identity(name, peer).into_bytes()
    };
    write_head(w, status, body.len() as u64, name, req).await?;
    if req.method != "HEAD" {
        w.write_all(&body).await?;
    }
    w.flush().await
}

async fn write_head<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    len: u64,
    name: &str,
    req: &Request,
) -> IoResult<()> {
    let connection = if req.keep_alive {
        "keep-alive"
    } else {
        "close"
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\nConnection: {connection}\r\nX-Backend: {name}\r\n\r\n",
        reason(status)
    );
    w.write_all(head.as_bytes()).await
}

async fn stream_bytes<W: AsyncWrite + Unpin>(w: &mut W, n: u64, req: &Request) -> IoResult<()> {
    if req.method == "HEAD" {
        return w.flush().await;
    }
    let chunk = vec![b'x'; CHUNK];
    let mut left = n;
    while left > 0 {
        let take = left.min(CHUNK as u64);
        let size = usize::try_from(take).unwrap_or(CHUNK);
        w.write_all(chunk.get(..size).unwrap_or_default()).await?;
        left -= take;
    }
    w.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
