//! Test harness: a real `switchyard-control-plane` process on a loopback
//! port with a temporary sled directory, driven through the real `swctl`
//! with the admin credentials the control plane writes, over mutual TLS.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace's binaries sit next to swctl's in the target directory.
pub fn binary(name: &str) -> PathBuf {
    let swctl = PathBuf::from(env!("CARGO_BIN_EXE_swctl"));
    let path = swctl.with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct ControlPlane {
    child: Option<Child>,
    pub server: String,
    ip: String,
    port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    /// Size of a tmpfs the data directory is mounted on, in a mount
    /// namespace of the control plane's own (gone when it exits).
    tmpfs: Option<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl ControlPlane {
    pub fn start(extra: &[&str]) -> ControlPlane {
        Self::start_with(extra, None)
    }

    /// A control plane whose data directory is a tmpfs of `size` (e.g.
    /// `8m`), which tests can fill up or make read-only; needs root.
    pub fn start_on_tmpfs(size: &str, extra: &[&str]) -> ControlPlane {
        Self::start_with(extra, Some(size.to_string()))
    }

    /// A further control plane of `first`'s cluster (same store flags in
    /// `extra`), sharing its PKI as docs/ha.md says: `pki/` and
    /// `admin.conf` copied from the first one's data directory.
    pub fn start_beside(first: &ControlPlane, extra: &[&str]) -> ControlPlane {
        Self::start_beside_at(first, "127.0.0.1", free_port(), extra)
    }

    /// [`ControlPlane::start_beside`] listening on `ip:port`.
    pub fn start_beside_at(
        first: &ControlPlane,
        ip: &str,
        port: u16,
        extra: &[&str],
    ) -> ControlPlane {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let pki = data_dir.join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        for entry in std::fs::read_dir(first.data_dir.join("pki")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), pki.join(entry.file_name())).unwrap();
        }
        std::fs::copy(first.config(), data_dir.join("admin.conf")).unwrap();
        Self::start_in(tmp, data_dir, (ip, port), extra, None)
    }

    fn start_with(extra: &[&str], tmpfs: Option<String>) -> ControlPlane {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        Self::start_in(tmp, data_dir, ("127.0.0.1", free_port()), extra, tmpfs)
    }

    fn start_in(
        tmp: tempfile::TempDir,
        data_dir: PathBuf,
        (ip, port): (&str, u16),
        extra: &[&str],
        tmpfs: Option<String>,
    ) -> ControlPlane {
        let mut cp = ControlPlane {
            child: None,
            server: format!("https://{ip}:{port}"),
            ip: ip.to_string(),
            port,
            data_dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tmpfs,
            _tmp: Some(tmp),
        };
        cp.spawn();
        cp
    }

    fn spawn(&mut self) {
        let mut command = match &self.tmpfs {
            None => Command::new(binary("switchyard-control-plane")),
            Some(size) => {
                std::fs::create_dir_all(&self.data_dir).unwrap();
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(format!(
                        "mount -t tmpfs -o size={size} tmpfs \"$0\" && exec \"$@\""
                    ))
                    .arg(&self.data_dir)
                    .arg(binary("switchyard-control-plane"));
                c
            }
        };
        let child = command
            .arg("--listen")
            .arg(format!("{}:{}", self.ip, self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--audit-log")
            .arg(self.audit_log())
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    /// Where the control plane records its audit events.
    pub fn audit_log(&self) -> PathBuf {
        self.data_dir.with_file_name("audit.log")
    }

    /// The data directory as the control plane sees it (on a tmpfs, only
    /// visible through its mount namespace).
    pub fn visible_data_dir(&self) -> PathBuf {
        match (&self.tmpfs, &self.child) {
            (Some(_), Some(child)) => PathBuf::from(format!("/proc/{}/root", child.id()))
                .join(self.data_dir.strip_prefix("/").unwrap()),
            _ => self.data_dir.clone(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The audit events written so far.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit_log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The admin credentials the control plane wrote.
    pub fn config(&self) -> PathBuf {
        self.visible_data_dir().join("admin.conf")
    }

    pub fn login(&self) -> swctl::login::Login {
        swctl::login::Login::resolve(Some(&self.server), Some(&self.config())).unwrap()
    }

    /// Joins `node` as its agent would (a token from `swctl create token`,
    /// the CA pin it prints) and returns the agent's channel.
    pub async fn join(&self, node: &str) -> switchyard_agent::connection::Channels {
        let out = self.ok(&["create", "token", "--node", node]);
        let (token, pin) = switchyard_lab::cluster::parse_token_output(&out).unwrap();
        let target = switchyard_tls::client::Target::parse(&self.server).unwrap();
        let creds = switchyard_agent::identity::join(&target, &token, &pin, node)
            .await
            .unwrap();
        let channel =
            switchyard_agent::connection::channel(&target, Some(creds.client_config().unwrap()))
                .unwrap();
        switchyard_agent::connection::fixed(channel)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let listening = std::net::TcpStream::connect((self.ip.as_str(), self.port)).is_ok();
            if listening && self.config().exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "control plane did not start listening on port {}",
            self.port
        );
    }

    /// SIGTERM, then wait: the process must exit on its own, cleanly.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "control plane ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a power cut or the OOM killer would, and reap it.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts the control plane again on the same port and data directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    pub fn restart(&mut self) {
        if self.child.is_some() {
            assert!(self.stop().success());
        }
        self.spawn();
    }

    pub fn swctl(&self, args: &[&str]) -> Output {
        self.swctl_stdin(args, None)
    }

    pub fn swctl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut swctl = Command::new(env!("CARGO_BIN_EXE_swctl"));
        swctl
            .args(args)
            .env("SWITCHYARD_SERVER", &self.server)
            .env("SWITCHYARD_CONFIG", self.config());
        output_of(swctl, stdin)
    }

    /// Runs swctl, asserting success, and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.swctl(args);
        assert!(
            out.status.success(),
            "swctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs swctl, asserting failure, and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.swctl(args);
        assert!(
            !out.status.success(),
            "swctl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn apply_yaml(&self, yaml: &str) -> String {
        let out = self.swctl_stdin(&["apply", "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&full)).unwrap()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `command` to its end with `stdin` (or nothing) as its input.
pub fn output_of(mut command: Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// A loopback `IP:PORT` nothing listens on now.
pub fn free_loopback_address() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().to_string()
}

/// The whole HTTP/1.1 answer (status line, headers, body) to `GET path`.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Table rows as whitespace-split cells, AGE (the last column) dropped.
pub fn rows_without_age(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut cells: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            cells.pop();
            cells
        })
        .collect()
}
