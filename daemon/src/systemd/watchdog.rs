//! systemd's watchdog (`WatchdogSec=`): the daemon sends `WATCHDOG=1` more
//! often than `WATCHDOG_USEC`, or systemd deems it hung and kills it (and
//! restarts it under `Restart=on-failure`). sd_watchdog_enabled(3) advises
//! half the timeout.

use std::sync::Arc;
use std::time::Duration;

use super::Notifier;

/// The watchdog's timeout in microseconds.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The process the timeout is for, when set (else whoever reads it).
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// How often this process should ping, from its environment.
pub fn from_env() -> Option<Duration> {
    interval(
        std::env::var(WATCHDOG_USEC).ok().as_deref(),
        std::env::var(WATCHDOG_PID).ok().as_deref(),
        std::process::id(),
    )
}

/// Half the timeout in `usec`, when it is a positive number and `pid` is
/// unset or `own_pid` (a child that inherited the variables must not ping
/// for its parent).
pub fn interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec) / 2)
}

/// Pings every `every`, forever; a failed ping is logged (the next may
/// get through before the timeout).
pub async fn run(notifier: Arc<Notifier>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = notifier.watchdog() {
            tracing::warn!(error = %e, "cannot ping the service manager's watchdog");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn half_the_timeout_for_this_process() {
        assert_eq!(
            interval(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            interval(Some("3000000"), Some("7"), 7),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn no_pings_for_another_process_or_without_a_timeout() {
        assert_eq!(interval(Some("3000000"), Some("8"), 7), None);
        assert_eq!(interval(Some("3000000"), Some("x"), 7), None);
        assert_eq!(interval(None, Some("7"), 7), None);
        assert_eq!(interval(Some("0"), None, 7), None);
        assert_eq!(interval(Some("soon"), None, 7), None);
    }

    /// The pings reach the manager, at the pace asked.
    #[tokio::test(start_paused = true)]
    async fn pings_until_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let manager = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        manager.set_nonblocking(true).unwrap();
        let notifier = Arc::new(Notifier::connect(path.as_os_str()).expect("connect"));
        let pinging = tokio::spawn(run(notifier, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(25)).await;
        pinging.abort();
        let mut pings = 0;
        let mut buf = [0u8; 64];
        while let Ok(n) = manager.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            pings += 1;
        }
        // At 0 s, 10 s and 20 s.
        assert_eq!(pings, 3);
    }
}
