//! `swctl port-forward` end to end without root: a real control plane
//! process, the agent's tunnel end running in-process (as `switchyard-agent`
//! runs it), and "pods" whose podIP is 127.0.0.1 and whose container ports
//! are tokio servers on random loopback ports. swctl is the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::ControlPlane;
use swctl::portforward::spec::Target;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Runtime;

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------- backends

/// The servers standing in for the pods' workloads.
struct Backends {
    http_a: u16,
    http_b: u16,
    echo: u16,
    hash: u16,
    bytes: u16,
    reverse: u16,
    /// A port nothing listens on.
    dead: u16,
    bytes_sent: Arc<AtomicU64>,
    reverse_got: Arc<Mutex<Vec<u8>>>,
}

async fn listen() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn port_of(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

/// Serves `handler` for every connection.
fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(handler(s));
        }
    });
}

/// Answers any HTTP request with `pod=NAME`.
async fn http(mut s: TcpStream, name: &'static str) {
    let mut reader = tokio::io::BufReader::new(&mut s);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let body = format!("pod={name}");
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

async fn echo(s: TcpStream) {
    let (mut r, mut w) = s.into_split();
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

/// Reads to EOF, then answers with the SHA-256 of what it read.
async fn hash(mut s: TcpStream) {
    let mut h = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => h.update(&buf[..n]),
        }
    }
    let _ = s.write_all(hex(&h.finalize()).as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Reads a decimal count and a newline, then sends that many pattern bytes.
async fn bytes(s: TcpStream, sent: Arc<AtomicU64>) {
    let mut s = tokio::io::BufReader::new(s);
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    let total: u64 = line.trim().parse().unwrap();
    let mut buf = vec![0; 64 * 1024];
    let mut off = 0u64;
    while off < total {
        let n = (total - off).min(buf.len() as u64) as usize;
        pattern(off, &mut buf[..n]);
        if s.get_mut().write_all(&buf[..n]).await.is_err() {
            return;
        }
        off += n as u64;
        sent.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = s.get_mut().shutdown().await;
}

/// Half-closes first (after a banner), then records what the client sends.
async fn reverse(s: TcpStream, got: Arc<Mutex<Vec<u8>>>) {
    let (mut r, mut w) = s.into_split();
    w.write_all(b"banner").await.unwrap();
    w.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest).await;
    *got.lock().unwrap() = rest;
}

async fn start_backends() -> Backends {
    let (a, b, e, h) = (
        listen().await,
        listen().await,
        listen().await,
        listen().await,
    );
    let rev = listen().await;
    // A small send buffer, so the slow-reader test measures the tunnel, not the kernel.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_send_buffer_size(64 * 1024).unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let by = sock.listen(64).unwrap();
    let dead = port_of(&listen().await);
    let bytes_sent = Arc::new(AtomicU64::new(0));
    let reverse_got = Arc::new(Mutex::new(Vec::new()));
    let out = Backends {
        http_a: port_of(&a),
        http_b: port_of(&b),
        echo: port_of(&e),
        hash: port_of(&h),
        bytes: port_of(&by),
        reverse: port_of(&rev),
        dead,
        bytes_sent: bytes_sent.clone(),
        reverse_got: reverse_got.clone(),
    };
    serve(a, |s| http(s, "web-1"));
    serve(b, |s| http(s, "web-2"));
    serve(e, echo);
    serve(h, hash);
    serve(by, move |s| bytes(s, bytes_sent.clone()));
    serve(rev, move |s| reverse(s, reverse_got.clone()));
    out
}

fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = (offset + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        *b = (x >> 56) as u8;
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- cluster

fn pod(name: &str, node: &str, app: &str, http: u16, b: &Backends, ready: bool) -> String {
    let cond = if ready {
        String::new()
    } else {
        "  conditions: [{type: Ready, status: \"False\"}]\n".to_string()
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  nodeName: {node}
  containers:
    - name: main
      ports:
        - {{name: http, containerPort: {http}}}
        - {{name: echo, containerPort: {}}}
status:
  podIP: 127.0.0.1
{cond}",
        b.echo
    )
}

fn manifests(b: &Backends) -> String {
    let svc = format!(
        "apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports:
    - {{name: http, port: 80, targetPort: http}}
    - {{name: echo, port: 7, targetPort: echo}}
    - {{name: hash, port: 9001, targetPort: {}}}
    - {{name: bytes, port: 9002, targetPort: {}}}
    - {{name: reverse, port: 9003, targetPort: {}}}
",
        b.hash, b.bytes, b.reverse
    );
    let deploy = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}}
";
    [
        deploy.to_string(),
        pod("web-1", "node-1", "web", b.http_a, b, true),
        pod("web-2", "node-1", "web", b.http_b, b, true),
        pod("far-1", "node-2", "far", b.http_a, b, true),
        svc,
    ]
    .join("---\n")
}

struct Harness {
    rt: Runtime,
    cp: ControlPlane,
    /// The agent's own runtime: shutting it down is the agent process dying
    /// (its HTTP/2 connection and every connection in flight go with it).
    agent: Option<Runtime>,
    b: Backends,
}

impl Harness {
    fn start() -> Harness {
        let cp = ControlPlane::start(&[]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let b = rt.block_on(start_backends());
        cp.apply_yaml(&manifests(&b));
        let mut h = Harness {
            rt,
            cp,
            agent: None,
            b,
        };
        h.start_agent();
        h
    }

    /// Runs the agent's tunnel end as `switchyard-agent` does, on its own channel.
    fn start_agent(&mut self) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let channels = rt.block_on(self.cp.join("node-1"));
        rt.spawn(switchyard_agent::tunnel::run(
            channels,
            "node-1".to_string(),
        ));
        self.agent = Some(rt);
        self.wait_agent(true);
    }

    fn stop_agent(&mut self) {
        self.agent
            .take()
            .unwrap()
            .shutdown_timeout(Duration::from_secs(5));
        self.wait_agent(false);
    }

    /// Waits until the broker sees node-1's agent (dis)connected.
    fn wait_agent(&self, connected: bool) {
        let login = self.cp.login();
        let target = Target::parse("pod/web-1").unwrap();
        let ok = self.rt.block_on(async move {
            let mut client = swctl::portforward::connect(&login).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let r = swctl::portforward::resolve(&mut client, "default", &target, 1).await;
                if r.is_ok() == connected {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        });
        assert!(ok, "agent never became connected={connected}");
    }

    fn forward(&self, args: &[&str], pairs: usize) -> Forwarder {
        Forwarder::start(&self.cp, args, pairs)
    }

    fn set_ready(&self, name: &str, http: u16, ready: bool) {
        self.cp
            .apply_yaml(&pod(name, "node-1", "web", http, &self.b, ready));
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// A running `swctl port-forward`.
struct Forwarder {
    child: Child,
    /// Local ports, in the order of the `Forwarding from` lines.
    ports: Vec<u16>,
    /// Remote (pod) ports those lines name.
    remotes: Vec<u16>,
    stderr: Arc<Mutex<String>>,
    /// The thread reading stderr, until joined.
    stderr_read: Option<std::thread::JoinHandle<()>>,
    stdout: Arc<Mutex<String>>,
}

/// Appends each line to `into` until the stream ends; join the handle to
/// have read everything.
fn collect(
    lines: impl Iterator<Item = std::io::Result<String>> + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in lines {
            let Ok(line) = line else { break };
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    })
}

impl Forwarder {
    fn start(cp: &ControlPlane, args: &[&str], pairs: usize) -> Forwarder {
        let mut swctl = Command::new(env!("CARGO_BIN_EXE_swctl"));
        swctl
            .arg("port-forward")
            .args(args)
            .env("SWITCHYARD_SERVER", &cp.server)
            .env("SWITCHYARD_CONFIG", cp.config());
        Self::run(swctl, pairs)
    }

    /// The user's own kubectl, with the control plane's kubeconfig.
    fn kubectl(
        cp: &ControlPlane,
        cache: &std::path::Path,
        args: &[&str],
        pairs: usize,
    ) -> Forwarder {
        let mut kubectl = Command::new("kubectl");
        kubectl
            .arg("--kubeconfig")
            .arg(cp.config())
            .arg("--cache-dir")
            .arg(cache)
            .args(["port-forward", "--address", "127.0.0.1"])
            .args(args)
            .env_remove("KUBECONFIG");
        Self::run(kubectl, pairs)
    }

    /// Runs a port-forward command until it printed `pairs` listeners.
    fn run(mut command: Command, pairs: usize) -> Forwarder {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_read = collect(
            BufReader::new(child.stderr.take().unwrap()).lines(),
            stderr.clone(),
        );
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut ports, mut remotes) = (Vec::new(), Vec::new());
        while ports.len() < pairs {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                let _ = stderr_read.join();
                panic!("the port-forward exited early: {}", stderr.lock().unwrap());
            };
            // "Forwarding from 127.0.0.1:PORT -> REMOTE"
            let rest = line.strip_prefix("Forwarding from 127.0.0.1:").unwrap();
            let (local, remote) = rest.split_once(" -> ").unwrap();
            ports.push(local.parse().unwrap());
            remotes.push(remote.parse().unwrap());
        }
        let stdout = Arc::new(Mutex::new(String::new()));
        collect(lines, stdout.clone());
        Forwarder {
            child,
            ports,
            remotes,
            stderr,
            stderr_read: Some(stderr_read),
            stdout,
        }
    }

    /// Waits for swctl to print `needle` on stderr.
    fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.stderr.lock().unwrap().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "swctl never printed {needle:?}; stderr:\n{}",
            self.stderr.lock().unwrap()
        );
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for swctl to exit; returns its status and how long that took.
    fn wait_exit(&mut self, within: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Its stderr ends with it: read to the last line.
                if let Some(reading) = self.stderr_read.take() {
                    let _ = reading.join();
                }
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < within,
                "swctl still running after {within:?}; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- clients

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// One HTTP request through the forward; returns the body.
async fn get(port: u16) -> String {
    let mut s = connect(port).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_string(&mut resp))
        .await
        .expect("response timed out")
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp:?}");
    resp.split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// A connection the forward fails: it is closed (or reset) without data.
/// On a loaded machine the reset can land before the connect completes.
async fn refused(port: u16) {
    let mut s = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
        Err(e) => panic!("connect to the forward on {port}: {e}"),
    };
    let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("a failed connection must be closed");
    assert!(
        buf.is_empty(),
        "got data: {:?} ({r:?})",
        String::from_utf8_lossy(&buf)
    );
}

/// Sends `n` pattern bytes to the hash server and returns its digest.
async fn upload(port: u16, n: usize) -> (String, String) {
    let mut s = connect(port).await;
    let mut buf = vec![0; MIB];
    let mut h = Sha256::new();
    let mut off = 0;
    while off < n {
        let k = (n - off).min(MIB);
        pattern(off as u64, &mut buf[..k]);
        h.update(&buf[..k]);
        s.write_all(&buf[..k]).await.unwrap();
        off += k;
    }
    s.shutdown().await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    (answer, hex(&h.finalize()))
}

/// Asks the bytes server for `n` bytes; returns (received, digest, expected digest).
async fn download(port: u16, n: usize) -> (usize, String, String) {
    let mut s = connect(port).await;
    s.write_all(format!("{n}\n").as_bytes()).await.unwrap();
    let (mut got, mut want) = (Sha256::new(), Sha256::new());
    let mut buf = vec![0; 256 * 1024];
    let mut exp = vec![0; 256 * 1024];
    let mut total = 0usize;
    loop {
        let k = s.read(&mut buf).await.unwrap();
        if k == 0 {
            break;
        }
        pattern(total as u64, &mut exp[..k]);
        got.update(&buf[..k]);
        want.update(&exp[..k]);
        total += k;
    }
    (total, hex(&got.finalize()), hex(&want.finalize()))
}

/// Asks the bytes server for `n` bytes and reads the first KiB of them.
async fn start_download(port: u16, n: usize) -> TcpStream {
    let mut s = connect(port).await;
    s.write_all(format!("{n}\n").as_bytes()).await.unwrap();
    let mut buf = vec![0; 1024];
    s.read_exact(&mut buf).await.unwrap();
    s
}

/// An echo connection that has carried one round trip and stays open.
async fn open_echo(port: u16) -> TcpStream {
    let mut s = connect(port).await;
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    s
}

/// Reads until the connection ends: Ok(bytes) at a clean EOF, Err at a
/// reset (or any other error).
async fn read_to_end_or_error(s: &mut TcpStream) -> std::io::Result<usize> {
    let mut buf = vec![0; 256 * 1024];
    let mut n = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(0)) => return Ok(n),
            Ok(Ok(k)) => n += k,
            Ok(Err(e)) => return Err(e),
            Err(_) => panic!("the connection was never closed ({n} bytes read)"),
        }
    }
}

/// Writes `data` and reads the echo concurrently (full duplex); returns the echo.
async fn echo_roundtrip(port: u16, data: Vec<u8>) -> Vec<u8> {
    let s = connect(port).await;
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    back
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The control plane's pid, found by its unique data directory.
fn control_plane_pid(cp: &ControlPlane) -> u32 {
    let needle = cp.data_dir.to_string_lossy().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            return pid;
        }
    }
    panic!("control plane process not found");
}

// ---------------------------------------------------------------- tests

#[test]
fn forwards_http_to_a_service_a_deployment_and_pods() {
    let h = Harness::start();
    let svc = h.forward(&["svc/web", ":80"], 1);
    // The Service port maps to web-1's named targetPort `http`.
    assert_eq!(svc.remotes, vec![h.b.http_a]);
    assert_eq!(h.block_on(get(svc.ports[0])), "pod=web-1");

    let a = h.b.http_a.to_string();
    let deploy = h.forward(&["deploy/web", &format!(":{a}")], 1);
    assert_eq!(h.block_on(get(deploy.ports[0])), "pod=web-1");

    let b = format!(":{}", h.b.http_b);
    let pod = h.forward(&["pod/web-2", &b], 1);
    assert_eq!(h.block_on(get(pod.ports[0])), "pod=web-2");
    let bare = h.forward(&["web-2", &b, "--address", "127.0.0.1"], 1);
    assert_eq!(h.block_on(get(bare.ports[0])), "pod=web-2");
    assert!(bare
        .stdout
        .lock()
        .unwrap()
        .contains("Handling connection for"));

    // When the chosen pod stops being ready, the next connection goes to
    // the other one (its own `http` port number).
    h.set_ready("web-1", h.b.http_a, false);
    assert_eq!(h.block_on(get(svc.ports[0])), "pod=web-2");
}

/// `kubectl port-forward` reaches the same pods through the REST API's
/// `pods/NAME/portforward` (WebSocket, SPDY inside), audited as a session.
#[test]
fn kubectl_forwards_to_a_service_a_deployment_and_pods() {
    if !switchyard_lab::require_kubectl("kubectl_forwards_to_a_service_a_deployment_and_pods") {
        return;
    }
    let h = Harness::start();
    let cache = tempfile::tempdir().unwrap();
    let kubectl = |args: &[&str], pairs| Forwarder::kubectl(&h.cp, cache.path(), args, pairs);
    // The Service port maps to the chosen pod's named targetPort `http`.
    let svc = kubectl(&["svc/web", ":80"], 1);
    let served_by = h.block_on(get(svc.ports[0]));
    let expected = if svc.remotes == [h.b.http_a] {
        "pod=web-1"
    } else {
        "pod=web-2"
    };
    assert_eq!(served_by, expected, "{:?}", svc.remotes);
    let deploy = kubectl(&["deploy/web", &format!(":{}", h.b.echo)], 1);
    assert_eq!(
        h.block_on(echo_roundtrip(deploy.ports[0], b"ping".to_vec())),
        b"ping"
    );
    let pod = kubectl(
        &[
            "pod/web-2",
            &format!(":{}", h.b.http_b),
            &format!(":{}", h.b.hash),
        ],
        2,
    );
    assert_eq!(h.block_on(get(pod.ports[0])), "pod=web-2");
    let (answer, sent) = h.block_on(upload(pod.ports[1], 8 * MIB));
    assert_eq!(answer, sent, "upload digest");
    let sessions: Vec<_> = h
        .cp
        .audit_events()
        .into_iter()
        .filter(|e| {
            e["objectRef"]["subresource"] == "portforward" && e["objectRef"]["resource"] == "pods"
        })
        .collect();
    assert!(sessions.len() >= 3, "{sessions:?}");
    assert!(
        sessions
            .iter()
            .any(|e| e["objectRef"]["name"] == "web-2" && e["user"]["username"] == "admin"),
        "{sessions:?}"
    );
    // A port nothing listens on: kubectl reports kubelet's words for it.
    let dead = kubectl(&["pod/web-1", &format!(":{}", h.b.dead)], 1);
    let _ = std::net::TcpStream::connect(("127.0.0.1", dead.ports[0]));
    dead.wait_stderr(&format!(
        "error forwarding port {} to pod web-1_default",
        h.b.dead
    ));
}

#[test]
fn several_port_pairs_and_a_fixed_local_port() {
    let h = Harness::start();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let local = free.local_addr().unwrap().port();
    drop(free);
    let pair = format!("{local}:80");
    let f = h.forward(&["svc/web", &pair, ":7"], 2);
    assert_eq!(f.ports[0], local);
    assert_eq!(f.remotes, vec![h.b.http_a, h.b.echo]);
    assert_eq!(h.block_on(get(local)), "pod=web-1");
    let back = h.block_on(echo_roundtrip(f.ports[1], b"ping".to_vec()));
    assert_eq!(back, b"ping");
    // Each forwarded connection is a port-forward session in the audit log.
    let sessions: Vec<_> =
        h.cp.audit_events()
            .into_iter()
            .filter(|e| e["requestURI"] == "/switchyard.v1.PortForward/Forward")
            .collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for e in &sessions {
        assert_eq!(e["verb"], "create");
        assert_eq!(e["user"]["username"], "admin");
        assert_eq!(
            e["objectRef"],
            serde_json::json!({"resource": "services", "subresource": "portforward", "namespace": "default", "name": "web"})
        );
        assert_eq!(e["responseStatus"]["code"], 201);
    }
}

#[test]
fn transfers_50_mib_each_way_intact() {
    let h = Harness::start();
    let f = h.forward(&["svc/web", ":9001", ":9002", ":7"], 3);
    let (answer, sent) = h.block_on(upload(f.ports[0], 50 * MIB));
    assert_eq!(answer, sent, "upload digest");
    let (n, got, want) = h.block_on(download(f.ports[1], 50 * MIB));
    assert_eq!((n, got), (50 * MIB, want), "download");
    // Both ways at once through one connection.
    let mut data = vec![0; 16 * MIB];
    pattern(7, &mut data);
    let back = h.block_on(echo_roundtrip(f.ports[2], data.clone()));
    assert!(back == data, "echo differs ({} bytes back)", back.len());
}

#[test]
fn serves_50_concurrent_connections() {
    let h = Harness::start();
    let f = h.forward(&["svc/web", ":7"], 1);
    let port = f.ports[0];
    let results = h.block_on(async move {
        let tasks: Vec<_> = (0..50u64)
            .map(|i| {
                tokio::spawn(async move {
                    let mut data = vec![0; 512 * 1024];
                    pattern(i * 1_000_003, &mut data);
                    echo_roundtrip(port, data.clone()).await == data
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap());
        }
        ok
    });
    assert_eq!(results, 50);
}

#[test]
fn honours_half_close_both_ways() {
    let h = Harness::start();
    let f = h.forward(&["svc/web", ":7", ":9003"], 2);
    // Client half-closes first: the echo of everything still arrives.
    let back = h.block_on(echo_roundtrip(f.ports[0], b"hello".to_vec()));
    assert_eq!(back, b"hello");
    // Server half-closes first: the client reads EOF and can still send.
    let got = h.b.reverse_got.clone();
    h.block_on(async {
        let mut s = connect(f.ports[1]).await;
        let mut banner = Vec::new();
        s.read_to_end(&mut banner).await.unwrap();
        assert_eq!(banner, b"banner");
        s.write_all(b"after").await.unwrap();
        s.shutdown().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.lock().unwrap().as_slice() != b"after" {
            assert!(
                Instant::now() < deadline,
                "the pod never got the late bytes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn refuses_unknown_targets_and_unreachable_pods_at_start() {
    let h = Harness::start();
    let err = h.cp.fails(&["port-forward", "svc/nope", ":80"]);
    assert!(
        err.contains("Error from server (NotFound): services \"nope\" not found"),
        "{err}"
    );
    let err = h.cp.fails(&["port-forward", "deploy/nope", ":80"]);
    assert!(err.contains("deployments \"nope\" not found"), "{err}");
    let err = h.cp.fails(&["port-forward", "nope", ":80"]);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    let err = h.cp.fails(&["port-forward", "svc/web", ":81"]);
    assert!(err.contains("does not have a service port 81"), "{err}");
    let err = h.cp.fails(&["port-forward", "pod/far-1", ":80"]);
    assert!(err.contains("the agent of node \"node-2\""), "{err}");
    assert!(err.contains("is not connected"), "{err}");
    let err = h.cp.fails(&["port-forward", "ns/default", ":80"]);
    assert!(err.contains("is not a Service, Deployment or Pod"), "{err}");
    let err = h.cp.fails(&["port-forward", "svc/web", "80:x"]);
    assert!(err.contains("invalid port pair \"80:x\""), "{err}");
    h.set_ready("web-1", h.b.http_a, false);
    h.set_ready("web-2", h.b.http_b, false);
    let err = h.cp.fails(&["port-forward", "deploy/web", ":80"]);
    assert!(
        err.contains("deployment \"web\" has no ready pods"),
        "{err}"
    );
}

#[test]
fn reports_errors_per_connection_and_keeps_serving() {
    let mut h = Harness::start();
    let dead = format!(":{}", h.b.dead);
    let a = format!(":{}", h.b.http_a);
    let f = h.forward(&["pod/web-1", &dead, &a], 2);
    let svc = h.forward(&["svc/web", ":80"], 1);

    // Remote refused: reported, that connection closed, the other pair serves.
    h.block_on(refused(f.ports[0]));
    f.wait_stderr("connection refused");
    f.wait_stderr(&format!(
        "an error occurred forwarding {} -> {}",
        f.ports[0], h.b.dead
    ));
    assert_eq!(h.block_on(get(f.ports[1])), "pod=web-1");

    // No ready pod, then ready again.
    h.set_ready("web-1", h.b.http_a, false);
    h.set_ready("web-2", h.b.http_b, false);
    h.block_on(refused(svc.ports[0]));
    svc.wait_stderr("service \"web\" has no ready pods");
    h.set_ready("web-2", h.b.http_b, true);
    assert_eq!(h.block_on(get(svc.ports[0])), "pod=web-2");

    // The target disappears, then comes back.
    h.cp.ok(&["delete", "svc", "web"]);
    h.block_on(refused(svc.ports[0]));
    svc.wait_stderr("services \"web\" not found");
    h.cp.apply_yaml(&manifests(&h.b));
    assert_eq!(h.block_on(get(svc.ports[0])), "pod=web-1");

    // The node's agent disconnects, then reconnects.
    h.stop_agent();
    h.block_on(refused(f.ports[1]));
    f.wait_stderr("the agent of node \"node-1\" (running pod \"web-1\") is not connected");
    h.start_agent();
    assert_eq!(h.block_on(get(f.ports[1])), "pod=web-1");
    assert_eq!(h.block_on(get(svc.ports[0])), "pod=web-1");
}

#[test]
fn deleting_the_pod_resets_every_connection_and_ends_the_forward() {
    let h = Harness::start();
    let mut f = h.forward(&["svc/web", ":9002", ":7", ":80"], 3);
    let (bytes, echo, http) = (f.ports[0], f.ports[1], f.ports[2]);
    // The pod's own clean close still ends with a clean EOF and all the data.
    let (n, got, want) = h.block_on(download(bytes, 4 * MIB));
    assert_eq!((n, got), (4 * MIB, want), "download before the delete");
    // A long download from web-1, read only a little.
    let mut long = h.block_on(start_download(bytes, 256 * MIB));
    // web-1 not ready: new connections go to web-2, and one stays open.
    h.set_ready("web-1", h.b.http_a, false);
    assert_eq!(h.block_on(get(http)), "pod=web-2");
    let mut other = h.block_on(open_echo(echo));

    h.cp.ok(&["delete", "pod", "web-1"]);
    let deleted = Instant::now();
    // Reset, not EOF: what was cut short does not look complete.
    let r = h.block_on(read_to_end_or_error(&mut long));
    let e = r.expect_err("the cut download ended with a clean EOF");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    // The connection to web-2 is reset with it: the forward is over.
    let e = h
        .block_on(read_to_end_or_error(&mut other))
        .expect_err("the other connection ended with a clean EOF");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    let (status, _) = f.wait_exit(Duration::from_secs(5));
    let took = deleted.elapsed();
    eprintln!("pod deleted: swctl exited {status} {took:?} after the delete");
    assert_eq!(status.code(), Some(1));
    assert!(took < Duration::from_secs(5), "{took:?}");
    let stderr = f.stderr.lock().unwrap().clone();
    assert!(
        stderr.contains(&format!(
            "error: an error occurred forwarding {bytes} -> {0}: error forwarding port {0} to pod \"web-1\": the pod was deleted\n",
            h.b.bytes
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("error: lost connection to pod\n"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error: lost connection to pod").count(), 1);
}

#[test]
fn an_agent_lost_mid_connection_resets_it_and_ends_the_forward() {
    let mut h = Harness::start();
    let mut f = h.forward(&["svc/web", ":9002", ":7"], 2);
    let mut long = h.block_on(start_download(f.ports[0], 256 * MIB));
    let mut idle = h.block_on(open_echo(f.ports[1]));
    // The agent process dies: its HTTP/2 connection, and every stream on it, goes.
    let stopped = Instant::now();
    h.stop_agent();
    let e = h
        .block_on(read_to_end_or_error(&mut long))
        .expect_err("the cut download ended with a clean EOF");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    let e = h
        .block_on(read_to_end_or_error(&mut idle))
        .expect_err("the idle connection ended with a clean EOF");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    let (status, _) = f.wait_exit(Duration::from_secs(5));
    let took = stopped.elapsed();
    eprintln!("agent gone: swctl exited {status} {took:?} after the agent was stopped");
    assert_eq!(status.code(), Some(1));
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Whichever of the two connections learnt it first says so.
    let stderr = f.stderr.lock().unwrap().clone();
    let lost = |port: u16, remote: u16| {
        format!("error: an error occurred forwarding {port} -> {remote}: error forwarding port {remote} to pod \"web-1\": lost the tunnel to the agent of node \"node-1\"\n")
    };
    assert!(
        stderr.contains(&lost(f.ports[0], h.b.bytes))
            || stderr.contains(&lost(f.ports[1], h.b.echo)),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("error: lost connection to pod\n"),
        "{stderr}"
    );
}

#[test]
fn a_control_plane_restart_fails_connections_but_not_the_forward() {
    let mut h = Harness::start();
    let mut f = h.forward(&["svc/web", ":9002", ":80"], 2);
    let mut long = h.block_on(start_download(f.ports[0], 256 * MIB));
    h.cp.restart();
    // That connection fails (reset), but no pod was lost...
    let e = h
        .block_on(read_to_end_or_error(&mut long))
        .expect_err("a connection cut by the restart ended with a clean EOF");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    // ...so the forward serves on once the agent is back.
    h.wait_agent(true);
    assert_eq!(h.block_on(get(f.ports[1])), "pod=web-1");
    assert!(f.child.try_wait().unwrap().is_none(), "swctl exited");
    let stderr = f.stderr.lock().unwrap().clone();
    assert!(!stderr.contains("lost connection to pod"), "{stderr}");
}

#[test]
fn a_slow_reader_stalls_the_transfer_instead_of_buffering_it() {
    let h = Harness::start();
    let f = h.forward(&["svc/web", ":9002", ":80", ":9001"], 3);
    let cp_pid = control_plane_pid(&h.cp);
    let (swctl_before, cp_before) = (rss_kib(f.pid()), rss_kib(cp_pid));
    let total = 160 * MIB;
    let port = f.ports[0];
    let sent = h.b.bytes_sent.clone();
    let mut slow = h.block_on(async move {
        // A small receive buffer: the kernel must not hide the tunnel's behaviour.
        let sock = TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(64 * 1024).unwrap();
        let mut s = sock
            .connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap();
        s.write_all(format!("{total}\n").as_bytes()).await.unwrap();
        s
    });
    // Not reading: the pod's writes must stall well short of the total.
    std::thread::sleep(Duration::from_secs(3));
    let at_3s = sent.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    let at_4s = sent.load(Ordering::SeqCst);
    assert!(
        at_4s < 64 * MIB as u64,
        "{at_4s} bytes left the pod for a reader that reads nothing"
    );
    assert!(
        at_4s - at_3s < MIB as u64,
        "still flowing: {at_3s} -> {at_4s}"
    );
    let (swctl_now, cp_now) = (rss_kib(f.pid()), rss_kib(cp_pid));
    eprintln!(
        "slow reader: pod sent {at_4s} bytes; RSS swctl {swctl_before}->{swctl_now} KiB, control plane {cp_before}->{cp_now} KiB"
    );
    assert!(
        swctl_now < swctl_before + 32 * 1024,
        "swctl grew {swctl_before} -> {swctl_now} KiB"
    );
    assert!(
        cp_now < cp_before + 32 * 1024,
        "control plane grew {cp_before} -> {cp_now} KiB"
    );

    // Meanwhile other connections over the same swctl and agent still flow.
    assert_eq!(h.block_on(get(f.ports[1])), "pod=web-1");
    let (answer, digest) = h.block_on(upload(f.ports[2], 8 * MIB));
    assert_eq!(answer, digest);

    // Reading resumes the transfer, intact.
    let received = h.block_on(async move {
        let mut buf = vec![0; 256 * 1024];
        let mut exp = vec![0; 256 * 1024];
        let mut n = 0usize;
        loop {
            let k = slow.read(&mut buf).await.unwrap();
            if k == 0 {
                return n;
            }
            pattern(n as u64, &mut exp[..k]);
            assert!(buf[..k] == exp[..k], "corrupt data at {n}");
            n += k;
        }
    });
    assert_eq!(received, total);
}
