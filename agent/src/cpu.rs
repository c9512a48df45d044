//! CPU-heavy steps (compiling and diffing the whole table, encoding its
//! netlink batch, folding a full snapshot: about a second at 10,000
//! Services) kept from stalling the async workers that DNS answers and the
//! streams share.

/// Runs `work` after handing this worker's other tasks to another thread
/// (`block_in_place`), on the agent's multi-threaded runtime; elsewhere
/// (a single-threaded runtime in tests, no runtime) it just runs it.
pub fn heavy<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::heavy;

    #[test]
    fn runs_without_a_runtime() {
        assert_eq!(heavy(|| 2 + 2), 4);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_on_a_single_thread() {
        assert_eq!(heavy(|| 2 + 2), 4);
    }

    /// On a multi-threaded runtime a ready task is run by another worker
    /// while this one is inside `heavy`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_tasks_go_on_meanwhile() {
        let (tx, rx) = std::sync::mpsc::channel();
        let other = tokio::spawn(async move { tx.send(()).unwrap() });
        let seen = heavy(|| rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok());
        assert!(seen, "the other task did not run while this one was busy");
        other.await.unwrap();
    }
}
