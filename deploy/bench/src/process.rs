//! Real processes under test: started with their output in a log file,
//! measured through `/proc`, killed when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A child process killed on drop.
pub struct Proc {
    child: Child,
    log: PathBuf,
    name: String,
}

impl Proc {
    /// Spawns `args` with stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        args: &[String],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Proc> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let (program, rest) = args.split_first().context("empty command")?;
        let child = Command::new(program)
            .args(rest)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        Ok(Proc {
            child,
            log: log.to_path_buf(),
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the log tail when the process already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); log tail:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Peak and current resident memory, in MiB.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory(self.pid())
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `VmHWM` (peak) and `VmRSS` (now) from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub peak_mib: f64,
    pub rss_mib: f64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing for pid {pid}"))?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("malformed {line:?}"))?;
        Ok(kib / 1024.0)
    };
    Ok(Memory {
        peak_mib: field("VmHWM:")?,
        rss_mib: field("VmRSS:")?,
    })
}

/// CPU seconds (user + system) a process has used so far: `/proc/<pid>/stat`
/// counts them in clock ticks, whose rate the kernel reports.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields from the last ')', where field 3 (state) begins.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |field: usize| -> anyhow::Result<f64> {
        fields
            .get(field - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("field {field} missing in /proc/{pid}/stat"))
    };
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    Ok((ticks(14)? + ticks(15)?) / per_second)
}

/// A free loopback TCP port (bound and released; fine for a benchmark).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Busy work must show up as CPU time: a misread field (a start time,
    /// a page count) would stay put or jump, and this would time out.
    #[test]
    fn cpu_seconds_grows_with_busy_work() {
        let pid = std::process::id();
        let start = cpu_seconds(pid).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut spin = 0u64;
        while cpu_seconds(pid).unwrap() < start + 0.05 {
            assert!(Instant::now() < deadline, "no CPU time counted after 20 s");
            for i in 0..100_000u64 {
                spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert!(cpu_seconds(pid).unwrap() < start + 20.0);
    }
}
