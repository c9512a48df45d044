//! Building, using and tearing down one lab instance.

use std::ffi::OsStr;
use std::fmt::{Display, Write as _};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use command_fds::{CommandFdExt, FdMapping};

use crate::child::{self, ChildGuard, SharedChild};
use crate::cleanup;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::topology::{
    self, Host, LabConfig, Topology, BRIDGE, IPV6_PREFIX_LEN, NODE_GATEWAY, NODE_GATEWAY6,
    NODE_PREFIX_LEN,
};

/// Per-process counter making prefixes unique between labs of one test binary.
static NEXT_PREFIX: AtomicU32 = AtomicU32::new(0);
/// Prefixes tried before giving up (each taken one is a leftover or a live lab).
const PREFIX_ATTEMPTS: u32 = 64;
/// Set to keep the log directory after the lab is dropped.
const KEEP_LOGS_ENV: &str = "SWITCHYARD_LAB_KEEP_LOGS";

/// Sysctls for every namespace: no reverse-path filtering, because DNAT and
/// asymmetric lab routes would otherwise get packets dropped silently.
const BASE_SYSCTLS: &[(&str, &str)] = &[
    ("net/ipv4/conf/all/rp_filter", "0"),
    ("net/ipv4/conf/default/rp_filter", "0"),
];
/// Extra sysctls for nodes: they route for their pods, and must not send ICMP
/// redirects that would teach clients to bypass them.
const NODE_SYSCTLS: &[(&str, &str)] = &[
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv6/conf/all/forwarding", "1"),
    ("net/ipv4/conf/all/send_redirects", "0"),
    ("net/ipv4/conf/default/send_redirects", "0"),
];

/// A running lab: namespaces wired as described in the crate docs. Dropping it
/// stops every spawned process and deletes every namespace it created.
#[derive(Debug)]
pub struct Lab {
    topo: Topology,
    /// Namespaces actually created, in creation order (bridge first).
    created: Vec<String>,
    children: Mutex<Vec<SharedChild>>,
    log_dir: PathBuf,
    spawned: AtomicUsize,
}

impl Lab {
    /// Builds a lab under a fresh unique prefix (`sy<pid%10000>x<n>`).
    pub fn new(cfg: LabConfig) -> Result<Self> {
        let pid = std::process::id() % 10_000;
        let mut last = String::new();
        for _ in 0..PREFIX_ATTEMPTS {
            let n = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
            last = format!("sy{pid}x{n}");
            if let Some(lab) = Self::try_build(cfg, &last)? {
                return Ok(lab);
            }
        }
        Err(LabError::NoFreePrefix(last))
    }

    /// Builds a lab under an explicit prefix (the `up --prefix` case); fails if
    /// a lab with that prefix already exists.
    pub fn with_prefix(cfg: LabConfig, prefix: &str) -> Result<Self> {
        Self::try_build(cfg, prefix)?.ok_or_else(|| {
            LabError::Config(format!(
                "prefix `{prefix}` is in use; `switchyard-lab down --prefix {prefix}-` removes leftovers"
            ))
        })
    }

    /// Creates the bridge namespace as a lock on the prefix (`None` = taken),
    /// then everything else. From the lock on, a failure drops the half-built
    /// lab, which deletes whatever was created.
    fn try_build(cfg: LabConfig, prefix: &str) -> Result<Option<Self>> {
        let topo = Topology::plan(&cfg, prefix)?;
        if let Err(e) = cmd::ip(&["netns", "add", &topo.bridge_ns]) {
            if cleanup::list_namespaces()?.contains(&topo.bridge_ns) {
                return Ok(None);
            }
            return Err(e);
        }
        let mut lab = Self {
            created: vec![topo.bridge_ns.clone()],
            log_dir: std::env::temp_dir().join(format!("switchyard-lab-{prefix}")),
            topo,
            children: Mutex::new(Vec::new()),
            spawned: AtomicUsize::new(0),
        };
        lab.build()?;
        Ok(Some(lab))
    }

    fn build(&mut self) -> Result<()> {
        self.create_log_dir()?;
        for ns in self.topo.namespaces().into_iter().skip(1) {
            cmd::ip(&["netns", "add", &ns])?;
            self.created.push(ns);
        }
        for ns in &self.created {
            cmd::ip_in(ns, &["link", "set", "lo", "up"])?;
            set_sysctls(ns, BASE_SYSCTLS)?;
        }
        for node in &self.topo.nodes {
            set_sysctls(&node.ns, NODE_SYSCTLS)?;
        }
        self.build_bridge()?;
        self.build_pods()?;
        self.build_routes()
    }

    fn create_log_dir(&self) -> Result<()> {
        // A stale directory can only come from a crashed lab with this prefix.
        let _ = std::fs::remove_dir_all(&self.log_dir);
        std::fs::create_dir_all(&self.log_dir).map_err(|source| LabError::Io {
            what: "creating log dir",
            path: self.log_dir.clone(),
            source,
        })
    }

    fn build_bridge(&self) -> Result<()> {
        let br = &self.topo.bridge_ns;
        cmd::ip_in(br, &["link", "add", BRIDGE, "type", "bridge"])?;
        cmd::ip_in(br, &["link", "set", BRIDGE, "up"])?;
        for host in self.topo.bridge_hosts() {
            wire_to_bridge(br, host)?;
        }
        Ok(())
    }

    fn build_pods(&self) -> Result<()> {
        for (node, pods) in self.topo.nodes.iter().zip(&self.topo.pods) {
            for pod in pods {
                wire_pod(node, pod)?;
            }
        }
        Ok(())
    }

    /// The lab's "CNI": every node and the control plane route each other
    /// node's pod CIDR via that node's address (flat L2, no encapsulation).
    /// Nodes also get a default route to the silent [`NODE_GATEWAY`].
    fn build_routes(&self) -> Result<()> {
        for node in &self.topo.nodes {
            for gateway in [NODE_GATEWAY.to_string(), NODE_GATEWAY6.to_string()] {
                cmd::ip_in(
                    &node.ns,
                    &["route", "add", "default", "via", &gateway, "dev", "eth0"],
                )?;
            }
        }
        let routers = self.topo.nodes.iter().chain([&self.topo.control_plane]);
        for host in routers {
            for other in self.topo.nodes.iter().filter(|n| n.ns != host.ns) {
                if let Some(cidr) = other.pod_cidr {
                    route_via(&host.ns, &cidr.to_string(), &other.ip.to_string())?;
                }
                if let Some(cidr) = other.pod_cidr6 {
                    route_via(&host.ns, &cidr.to_string(), &other.ip6.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// The prefix every namespace name of this lab starts with (`<prefix>-…`).
    pub fn prefix(&self) -> &str {
        &self.topo.prefix
    }

    /// Node `i` (1-based). Panics if `i` is not a node of this lab.
    pub fn node(&self, i: usize) -> &Host {
        &self.topo.nodes[i - 1]
    }

    /// All nodes, node 1 first.
    pub fn nodes(&self) -> &[Host] {
        &self.topo.nodes
    }

    /// Pod `j` of node `i` (both 1-based). Panics if out of range.
    pub fn pod(&self, i: usize, j: usize) -> &Host {
        &self.topo.pods[i - 1][j - 1]
    }

    /// Pods of node `i` (1-based). Panics if `i` is not a node of this lab.
    pub fn pods(&self, i: usize) -> &[Host] {
        &self.topo.pods[i - 1]
    }

    /// The control-plane host.
    pub fn control_plane(&self) -> &Host {
        &self.topo.control_plane
    }

    /// The external client host.
    pub fn client(&self) -> &Host {
        &self.topo.client
    }

    /// Namespace holding the bridge (no addresses; rarely needed by tests).
    pub fn bridge_ns(&self) -> &str {
        &self.topo.bridge_ns
    }

    /// Every namespace this lab created.
    pub fn namespaces(&self) -> &[String] {
        &self.created
    }

    /// Directory with the logs of spawned processes.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Human-readable topology, printed by `switchyard-lab up`.
    pub fn describe(&self) -> String {
        describe(&self.topo)
    }

    /// Refuses namespaces this lab did not create, so nothing a test passes by
    /// mistake can reach the host's own network stack.
    fn check_ns(&self, ns: &str) -> Result<()> {
        if self.created.iter().any(|c| c == ns) {
            Ok(())
        } else {
            Err(LabError::ForeignNamespace(ns.to_string()))
        }
    }

    /// Runs `ip netns exec <ns> args…` and returns its output whatever the exit
    /// status (for asserting on failures, e.g. "client cannot reach a pod").
    pub fn exec<S: AsRef<OsStr>>(&self, ns: &str, args: &[S]) -> Result<Output> {
        self.check_ns(ns)?;
        cmd::output("ip", &netns_exec_args(ns, args))
    }

    /// Like [`Lab::exec`] but fails, with the command's stderr, unless it
    /// exits successfully; returns stdout.
    pub fn exec_ok<S: AsRef<OsStr>>(&self, ns: &str, args: &[S]) -> Result<String> {
        let full = netns_exec_args(ns, args);
        let out = self.exec(ns, args)?;
        cmd::check(cmd::render("ip", &full), out)
    }

    /// Starts `args` in the background inside `ns`, stdout and stderr going to
    /// a log file in [`Lab::log_dir`]. The process is stopped when the guard
    /// or the lab drops. Use `env K=V prog …` to pass environment variables.
    pub fn spawn<S: AsRef<OsStr>>(&self, ns: &str, args: &[S]) -> Result<ChildGuard> {
        self.spawn_with_fds(ns, args, &[], Vec::new())
    }

    /// [`Lab::spawn`] with `env` added and `fds` as the process's
    /// descriptors 3, 4, …, as systemd passes sockets to a service.
    pub fn spawn_with_fds<S: AsRef<OsStr>>(
        &self,
        ns: &str,
        args: &[S],
        env: &[(String, String)],
        fds: Vec<OwnedFd>,
    ) -> Result<ChildGuard> {
        self.check_ns(ns)?;
        let log = self.next_log_path(ns, args);
        let file = create_log(&log)?;
        let full = netns_exec_args(ns, args);
        let mut command = Command::new(cmd::tool("ip")?);
        command
            .args(&full)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(clone_log(&file, &log)?)
            .stderr(file);
        if !fds.is_empty() {
            let mappings = fds
                .into_iter()
                .zip(3..)
                .map(|(parent_fd, child_fd)| FdMapping {
                    parent_fd,
                    child_fd,
                })
                .collect();
            command
                .fd_mappings(mappings)
                .map_err(|_| LabError::Config("two descriptors for one number".to_string()))?;
        }
        let child = command.spawn().map_err(|source| LabError::Spawn {
            cmd: cmd::render("ip", &full),
            source,
        })?;
        let pid = child.id();
        let shared: SharedChild = Arc::new(Mutex::new(Some(child)));
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&shared));
        Ok(ChildGuard::new(shared, pid, ns.to_string(), log))
    }

    fn next_log_path<S: AsRef<OsStr>>(&self, ns: &str, args: &[S]) -> PathBuf {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let prog = args
            .first()
            .and_then(|a| Path::new(a.as_ref()).file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.log_dir.join(format!("{n:03}-{ns}-{prog}.log"))
    }

    /// Adds (or replaces) a route to `cidr` via `via` inside lab namespace
    /// `ns`, e.g. to let the client reach an external/LB IP through a node.
    /// Unplugs node `i` from the bridge (`up: false`), as a pulled cable
    /// would: the bridge's port goes down, the node keeps its addresses and
    /// routes, and plugs back in with `up: true`.
    pub fn set_node_link(&self, i: usize, up: bool) -> Result<()> {
        let port = self.node(i).peer_if.clone();
        let state = if up { "up" } else { "down" };
        cmd::ip_in(self.bridge_ns(), &["link", "set", &port, state]).map(|_| ())
    }

    pub fn add_route_via(&self, ns: &str, cidr: impl Display, via: impl Display) -> Result<()> {
        self.check_ns(ns)?;
        route_via(ns, &cidr.to_string(), &via.to_string())
    }

    /// Stops children, then deletes namespaces: strays matching the prefix
    /// and the hosts first, the bridge (the prefix lock) last, so no other lab
    /// can take the prefix while this one is still deleting.
    fn teardown(&mut self) {
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(PoisonError::into_inner));
        children.iter().for_each(child::stop_shared);
        for ns in self.teardown_order() {
            if let Err(e) = cleanup::remove_namespace(&ns) {
                eprintln!("switchyard-lab: teardown of {ns}: {e}");
            }
        }
        self.finish_logs();
    }

    fn teardown_order(&self) -> Vec<String> {
        let bridge = &self.topo.bridge_ns;
        let strays = cleanup::namespaces_with_prefix(&format!("{}-", self.topo.prefix))
            .unwrap_or_else(|e| {
                eprintln!("switchyard-lab: listing namespaces: {e}");
                Vec::new()
            });
        let mut order: Vec<String> = self.created.iter().rev().cloned().collect();
        order.extend(strays.into_iter().filter(|s| !self.created.contains(s)));
        order.retain(|ns| ns != bridge);
        if self.created.contains(bridge) {
            order.push(bridge.clone());
        }
        order
    }

    /// Keeps the logs when a test is failing (or when asked), else removes them.
    fn finish_logs(&self) {
        if std::thread::panicking() || std::env::var_os(KEEP_LOGS_ENV).is_some() {
            eprintln!("switchyard-lab: logs kept in {}", self.log_dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.log_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("switchyard-lab: removing {}: {e}", self.log_dir.display());
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn netns_exec_args<'a, S: AsRef<OsStr>>(ns: &'a str, args: &'a [S]) -> Vec<&'a OsStr> {
    let mut full: Vec<&OsStr> = vec!["netns".as_ref(), "exec".as_ref(), ns.as_ref()];
    full.extend(args.iter().map(AsRef::as_ref));
    full
}

fn create_log(path: &Path) -> Result<File> {
    File::create(path).map_err(|source| LabError::Io {
        what: "creating log",
        path: path.to_path_buf(),
        source,
    })
}

fn clone_log(file: &File, path: &Path) -> Result<File> {
    file.try_clone().map_err(|source| LabError::Io {
        what: "duplicating log handle",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes sysctls through /proc/sys from a shell inside `ns`, because /proc/sys/net
/// shows the namespace of the process that opens it (and `sh` is everywhere).
fn set_sysctls(ns: &str, values: &[(&str, &str)]) -> Result<()> {
    let script = values
        .iter()
        .map(|(key, value)| format!("echo {value} > /proc/sys/{key}"))
        .collect::<Vec<_>>()
        .join(" && ");
    cmd::ip(&["netns", "exec", ns, "sh", "-c", &script]).map(|_| ())
}

/// Plugs a host's `eth0` into the bridge. The veth is created inside the host
/// namespace with its peer placed straight into the bridge namespace, so no
/// end ever exists in the root namespace.
fn wire_to_bridge(br: &str, host: &Host) -> Result<()> {
    let addr = format!("{}/{NODE_PREFIX_LEN}", host.ip);
    let peer = host.peer_if.as_str();
    cmd::ip_in(
        &host.ns,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", br,
        ],
    )?;
    cmd::ip_in(br, &["link", "set", peer, "master", BRIDGE, "up"])?;
    cmd::ip_in(&host.ns, &["addr", "add", &addr, "dev", "eth0"])?;
    // No duplicate address detection: the address is usable at once.
    let addr6 = format!("{}/{IPV6_PREFIX_LEN}", host.ip6);
    cmd::ip_in(&host.ns, &["addr", "add", &addr6, "dev", "eth0", "nodad"])?;
    cmd::ip_in(&host.ns, &["link", "set", "eth0", "up"])?;
    Ok(())
}

/// Connects a pod to its node with a point-to-point veth: the pod has a /32
/// and a default route to the node-side gateway (onlink); the node has the
/// gateway address on `vp<j>` and a host route to the pod.
fn wire_pod(node: &Host, pod: &Host) -> Result<()> {
    let node_index = pod.node.unwrap_or_default();
    let gw = topology::pod_gateway(node_index).to_string();
    let gw6 = topology::pod_gateway6(node_index).to_string();
    let pod_addr = format!("{}/32", pod.ip);
    let pod_addr6 = format!("{}/128", pod.ip6);
    let vp = pod.peer_if.as_str();
    cmd::ip_in(
        &pod.ns,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", vp, "netns", &node.ns,
        ],
    )?;
    cmd::ip_in(&pod.ns, &["addr", "add", &pod_addr, "dev", "eth0"])?;
    cmd::ip_in(
        &pod.ns,
        &["addr", "add", &pod_addr6, "dev", "eth0", "nodad"],
    )?;
    cmd::ip_in(&pod.ns, &["link", "set", "eth0", "up"])?;
    for gateway in [&gw, &gw6] {
        cmd::ip_in(
            &pod.ns,
            &[
                "route", "add", "default", "via", gateway, "dev", "eth0", "onlink",
            ],
        )?;
    }
    cmd::ip_in(&node.ns, &["addr", "add", &format!("{gw}/32"), "dev", vp])?;
    cmd::ip_in(
        &node.ns,
        &["addr", "add", &format!("{gw6}/128"), "dev", vp, "nodad"],
    )?;
    cmd::ip_in(&node.ns, &["link", "set", vp, "up"])?;
    cmd::ip_in(&node.ns, &["route", "add", &pod_addr, "dev", vp])?;
    cmd::ip_in(&node.ns, &["route", "add", &pod_addr6, "dev", vp])?;
    Ok(())
}

fn route_via(ns: &str, cidr: &str, via: &str) -> Result<()> {
    cmd::ip_in(ns, &["route", "replace", cidr, "via", via]).map(|_| ())
}

fn describe(topo: &Topology) -> String {
    let mut out = format!(
        "lab {} (bridge namespace {})\n",
        topo.prefix, topo.bridge_ns
    );
    for host in topo.bridge_hosts() {
        let cidr = host
            .pod_cidr
            .map(|c| format!("  pods {c}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<14} {:<18} {} {}{cidr}",
            host.name, host.ns, host.ip, host.ip6
        );
        let pods = host.node.and_then(|i| topo.pods.get(i - 1));
        for pod in pods.into_iter().flatten() {
            let _ = writeln!(
                out,
                "    {:<12} {:<18} {} {}",
                pod.name, pod.ns, pod.ip, pod.ip6
            );
        }
    }
    out
}
