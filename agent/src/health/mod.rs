//! Whether this node's data path can be trusted, as kube-proxy reports it:
//! `/healthz` and `/livez` on `--healthz-listen` for supervisors, and the
//! `serviceProxyHealthy` of every health check port for load balancers.
//!
//! Healthy unless a change has been waiting to reach the data path for
//! longer than the timeout: a push the kernel keeps refusing, a table that
//! cannot be repaired, or a first snapshot that never came. A control
//! plane that is merely away queues nothing, so the last ruleset serving
//! on counts as healthy.

pub mod node_port;
pub mod server;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// kube-proxy's default: twice its 30 s sync period.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ProxyHealth {
    timeout: Duration,
    state: Mutex<State>,
}

struct State {
    last_updated: SystemTime,
    /// The oldest change not yet in the data path.
    pending_since: Option<Instant>,
}

/// One reading, for the HTTP answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub healthy: bool,
    pub last_updated: SystemTime,
    pub current_time: SystemTime,
}

impl ProxyHealth {
    /// Starts with the first snapshot pending: an agent that never gets
    /// one turns unhealthy after the timeout.
    pub fn new(timeout: Duration) -> ProxyHealth {
        ProxyHealth {
            timeout,
            state: Mutex::new(State {
                last_updated: SystemTime::now(),
                pending_since: Some(Instant::now()),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Only plain assignments happen under the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A change arrived (or the table needs a repair that failed); it is
    /// pending until [`Self::updated`].
    pub fn queued(&self) {
        self.state().pending_since.get_or_insert_with(Instant::now);
    }

    /// The data path holds everything this agent was sent.
    pub fn updated(&self) {
        let mut state = self.state();
        state.last_updated = SystemTime::now();
        state.pending_since = None;
    }

    pub fn status(&self) -> Status {
        self.status_at(Instant::now(), SystemTime::now())
    }

    fn status_at(&self, now: Instant, wall: SystemTime) -> Status {
        let state = self.state();
        let healthy = state
            .pending_since
            .is_none_or(|since| now.saturating_duration_since(since) <= self.timeout);
        Status {
            healthy,
            last_updated: state.last_updated,
            current_time: wall,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_pending_past_the_timeout_is_unhealthy_until_applied() {
        let health = ProxyHealth::new(Duration::from_secs(60));
        let start = Instant::now();
        let wall = SystemTime::now();
        assert!(health.status_at(start, wall).healthy);
        assert!(
            !health
                .status_at(start + Duration::from_secs(61), wall)
                .healthy
        );
        health.updated();
        let applied = health.status_at(start + Duration::from_secs(61), wall);
        assert!(applied.healthy);
        health.queued();
        let queued_at = Instant::now();
        health.queued();
        assert!(
            health
                .status_at(queued_at + Duration::from_secs(59), wall)
                .healthy
        );
        assert!(
            !health
                .status_at(queued_at + Duration::from_secs(62), wall)
                .healthy
        );
    }
}
