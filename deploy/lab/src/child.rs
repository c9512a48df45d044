//! Background processes started inside lab namespaces.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cmd;
use crate::error::{LabError, Result};

/// How long a process gets to exit after SIGTERM before it is SIGKILLed.
const TERM_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// A child shared between its guard and the lab, so whichever drops first
/// stops it and the other finds nothing left to do.
pub(crate) type SharedChild = Arc<Mutex<Option<Child>>>;

/// A process running in a lab namespace; stopped (SIGTERM, then SIGKILL) and
/// reaped when dropped, or when the lab is dropped, whichever comes first.
#[derive(Debug)]
pub struct ChildGuard {
    child: SharedChild,
    pid: u32,
    ns: String,
    log: PathBuf,
}

impl ChildGuard {
    pub(crate) fn new(child: SharedChild, pid: u32, ns: String, log: PathBuf) -> Self {
        Self {
            child,
            pid,
            ns,
            log,
        }
    }

    /// Process id (the command itself: `ip netns exec` execs into it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Namespace the process runs in.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Path of the file receiving the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process printed so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        let mut slot = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// How the process exited, once it has; `None` while it runs (or once
    /// the guard stopped it). Tests check how a command ended with it.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut slot = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Waits until the log contains `needle` (e.g. a "listening" line), so
    /// tests start traffic only once the process is ready. Fails early, with
    /// the log, if the process exits or the timeout passes.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if !self.is_running() || Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "process {} in {} did not log {needle:?} (running: {}); log:\n{}",
                    self.pid,
                    self.ns,
                    self.is_running(),
                    self.log()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs the process, as a power cut would, and reaps it.
    pub fn kill(&self) {
        let taken = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit by itself, as
    /// `systemctl stop` does: how it exited, or an error (with its log)
    /// when it is still running after `timeout` (the guard's drop then
    /// SIGKILLs it).
    pub fn terminate_and_wait(&self, timeout: Duration) -> Result<ExitStatus> {
        let pid = self.pid.to_string();
        if self.is_running() {
            cmd::run("kill", &["-TERM", pid.as_str()])?;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "process {} in {} still runs {timeout:?} after SIGTERM; log:\n{}",
                    self.pid,
                    self.ns,
                    self.log()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops the process now instead of at drop.
    pub fn stop(&self) {
        stop_shared(&self.child);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops a shared child if it is still there: SIGTERM so it can clean up,
/// SIGKILL if it lingers, then reap it so no zombie is left.
pub(crate) fn stop_shared(shared: &SharedChild) {
    let taken = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(mut child) = taken {
        terminate(&mut child);
    }
}

fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = child.id().to_string();
    if let Err(e) = cmd::run("kill", &["-TERM", pid.as_str()]) {
        eprintln!("switchyard-lab: SIGTERM {pid}: {e}");
    }
    let deadline = Instant::now() + TERM_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(POLL);
    }
    if let Err(e) = child.kill() {
        eprintln!("switchyard-lab: SIGKILL {pid}: {e}");
    }
    if let Err(e) = child.wait() {
        eprintln!("switchyard-lab: reaping {pid}: {e}");
    }
}
