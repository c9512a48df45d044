//! One task per probed pod, started, restarted and stopped as the probe
//! list in the pushes changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchyard_api::v1::PodProbe;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::check::{run_check, CheckResult};

/// `(namespace, name, ready)`: a Ready transition to report.
pub type Transition = (String, String, bool);

pub struct Prober {
    node: String,
    tasks: HashMap<(String, String), Task>,
    transitions: mpsc::Sender<Transition>,
}

/// A running probe and what it concluded last.
struct Task {
    probe: PodProbe,
    ready: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// Two probes are the same task when everything but the server's current
/// view of readiness matches.
fn same_probe(a: &PodProbe, b: &PodProbe) -> bool {
    PodProbe {
        ready: false,
        ..a.clone()
    } == PodProbe {
        ready: false,
        ..b.clone()
    }
}

impl Prober {
    pub fn new(node: String, transitions: mpsc::Sender<Transition>) -> Self {
        Self {
            node,
            tasks: HashMap::new(),
            transitions,
        }
    }

    /// Brings the running probes in line with `probes`. Where the server's
    /// view of a running probe's pod differs from what the probe concluded
    /// (the pod's node was judged NotReady meanwhile, say), the probe's
    /// conclusion is reported again: the agent owns its pods' readiness.
    pub fn update(&mut self, probes: &[PodProbe]) {
        let wanted: HashMap<(String, String), &PodProbe> = probes
            .iter()
            .map(|p| ((p.namespace.clone(), p.name.clone()), p))
            .collect();
        self.tasks.retain(|key, task| {
            let keep = wanted.get(key).is_some_and(|w| same_probe(w, &task.probe));
            if !keep {
                task.handle.abort();
            }
            keep
        });
        for (key, probe) in wanted {
            match self.tasks.get(&key) {
                Some(task) => {
                    let ready = task.ready.load(Ordering::SeqCst);
                    if ready != probe.ready {
                        tracing::info!(pod = %format!("{}/{}", key.0, key.1), ready, "the server's readiness differs from the probe's; reporting it again");
                        let transitions = self.transitions.clone();
                        tokio::spawn(async move { transitions.send((key.0, key.1, ready)).await });
                    }
                }
                None => {
                    tracing::info!(pod = %format!("{}/{}", key.0, key.1), handler = %probe.handler, port = probe.port, "starting readiness probe");
                    let ready = Arc::new(AtomicBool::new(probe.ready));
                    let handle = tokio::spawn(probe_loop(
                        probe.clone(),
                        ready.clone(),
                        self.transitions.clone(),
                        self.node.clone(),
                    ));
                    let task = Task {
                        probe: probe.clone(),
                        ready,
                        handle,
                    };
                    self.tasks.insert(key, task);
                }
            }
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.handle.abort();
        }
    }
}

/// Kubernetes' threshold logic: `successThreshold` consecutive successes make
/// an unready pod ready, `failureThreshold` consecutive failures the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    ready: bool,
    successes: u32,
    failures: u32,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Thresholds {
    pub fn new(ready: bool, success_threshold: u32, failure_threshold: u32) -> Self {
        Self {
            ready,
            successes: 0,
            failures: 0,
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
        }
    }

    /// Records one result; returns the new readiness when it flips.
    pub fn observe(&mut self, success: bool) -> Option<bool> {
        if success {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let flip = if self.ready {
            self.failures >= self.failure_threshold
        } else {
            self.successes >= self.success_threshold
        };
        flip.then(|| {
            self.ready = !self.ready;
            self.ready
        })
    }
}

async fn probe_loop(
    probe: PodProbe,
    concluded: Arc<AtomicBool>,
    transitions: mpsc::Sender<Transition>,
    node: String,
) {
    tokio::time::sleep(Duration::from_secs(u64::from(probe.initial_delay_seconds))).await;
    let mut state = Thresholds::new(
        probe.ready,
        probe.success_threshold,
        probe.failure_threshold,
    );
    let mut tick =
        tokio::time::interval(Duration::from_secs(u64::from(probe.period_seconds.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A pod the server thinks unready is reported as soon as it passes, and
    // one it thinks ready is re-confirmed, so a lost report heals itself.
    loop {
        tick.tick().await;
        let result = run_check(&probe).await;
        if let CheckResult::Failure(why) = &result {
            tracing::debug!(node = %node, pod = %probe.name, %why, "readiness probe failed");
        }
        if let Some(ready) = state.observe(result == CheckResult::Success) {
            concluded.store(ready, Ordering::SeqCst);
            tracing::info!(pod = %format!("{}/{}", probe.namespace, probe.name), ready, "readiness changed");
            if transitions
                .send((probe.namespace.clone(), probe.name.clone(), ready))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_flip_only_after_consecutive_results() {
        let mut t = Thresholds::new(false, 2, 3);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }

    #[test]
    fn server_readiness_alone_does_not_restart_a_probe() {
        let a = PodProbe {
            name: "p".into(),
            port: 80,
            ..Default::default()
        };
        let b = PodProbe {
            ready: true,
            ..a.clone()
        };
        assert!(same_probe(&a, &b));
        assert!(!same_probe(
            &a,
            &PodProbe {
                port: 81,
                ..a.clone()
            }
        ));
    }
}
