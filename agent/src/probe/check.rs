//! One probe attempt: a TCP connect, or an HTTP GET whose status is 2xx/3xx.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use switchyard_api::v1::PodProbe;
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    Success,
    Failure(String),
}

/// Runs the probe once, bounded by its timeout.
pub async fn run_check(probe: &PodProbe) -> CheckResult {
    let timeout = Duration::from_secs(u64::from(probe.timeout_seconds.max(1)));
    let Ok(ip) = probe.pod_ip.parse() else {
        return CheckResult::Failure(format!("invalid pod IP {:?}", probe.pod_ip));
    };
    let Ok(port) = u16::try_from(probe.port) else {
        return CheckResult::Failure(format!("invalid port {}", probe.port));
    };
    let addr = SocketAddr::new(ip, port);
    let attempt = async {
        match probe.handler.as_str() {
            "http" => http_get(addr, &probe.path).await,
            _ => tcp_connect(addr).await,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => CheckResult::Failure(format!("timed out after {}s", timeout.as_secs())),
    }
}

async fn tcp_connect(addr: SocketAddr) -> CheckResult {
    match TcpStream::connect(addr).await {
        Ok(_) => CheckResult::Success,
        Err(e) => CheckResult::Failure(format!("dial tcp {addr}: {e}")),
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> CheckResult {
    let fail = |what: String| CheckResult::Failure(format!("Get \"http://{addr}{path}\": {what}"));
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => return fail(e.to_string()),
    };
    tokio::spawn(conn);
    let request = hyper::Request::get(if path.is_empty() { "/" } else { path })
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "switchyard-probe/1.0")
        .body(Empty::<Bytes>::new());
    let request = match request {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    match sender.send_request(request).await {
        Ok(resp) if (200..400).contains(&resp.status().as_u16()) => CheckResult::Success,
        Ok(resp) => fail(format!(
            "HTTP probe failed with statuscode: {}",
            resp.status().as_u16()
        )),
        Err(e) => fail(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn probe(handler: &str, port: u16, path: &str) -> PodProbe {
        PodProbe {
            pod_ip: "127.0.0.1".into(),
            handler: handler.into(),
            port: u32::from(port),
            path: path.into(),
            timeout_seconds: 1,
            ..Default::default()
        }
    }

    async fn http_server(status: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn tcp_probe_succeeds_on_listener_and_fails_without() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            run_check(&probe("tcp", port, "")).await,
            CheckResult::Success
        );
        drop(listener);
        assert!(matches!(
            run_check(&probe("tcp", port, "")).await,
            CheckResult::Failure(_)
        ));
    }

    #[tokio::test]
    async fn http_probe_judges_the_status() {
        let ok = http_server("200 OK").await;
        assert_eq!(
            run_check(&probe("http", ok, "/healthz")).await,
            CheckResult::Success
        );
        let bad = http_server("503 Service Unavailable").await;
        match run_check(&probe("http", bad, "/healthz")).await {
            CheckResult::Failure(msg) => assert!(
                msg.ends_with("HTTP probe failed with statuscode: 503"),
                "{msg}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
