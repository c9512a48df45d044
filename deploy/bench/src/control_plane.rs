//! The control plane under test: the real `switchyard-control-plane` binary
//! on loopback (TCP for the suite and hollow agents, a Unix socket for real
//! agents in network namespaces), over a data directory the suite prepares.
//! It serves mutual TLS as in production; `Transport::Plaintext`
//! (`--insecure`) exists only to measure what TLS costs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::api::Api;
use crate::identity::Identities;
use crate::process::{free_port, Memory, Proc};
use crate::wire::Probe;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tls,
    Plaintext,
}

pub struct ControlPlane {
    proc: Proc,
    port: u16,
    socket: PathBuf,
    data_dir: PathBuf,
    transport: Transport,
    identities: Option<Arc<Identities>>,
    /// The snapshot version served when it became ready, as a probe agent
    /// is pushed it: what an agent holding the loaded store ACKs. It is not
    /// the store revision: identity writes (the admin user at start, the
    /// suite's join token, nodes joining and registering) bump the revision
    /// without cutting a snapshot version.
    pub served_version: u64,
}

impl ControlPlane {
    /// Starts on `data_dir` with TLS and waits until the API answers
    /// (loading a big store takes a while).
    pub async fn start(bins: &Path, data_dir: &Path, work: &Path) -> anyhow::Result<ControlPlane> {
        Self::start_with(bins, data_dir, work, Transport::Tls).await
    }

    pub async fn start_with(
        bins: &Path,
        data_dir: &Path,
        work: &Path,
        transport: Transport,
    ) -> anyhow::Result<ControlPlane> {
        Self::start_on(bins, data_dir, work, transport, &[]).await
    }

    /// [`Self::start_with`] with more flags (e.g. `--etcd-endpoints …`).
    pub async fn start_on(
        bins: &Path,
        data_dir: &Path,
        work: &Path,
        transport: Transport,
        extra: &[String],
    ) -> anyhow::Result<ControlPlane> {
        let port = free_port()?;
        let socket = work.join(format!("cp-{port}.sock"));
        let mut args = vec![
            bins.join("switchyard-control-plane")
                .to_string_lossy()
                .into_owned(),
            "--data-dir".into(),
            data_dir.to_string_lossy().into_owned(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--listen-unix".into(),
            socket.to_string_lossy().into_owned(),
            // The fixture's nodes run no agent: their pods must stay ready
            // however long a run takes, not turn NotReady after the
            // default 20 s (which rewrote 10,000 pods mid-measurement).
            "--node-monitor-grace-period".into(),
            "24h".into(),
        ];
        if transport == Transport::Plaintext {
            args.push("--insecure".into());
        }
        args.extend(extra.iter().cloned());
        let log = work.join(format!("control-plane-{port}.log"));
        let proc = Proc::spawn("control plane", &args, &[("RUST_LOG", "warn")], &log)?;
        let mut cp = ControlPlane {
            proc,
            port,
            socket,
            data_dir: data_dir.to_path_buf(),
            transport,
            identities: None,
            served_version: 0,
        };
        cp.served_version = cp.wait_ready(data_dir, Duration::from_secs(300)).await?;
        Ok(cp)
    }

    /// Waits for the API; returns the snapshot version served.
    async fn wait_ready(&mut self, data_dir: &Path, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            self.proc.check_alive()?;
            if let Ok(ids) = Identities::open(&self.url(), data_dir).await {
                if let Ok(version) = served_version(&ids).await {
                    self.identities = Some(ids);
                    return Ok(version);
                }
            }
            if Instant::now() > deadline {
                bail!("control plane not ready after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn url(&self) -> String {
        match self.transport {
            Transport::Tls => format!("https://127.0.0.1:{}", self.port),
            Transport::Plaintext => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// For agents in other network namespaces.
    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The suite's identities here (set once the control plane serves).
    pub fn identities(&self) -> anyhow::Result<Arc<Identities>> {
        self.identities
            .clone()
            .context("the control plane is not serving yet")
    }

    pub async fn api(&self) -> anyhow::Result<Api> {
        Api::new(self.identities()?).await
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        self.proc.memory()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Graceful stop, so the store is closed cleanly before it is reused.
    pub fn stop(self) {
        self.proc.stop(Duration::from_secs(10));
    }
}

/// The version of the first push a probe node gets.
async fn served_version(ids: &Identities) -> anyhow::Result<u64> {
    let (probe, parts) = Probe::connect(ids.node("version-probe").await?, "version-probe").await?;
    drop(probe);
    parts
        .first()
        .map(|p| p.version)
        .context("the control plane pushed nothing")
}

/// Copies a prepared data directory, so every run starts from the same store.
pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
