//! Real `switchyard-agent` processes with real nftables, one per node
//! namespace of a lab (`switchyard_lab`), talking to the suite's control
//! plane over its Unix socket. Dropping this stops the agents, then deletes
//! every namespace.

use std::time::{Duration, Instant};

use anyhow::bail;
use switchyard_lab::{ChildGuard, Lab, LabConfig};

use crate::api::Api;
use crate::control_plane::ControlPlane;
use crate::process::{memory, Memory};

pub struct RealAgents {
    // Field order matters: agents stop before the lab deletes namespaces.
    agents: Vec<ChildGuard>,
    names: Vec<String>,
    /// Appended to node names, so a rerun is not mistaken for the last
    /// run's agent (the control plane remembers what each node ACKed).
    tag: String,
    /// RUST_LOG of agents started from now on, and flags they get on top.
    log_filter: String,
    extra_args: Vec<String>,
    pub lab: Lab,
}

impl RealAgents {
    /// Builds a lab of `nodes` nodes and starts one agent in each.
    pub fn start(
        bins: &std::path::Path,
        cp: &ControlPlane,
        nodes: usize,
    ) -> anyhow::Result<RealAgents> {
        let mut real = RealAgents::lab(nodes, 1)?;
        real.start_agents(bins, cp)?;
        Ok(real)
    }

    /// The lab alone, no agent running yet.
    pub fn lab(nodes: usize, pods_per_node: usize) -> anyhow::Result<RealAgents> {
        let lab = Lab::new(LabConfig {
            nodes,
            pods_per_node,
        })?;
        Ok(RealAgents {
            agents: Vec::new(),
            names: Vec::new(),
            tag: String::new(),
            log_filter: "warn".to_owned(),
            extra_args: Vec::new(),
            lab,
        })
    }

    /// Names this run's nodes `node-<i>-<tag>`.
    pub fn tagged(mut self, tag: &str) -> RealAgents {
        self.tag = format!("-{tag}");
        self
    }

    /// Agents started from now on log by `filter` and get `args` too.
    pub fn configured(mut self, filter: &str, args: &[&str]) -> RealAgents {
        self.log_filter = filter.to_owned();
        self.extra_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Starts one agent per lab node.
    pub fn start_agents(
        &mut self,
        bins: &std::path::Path,
        cp: &ControlPlane,
    ) -> anyhow::Result<()> {
        for i in 1..=self.lab.nodes().len() {
            self.start_agent(bins, cp, i)?;
        }
        Ok(())
    }

    fn start_agent(
        &mut self,
        bins: &std::path::Path,
        cp: &ControlPlane,
        i: usize,
    ) -> anyhow::Result<()> {
        let node = self.lab.node(i).clone();
        let name = format!("{}{}", node.name, self.tag);
        let state_dir = self.lab.log_dir().join(format!("{name}-state"));
        let mut args = vec![
            "env".to_owned(),
            format!("RUST_LOG={}", self.log_filter),
            bins.join("switchyard-agent").to_string_lossy().into_owned(),
            "--control-plane".to_owned(),
            cp.unix_url(),
            "--node-name".to_owned(),
            name.clone(),
            "--node-ip".to_owned(),
            node.ip.to_string(),
            "--state-dir".to_owned(),
            state_dir.to_string_lossy().into_owned(),
        ];
        args.extend(cp.identities()?.agent_flags());
        if let Some(cidr) = node.pod_cidr {
            args.extend(["--pod-cidr".to_owned(), cidr.to_string()]);
        }
        args.extend(self.extra_args.iter().cloned());
        self.agents.push(self.lab.spawn(&node.ns, &args)?);
        self.names.push(name);
        Ok(())
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Waits until every agent's node reports `version` ACKed (polled
    /// through the API every millisecond); returns when the last one did.
    pub async fn wait_acked(
        &self,
        api: &mut Api,
        version: u64,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<&str> = self.names.iter().map(String::as_str).collect();
        loop {
            let mut still = Vec::new();
            for name in pending {
                if api.node_applied(name).await.unwrap_or(0) < version {
                    still.push(name);
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                self.check_running()?;
                bail!("real agents {pending:?} had not ACKed version {version} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Restarts every agent as an upgrade does: the new one starts while
    /// the old one runs, takes its sockets over, and the old one exits.
    pub async fn hot_restart(
        &mut self,
        bins: &std::path::Path,
        cp: &ControlPlane,
    ) -> anyhow::Result<()> {
        let old = std::mem::take(&mut self.agents);
        self.names.clear();
        self.start_agents(bins, cp)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while old.iter().any(ChildGuard::is_running) {
            if Instant::now() > deadline {
                bail!("an old agent did not hand over within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops every agent (its table stays) and starts it again.
    pub fn restart_agents(
        &mut self,
        bins: &std::path::Path,
        cp: &ControlPlane,
    ) -> anyhow::Result<()> {
        self.agents.clear();
        self.names.clear();
        self.start_agents(bins, cp)
    }

    /// Everything each agent printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.agents.iter().map(ChildGuard::log).collect()
    }

    /// Lines holding `needle`, over every agent's log.
    pub fn count_logged(&self, needle: &str) -> u64 {
        self.logs()
            .iter()
            .map(|l| l.matches(needle).count() as u64)
            .sum()
    }

    /// Waits until every agent has logged `needle` at least `times` times.
    pub async fn wait_logged(
        &self,
        needle: &str,
        times: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self
            .agents
            .iter()
            .any(|a| a.log().matches(needle).count() < times)
        {
            if Instant::now() > deadline {
                self.check_running()?;
                bail!("real agents had not logged {needle:?} {times} times after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn check_running(&self) -> anyhow::Result<()> {
        for a in &self.agents {
            if !a.is_running() {
                bail!("a real agent exited; log:\n{}", a.log());
            }
        }
        Ok(())
    }

    /// Each agent's process id.
    pub fn pids(&self) -> Vec<u32> {
        self.agents.iter().map(ChildGuard::pid).collect()
    }

    /// Peak and current memory of each agent process.
    pub fn memory(&self) -> anyhow::Result<Vec<Memory>> {
        self.agents.iter().map(|a| memory(a.pid())).collect()
    }
}
