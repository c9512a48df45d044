//! A real etcd cluster for the HA lab and tests: N members of Debian's
//! `etcd` on loopback, data on tmpfs (`/dev/shm`), clients on mutual TLS
//! with certificates made here, peers on plaintext loopback.
//!
//! Members can be killed and started again on their data, as an operator
//! would see a member host fail and come back.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::spawn_on_host;
use crate::error::{LabError, Result};
use crate::ChildGuard;

/// Kubernetes' etcd flags for large writes: our one-transaction writes can
/// carry many keys (a namespace delete, a Service's slices).
const MAX_TXN_OPS: &str = "10000";

pub struct EtcdCluster {
    members: Vec<Member>,
    dir: PathBuf,
    initial_cluster: String,
    /// The lab namespace the members run in (their loopback), if any.
    ns: Option<String>,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<ChildGuard>,
}

/// How often a start whose port was taken meanwhile is tried again.
const PORT_RACE_TRIES: usize = 3;
/// What etcd logs when a port it was given is taken.
const ADDRESS_IN_USE: &str = "address already in use";

fn free_port() -> Result<u16> {
    let probe = TcpListener::bind("127.0.0.1:0").map_err(|e| LabError::Cluster(e.to_string()))?;
    probe
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| LabError::Cluster(e.to_string()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| LabError::Io {
        what: "writing",
        path: path.to_path_buf(),
        source,
    })
}

/// The etcd CA, the members' serving certificate and a client certificate.
fn make_pki(dir: &Path) -> Result<()> {
    let err = |e: rcgen::Error| LabError::Cluster(format!("making etcd's certificates: {e}"));
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "lab etcd CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf =
        |names: Vec<String>, usage: rcgen::ExtendedKeyUsagePurpose| -> Result<(String, String)> {
            let key = rcgen::KeyPair::generate().map_err(err)?;
            let mut params = rcgen::CertificateParams::new(names).map_err(err)?;
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).map_err(err)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
    let (server, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client, client_key) = leaf(
        vec!["switchyard-control-plane".into()],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    write(&dir.join("ca.pem"), &ca_cert.pem())?;
    write(&dir.join("server.pem"), &server)?;
    write(&dir.join("server-key.pem"), &server_key)?;
    write(&dir.join("client.pem"), &client)?;
    write(&dir.join("client-key.pem"), &client_key)?;
    Ok(())
}

impl EtcdCluster {
    /// Starts `n` members on loopback under a fresh directory in
    /// `/dev/shm` and waits until each serves clients.
    pub fn start(n: usize) -> Result<EtcdCluster> {
        Self::start_in(n, None)
    }

    /// [`Self::start`] on the loopback of lab namespace `ns` (or the
    /// host's, for `None`).
    pub fn start_in(n: usize, ns: Option<&str>) -> Result<EtcdCluster> {
        // A port found free can be taken by another test's process before
        // etcd binds it: such a start is tried again on fresh ports.
        let mut tries = 0;
        loop {
            match Self::start_once(n, ns) {
                Err(e) if tries < PORT_RACE_TRIES && e.to_string().contains(ADDRESS_IN_USE) => {
                    tries += 1;
                }
                started => return started,
            }
        }
    }

    fn start_once(n: usize, ns: Option<&str>) -> Result<EtcdCluster> {
        let dir = PathBuf::from("/dev/shm").join(format!(
            "switchyard-etcd-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            what: "creating",
            path: dir.clone(),
            source,
        })?;
        make_pki(&dir)?;
        let members = (1..=n)
            .map(|i| {
                Ok(Member {
                    name: format!("etcd-{i}"),
                    client_port: free_port()?,
                    peer_port: free_port()?,
                    process: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            dir,
            initial_cluster,
            ns: ns.map(str::to_string),
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_ready(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let member = &self.members[i];
        let client_url = format!("https://127.0.0.1:{}", member.client_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let file = |name: &str| self.dir.join(name).to_string_lossy().into_owned();
        let mut args: Vec<String> = match &self.ns {
            Some(ns) => vec![
                crate::cmd::tool("ip")?.to_string_lossy().into_owned(),
                "netns".into(),
                "exec".into(),
                ns.clone(),
            ],
            None => Vec::new(),
        };
        args.extend([
            crate::cmd::tool("etcd")?.to_string_lossy().into_owned(),
            "--name".into(),
            member.name.clone(),
            "--data-dir".into(),
            file(&member.name),
            "--listen-client-urls".into(),
            client_url.clone(),
            "--advertise-client-urls".into(),
            client_url,
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url,
            "--initial-cluster".into(),
            self.initial_cluster.clone(),
            "--initial-cluster-state".into(),
            "new".into(),
            "--initial-cluster-token".into(),
            "switchyard-lab".into(),
            "--cert-file".into(),
            file("server.pem"),
            "--key-file".into(),
            file("server-key.pem"),
            "--trusted-ca-file".into(),
            file("ca.pem"),
            "--client-cert-auth".into(),
            "--max-txn-ops".into(),
            MAX_TXN_OPS.into(),
            "--heartbeat-interval".into(),
            "100".into(),
            "--election-timeout".into(),
            "1000".into(),
        ]);
        let log = self.dir.join(format!("{}.log", member.name));
        let guard = spawn_on_host(&args, &log)?;
        self.members[i].process = Some(guard);
        Ok(())
    }

    fn wait_ready(&self, i: usize) -> Result<()> {
        match &self.members[i].process {
            Some(p) => p.wait_for_log("ready to serve client requests", Duration::from_secs(30)),
            None => Ok(()),
        }
    }

    /// SIGKILLs member `i` (0-based); its data stays.
    pub fn kill(&mut self, i: usize) {
        if let Some(p) = self.members[i].process.take() {
            p.kill();
        }
    }

    /// Starts member `i` again on its data (after [`Self::kill`]).
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.spawn(i)?;
        Ok(())
    }

    /// The client URLs, comma-separated, as `--etcd-endpoints` takes them.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("https://127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Member `i`'s client address, `127.0.0.1:PORT`.
    pub fn client_address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every `--etcd-*` flag a control plane needs to use this cluster
    /// through `endpoints` (the members, or relays in front of them).
    pub fn control_plane_flags_for(&self, endpoints: &str) -> Vec<String> {
        let file = |name: &str| self.dir.join(name).to_string_lossy().into_owned();
        vec![
            "--etcd-endpoints".into(),
            endpoints.to_string(),
            "--etcd-cafile".into(),
            file("ca.pem"),
            "--etcd-certfile".into(),
            file("client.pem"),
            "--etcd-keyfile".into(),
            file("client-key.pem"),
        ]
    }

    /// [`Self::control_plane_flags_for`] the members themselves.
    pub fn control_plane_flags(&self) -> Vec<String> {
        self.control_plane_flags_for(&self.endpoints())
    }

    /// Member `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.members[i].name)))
            .unwrap_or_default()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.process.take() {
                p.kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
