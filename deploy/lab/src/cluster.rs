//! A running Switchyard cluster on the lab: the control plane in `<p>-cp`,
//! one `switchyard-agent` per node namespace, `swctl` run from the control
//! plane host. Used by the end-to-end tests and the demo.
//!
//! It runs as a real cluster does: mutual TLS everywhere, swctl with the
//! `admin.conf` the control plane writes, and every agent joining with a
//! token of its own (`swctl create token --node NAME`) on its first start,
//! keeping its certificate in a state directory for the next.
//!
//! Binaries are taken from the directory of the running executable or its
//! parent (`target/<profile>/` for tests and for the `switchyard-lab`
//! binary), or from `SWITCHYARD_BIN_DIR`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::etcd::EtcdCluster;
use crate::service_manager::{self, ServiceManager};
use crate::{ChildGuard, Host, Lab, LabConfig};

/// The control plane's gRPC port inside the lab.
pub const CONTROL_PLANE_PORT: u16 = 7443;

/// Where the control plane runs.
#[derive(Debug, Clone, Default)]
pub enum Placement {
    /// On the lab's control-plane host, reached over the lab bridge.
    #[default]
    InLab,
    /// In the root namespace on a loopback address (so `swctl` works from
    /// the host with its defaults); agents reach it over a Unix socket, so
    /// nothing is added to the host's network.
    OnHost { listen: String, data_dir: PathBuf },
}

#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    pub lab: LabConfig,
    pub placement: Placement,
    /// Extra flags for `switchyard-control-plane`.
    pub control_plane_args: Vec<String>,
    /// Extra flags for every `switchyard-agent`.
    pub agent_args: Vec<String>,
    /// Extra flags for the agent of node `i + 1` (e.g. its `--node-labels`).
    pub node_agent_args: Vec<Vec<String>>,
    /// Give every agent a `--pod-manifests` directory
    /// ([`Cluster::pod_manifests_dir`]).
    pub pod_manifests: bool,
    /// High availability: this many control planes on one etcd of
    /// `etcd_members` members (0: one control plane on its sled store).
    pub etcd_members: usize,
    pub control_planes: usize,
}

/// Guards come first: fields drop in order, so processes stop before the
/// lab deletes their namespaces.
pub struct Cluster {
    control_planes: Vec<Option<ChildGuard>>,
    agents: Vec<Option<ChildGuard>>,
    etcd: Option<EtcdCluster>,
    cfg: ClusterConfig,
    bin_dir: PathBuf,
    data_dir: PathBuf,
    pub lab: Lab,
}

/// Starts a process in the root namespace (the demo's control plane, on
/// loopback only), logging to `log`, stopped when the guard drops.
pub(crate) fn spawn_on_host(args: &[String], log: &Path) -> Result<ChildGuard> {
    let io = |source| LabError::Io {
        what: "creating",
        path: log.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(log).map_err(io)?;
    let err = file.try_clone().map_err(io)?;
    let child = std::process::Command::new(&args[0])
        .args(&args[1..])
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|source| LabError::Spawn {
            cmd: args.join(" "),
            source,
        })?;
    let pid = child.id();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Some(child)));
    Ok(ChildGuard::new(
        shared,
        pid,
        "host".to_string(),
        log.to_path_buf(),
    ))
}

/// swctl's stdout, or its output as the error when it failed.
fn checked(args: &[&str], out: Output) -> Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Cluster(format!(
            "swctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Gives a later control plane the first one's CA and admin credentials.
fn share_pki(first: &Path, later: &Path) -> Result<()> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| LabError::Io { what, path, source }
    };
    let (from, to) = (first.join("pki"), later.join("pki"));
    std::fs::create_dir_all(&to).map_err(io("creating", &to))?;
    for entry in std::fs::read_dir(&from).map_err(io("reading", &from))? {
        let entry = entry.map_err(io("reading", &from))?;
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target).map_err(io("writing", &target))?;
    }
    let admin = later.join("admin.conf");
    std::fs::copy(first.join("admin.conf"), &admin).map_err(io("writing", &admin))?;
    Ok(())
}

/// The token and CA pin in what `swctl create token` prints: the values of
/// `--join-token` and `--ca-cert-hash` in the agent command it gives.
pub fn parse_token_output(out: &str) -> Result<(String, String)> {
    let words: Vec<&str> = out.split_whitespace().collect();
    let flag = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1))
            .map(|v| v.to_string())
            .ok_or_else(|| {
                LabError::Cluster(format!("`swctl create token` printed no {name}:\n{out}"))
            })
    };
    Ok((flag("--join-token")?, flag("--ca-cert-hash")?))
}

/// Where the workspace binaries are.
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SWITCHYARD_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()
        .map_err(|e| LabError::Cluster(format!("cannot find the running executable: {e}")))?;
    let candidates = exe.ancestors().skip(1).take(2).map(Path::to_path_buf);
    for dir in candidates {
        if dir.join("switchyard-agent").exists() && dir.join("switchyard-control-plane").exists() {
            return Ok(dir);
        }
    }
    Err(LabError::Cluster(format!(
        "switchyard binaries not found next to {}; build them with `cargo build --workspace` (or set SWITCHYARD_BIN_DIR)",
        exe.display()
    )))
}

impl Cluster {
    /// Builds the lab and starts the control plane and every agent.
    pub fn start(cfg: ClusterConfig) -> Result<Cluster> {
        let lab = Lab::new(cfg.lab)?;
        let data_dir = match &cfg.placement {
            Placement::InLab => lab.log_dir().join("control-plane-data"),
            Placement::OnHost { data_dir, .. } => data_dir.clone(),
        };
        let nodes = lab.nodes().len();
        let etcd = match (cfg.etcd_members, &cfg.placement) {
            (0, _) => None,
            (n, Placement::InLab) => Some(EtcdCluster::start_in(n, Some(&lab.control_plane().ns))?),
            (n, Placement::OnHost { .. }) => Some(EtcdCluster::start_in(n, None)?),
        };
        let control_planes = if etcd.is_some() {
            cfg.control_planes.max(1)
        } else {
            1
        };
        let mut cluster = Cluster {
            control_planes: (0..control_planes).map(|_| None).collect(),
            agents: (0..nodes).map(|_| None).collect(),
            etcd,
            cfg,
            bin_dir: bin_dir()?,
            data_dir,
            lab,
        };
        for i in 1..=control_planes {
            cluster.start_control_plane_n(i)?;
        }
        for i in 1..=nodes {
            cluster.start_agent(i)?;
        }
        cluster.wait_synced(Duration::from_secs(30))?;
        Ok(cluster)
    }

    pub fn bin(&self, name: &str) -> String {
        self.bin_dir.join(name).to_string_lossy().into_owned()
    }

    /// The first control plane's address: `https://172.18.0.2:7443` in the lab.
    pub fn server(&self) -> String {
        self.server_n(1)
    }

    /// Control plane `i`'s (1-based) address and port.
    fn listen_n(&self, i: usize) -> String {
        let offset = u16::try_from(i - 1).unwrap_or(0);
        match &self.cfg.placement {
            Placement::InLab => format!(
                "{}:{}",
                self.lab.control_plane().ip,
                CONTROL_PLANE_PORT + offset
            ),
            Placement::OnHost { listen, .. } => match listen.rsplit_once(':') {
                Some((host, port)) => {
                    let port: u16 = port.parse().unwrap_or(CONTROL_PLANE_PORT);
                    format!("{host}:{}", port + offset)
                }
                None => listen.clone(),
            },
        }
    }

    /// Control plane `i`'s (1-based) URL.
    pub fn server_n(&self, i: usize) -> String {
        format!("https://{}", self.listen_n(i))
    }

    /// Every control plane's URL, comma-separated, as swctl and agents
    /// take them to fail over.
    pub fn servers(&self) -> String {
        (1..=self.control_planes.len())
            .map(|i| self.server_n(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The admin credentials the control plane wrote.
    pub fn admin_config(&self) -> PathBuf {
        self.data_dir.join("admin.conf")
    }

    /// Control plane `i`'s data directory: later ones hold a copy of the
    /// first one's `pki/` and `admin.conf` (docs/ha.md's shared PKI).
    fn data_dir_n(&self, i: usize) -> PathBuf {
        if i == 1 {
            return self.data_dir.clone();
        }
        let name = self
            .data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.data_dir.with_file_name(format!("{name}-{i}"))
    }

    /// The etcd cluster, when the control planes run on one.
    pub fn etcd(&mut self) -> Option<&mut EtcdCluster> {
        self.etcd.as_mut()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `swctl --server URL --config ADMIN.CONF`, for running swctl in any
    /// lab namespace that reaches the control plane.
    pub fn swctl_command(&self) -> Vec<String> {
        self.swctl_command_for(&self.servers())
    }

    fn swctl_command_for(&self, servers: &str) -> Vec<String> {
        vec![
            self.bin("swctl"),
            "--server".to_string(),
            servers.to_string(),
            "--config".to_string(),
            self.admin_config().to_string_lossy().into_owned(),
        ]
    }

    /// Where node `i`'s agent keeps its certificate.
    pub fn agent_state_dir(&self, i: usize) -> PathBuf {
        self.lab.log_dir().join(format!("agent-{i}-state"))
    }

    /// `swctl create token ARGS`: the token and the CA pin it printed.
    pub fn create_token(&self, args: &[&str]) -> Result<(String, String)> {
        let mut full = vec!["create", "token"];
        full.extend_from_slice(args);
        parse_token_output(&self.swctl_ok(&full)?)
    }

    /// A join token for `node` and the agent flags that use it
    /// (`--join-token`, `--ca-cert-hash`), as `swctl create token` prints them.
    pub fn join_flags(&self, node: &str) -> Result<Vec<String>> {
        let (token, pin) = self.create_token(&["--node", node])?;
        Ok(vec![
            "--join-token".to_string(),
            token,
            "--ca-cert-hash".to_string(),
            pin,
        ])
    }

    fn socket_n(&self, i: usize) -> PathBuf {
        match i {
            1 => self.lab.log_dir().join("control-plane.sock"),
            i => self.lab.log_dir().join(format!("control-plane-{i}.sock")),
        }
    }

    /// The addresses agents use, comma-separated.
    fn agent_server(&self) -> String {
        (1..=self.control_planes.len())
            .map(|i| match &self.cfg.placement {
                Placement::InLab => self.server_n(i),
                Placement::OnHost { .. } => format!("unix://{}", self.socket_n(i).display()),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start_control_plane(&mut self) -> Result<()> {
        self.start_control_plane_n(1)
    }

    /// Starts control plane `i` (1-based) on its data directory.
    pub fn start_control_plane_n(&mut self, i: usize) -> Result<()> {
        let data_dir = self.data_dir_n(i);
        if i > 1 {
            share_pki(&self.data_dir, &data_dir)?;
        }
        let mut args = vec![
            self.bin("switchyard-control-plane"),
            "--data-dir".to_string(),
            data_dir.to_string_lossy().into_owned(),
            "--listen".to_string(),
            self.listen_n(i),
        ];
        if let Some(etcd) = &self.etcd {
            args.extend(etcd.control_plane_flags());
            args.extend(["--name".to_string(), format!("cp-{i}")]);
        }
        args.extend(self.cfg.control_plane_args.iter().cloned());
        let guard = match &self.cfg.placement {
            Placement::InLab => {
                let ns = self.lab.control_plane().ns.clone();
                self.lab.spawn(&ns, &args)?
            }
            Placement::OnHost { .. } => {
                args.extend([
                    "--listen-unix".to_string(),
                    self.socket_n(i).to_string_lossy().into_owned(),
                ]);
                let log = match i {
                    1 => "control-plane.log".to_string(),
                    i => format!("control-plane-{i}.log"),
                };
                spawn_on_host(&args, &self.lab.log_dir().join(log))?
            }
        };
        guard.wait_for_log("serving gRPC", Duration::from_secs(20))?;
        self.control_planes[i - 1] = Some(guard);
        Ok(())
    }

    /// Stops the control plane (SIGTERM); its data directory stays.
    pub fn stop_control_plane(&mut self) {
        self.control_planes[0] = None;
    }

    /// SIGKILLs control plane `i` (1-based), as a crashed host would.
    pub fn kill_control_plane(&mut self, i: usize) {
        if let Some(cp) = self.control_planes[i - 1].take() {
            cp.kill();
        }
    }

    /// The control plane's process id, while it runs.
    pub fn control_plane_pid(&self) -> Option<u32> {
        self.control_planes[0].as_ref().map(ChildGuard::pid)
    }

    /// Whether the control plane's process is still alive (it may have
    /// exited on its own, e.g. after a signal the test sent).
    pub fn control_plane_running(&self) -> bool {
        self.control_planes[0]
            .as_ref()
            .is_some_and(ChildGuard::is_running)
    }

    pub fn control_plane_log(&self) -> String {
        self.control_plane_log_n(1)
    }

    /// Control plane `i`'s (1-based) log so far.
    pub fn control_plane_log_n(&self, i: usize) -> String {
        self.control_planes[i - 1]
            .as_ref()
            .map(ChildGuard::log)
            .unwrap_or_default()
    }

    /// Starts node `i`'s agent: it joins with a fresh token the first
    /// time, and uses the certificate it keeps after that.
    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        self.start_agent_with_env(i, &[])
    }

    /// [`Self::start_agent`] with extra environment (`NAME=VALUE`), e.g. a
    /// `PATH` without some tool.
    pub fn start_agent_with_env(&mut self, i: usize, env: &[&str]) -> Result<()> {
        let guard = self.spawn_agent(i, env)?;
        self.agents[i - 1] = Some(guard);
        Ok(())
    }

    /// Restarts node `i`'s agent as an operator upgrades one: the new
    /// agent starts while the old one runs, takes its sockets over and the
    /// old one exits by itself.
    pub fn hot_restart_agent(&mut self, i: usize) -> Result<()> {
        let new = self.spawn_agent(i, &[])?;
        if let Some(old) = &self.agents[i - 1] {
            let deadline = Instant::now() + Duration::from_secs(30);
            while old.is_running() {
                if Instant::now() >= deadline {
                    return Err(LabError::Timeout(format!(
                        "the old agent of node {i} did not hand over within 30 s; its log:\n{}\nthe new one's:\n{}",
                        old.log(),
                        new.log()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.agents[i - 1] = Some(new);
        Ok(())
    }

    /// Starts node `i`'s agent as systemd starts a `Type=notify` unit:
    /// `NOTIFY_SOCKET` is `manager`'s, the sockets it stores come as
    /// `LISTEN_FDS`; returns once the agent says `READY=1`.
    pub fn start_agent_as_service(&mut self, i: usize, manager: &mut ServiceManager) -> Result<()> {
        self.start_agent_as_service_with(i, manager, &[])
    }

    /// [`Self::start_agent_as_service`] with `extra` flags for this start
    /// (a changed unit).
    pub fn start_agent_as_service_with(
        &mut self,
        i: usize,
        manager: &mut ServiceManager,
        extra: &[&str],
    ) -> Result<()> {
        let start = manager.start_env()?;
        let mut args = vec![
            self.bin("switchyard-lab"),
            service_manager::EXEC_WITH_LISTEN_PID.to_string(),
        ];
        args.extend(self.agent_command(i, &[])?);
        args.extend(extra.iter().map(|a| a.to_string()));
        let node = self.lab.node(i).ns.clone();
        let guard = self
            .lab
            .spawn_with_fds(&node, &args, &start.env, start.fds)?;
        manager.wait_ready(&guard, Duration::from_secs(30))?;
        self.agents[i - 1] = Some(guard);
        Ok(())
    }

    /// Stops node `i`'s agent as `systemctl stop` does: SIGTERM, then
    /// waits for it to exit by itself (an error if it does not within
    /// `timeout`, or exits with a failure), and reads what it told
    /// `manager` on its way out. Its log stays in the lab's log directory.
    pub fn stop_agent_as_service(
        &mut self,
        i: usize,
        manager: &mut ServiceManager,
        timeout: Duration,
    ) -> Result<()> {
        let Some(agent) = self.agents[i - 1].take() else {
            return Ok(());
        };
        let status = agent.terminate_and_wait(timeout)?;
        manager.drain()?;
        if !status.success() {
            return Err(LabError::Cluster(format!(
                "the agent of node {i} exited with {status} on SIGTERM; its log:\n{}",
                agent.log()
            )));
        }
        Ok(())
    }

    /// `systemctl restart` of node `i`'s agent: stop, then start.
    pub fn restart_agent_as_service(
        &mut self,
        i: usize,
        manager: &mut ServiceManager,
    ) -> Result<()> {
        self.stop_agent_as_service(i, manager, Duration::from_secs(10))?;
        self.start_agent_as_service(i, manager)
    }

    fn spawn_agent(&self, i: usize, env: &[&str]) -> Result<ChildGuard> {
        let args = self.agent_command(i, env)?;
        let node = self.lab.node(i).ns.clone();
        let guard = self.lab.spawn(&node, &args)?;
        guard.wait_for_log("agent starting", Duration::from_secs(20))?;
        Ok(guard)
    }

    /// `env RUST_LOG=… ENV… switchyard-agent FLAGS…` for node `i`.
    fn agent_command(&self, i: usize, env: &[&str]) -> Result<Vec<String>> {
        let node = self.lab.node(i).clone();
        let state_dir = self.agent_state_dir(i);
        let mut args = vec![
            "env".to_string(),
            "RUST_LOG=info,switchyard_agent=debug".to_string(),
        ];
        args.extend(env.iter().map(|e| e.to_string()));
        args.extend([
            self.bin("switchyard-agent"),
            "--control-plane".to_string(),
            self.agent_server(),
            "--node-name".to_string(),
            node.name.clone(),
            "--node-ip".to_string(),
            node.ip.to_string(),
            "--state-dir".to_string(),
            state_dir.to_string_lossy().into_owned(),
        ]);
        if !state_dir.join("node.pem").exists() {
            args.extend(self.join_flags(&node.name)?);
        }
        if let Some(cidr) = node.pod_cidr {
            args.extend(["--pod-cidr".to_string(), cidr.to_string()]);
        }
        if self.cfg.pod_manifests {
            let dir = self.pod_manifests_dir(i);
            std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
                what: "creating",
                path: dir.clone(),
                source,
            })?;
            args.extend([
                "--pod-manifests".to_string(),
                dir.to_string_lossy().into_owned(),
            ]);
        }
        args.extend(self.cfg.agent_args.iter().cloned());
        args.extend(
            self.cfg
                .node_agent_args
                .get(i - 1)
                .into_iter()
                .flatten()
                .cloned(),
        );
        Ok(args)
    }

    /// Node `i`'s `--pod-manifests` directory (with
    /// [`ClusterConfig::pod_manifests`]): Pods written there become its
    /// mirror pods.
    pub fn pod_manifests_dir(&self, i: usize) -> PathBuf {
        self.lab.log_dir().join(format!("node-{i}-pod-manifests"))
    }

    /// Stops an agent (SIGTERM); its nftables table stays, as on a real host.
    pub fn stop_agent(&mut self, i: usize) {
        self.agents[i - 1] = None;
    }

    /// SIGKILLs an agent, as a power cut would.
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(agent) = self.agents[i - 1].take() {
            agent.kill();
        }
    }

    pub fn agent_log(&self, i: usize) -> String {
        self.agents[i - 1]
            .as_ref()
            .map(ChildGuard::log)
            .unwrap_or_default()
    }

    /// Runs swctl on the control plane host, as admin.
    pub fn swctl(&self, args: &[&str]) -> Result<Output> {
        self.swctl_via(&self.servers(), args)
    }

    /// Runs swctl against control plane `i` (1-based) only, and returns
    /// stdout, failing with its stderr.
    pub fn swctl_on(&self, i: usize, args: &[&str]) -> Result<String> {
        checked(args, self.swctl_via(&self.server_n(i), args)?)
    }

    fn swctl_via(&self, servers: &str, args: &[&str]) -> Result<Output> {
        let mut full = self.swctl_command_for(servers);
        full.extend(args.iter().map(|s| s.to_string()));
        match &self.cfg.placement {
            Placement::InLab => self.lab.exec(&self.lab.control_plane().ns, &full),
            Placement::OnHost { .. } => std::process::Command::new(&full[0])
                .args(&full[1..])
                .output()
                .map_err(|source| LabError::Spawn {
                    cmd: "swctl".to_string(),
                    source,
                }),
        }
    }

    /// Runs swctl and returns stdout, failing with its stderr.
    pub fn swctl_ok(&self, args: &[&str]) -> Result<String> {
        checked(args, self.swctl(args)?)
    }

    /// Applies a manifest through swctl (written to a file in the log dir).
    pub fn apply(&self, yaml: &str) -> Result<String> {
        let n = std::fs::read_dir(self.lab.log_dir())
            .map(|d| d.count())
            .unwrap_or(0);
        let path = self.lab.log_dir().join(format!("manifest-{n:03}.yaml"));
        std::fs::write(&path, yaml)
            .map_err(|e| LabError::Cluster(format!("writing {}: {e}", path.display())))?;
        self.swctl_ok(&["apply", "-f", &path.to_string_lossy()])
    }

    /// Waits until every connected node is Ready and has ACKed the newest
    /// snapshot.
    pub fn wait_synced(&self, timeout: Duration) -> Result<()> {
        // Let the control plane cut a version for any write just made.
        std::thread::sleep(Duration::from_millis(60));
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        let running = self.agents.iter().filter(|a| a.is_some()).count();
        while Instant::now() < deadline {
            if let Ok(out) = self.swctl_ok(&["get", "nodes", "--no-headers"]) {
                let rows: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
                let synced = rows
                    .iter()
                    .filter(|l| l.contains(" Ready ") && l.contains(" SYNCED "))
                    .count();
                if synced >= running && rows.len() >= running {
                    return Ok(());
                }
                last = out;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LabError::Timeout(format!(
            "nodes not synced after {timeout:?}:\n{last}"
        )))
    }

    /// Starts the lab backend in pod (i, j), answering `NAME <client>` on TCP
    /// and UDP `port`.
    pub fn backend(&self, i: usize, j: usize, name: &str, port: u16) -> Result<ChildGuard> {
        let pod: Host = self.lab.pod(i, j).clone();
        self.backend_in(&pod.ns, name, &format!("0.0.0.0:{port}"))
    }

    /// Starts the lab backend on node `i` itself (its own namespace, as a
    /// host process), listening on the node's address: TCP and UDP `port`.
    pub fn host_backend(&self, i: usize, name: &str, port: u16) -> Result<ChildGuard> {
        let node: Host = self.lab.node(i).clone();
        self.backend_in(&node.ns, name, &format!("{}:{port}", node.ip))
    }

    /// The lab backend in namespace `ns`, answering on TCP and UDP `listen`.
    fn backend_in(&self, ns: &str, name: &str, listen: &str) -> Result<ChildGuard> {
        let guard = self.lab.spawn(
            ns,
            &[
                self.bin("switchyard-lab").as_str(),
                "backend",
                "--name",
                name,
                "--listen",
                listen,
                "--udp-listen",
                listen,
            ],
        )?;
        guard.wait_for_log("ready", Duration::from_secs(10))?;
        Ok(guard)
    }

    /// A Pod manifest for lab pod (i, j), labelled `app: <app>`, port `port`
    /// named `http` (TCP) and `udp` (UDP).
    pub fn pod_manifest(&self, i: usize, j: usize, name: &str, app: &str, port: u16) -> String {
        let pod = self.lab.pod(i, j);
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {app}\nspec:\n  nodeName: node-{i}\n  containers:\n    - name: main\n      ports:\n        - name: http\n          containerPort: {port}\n        - name: udp\n          containerPort: {port}\n          protocol: UDP\nstatus:\n  podIP: {}\n  podIPs:\n    - ip: {}\n    - ip: {}\n---\n",
            pod.ip, pod.ip, pod.ip6
        )
    }
}
