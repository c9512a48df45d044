//! `/livez`, `/healthz` and `/readyz`, served next to `/metrics`, for
//! process supervisors and the load balancer in front of control planes.
//! Live: the process answers. Healthy: the store takes writes. Ready:
//! healthy, and the API is serving and not shutting down, so a load
//! balancer sends requests only where they can succeed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::watch;

use crate::registry::Registry;

pub struct Health {
    registry: Arc<Registry>,
    serving: AtomicBool,
    stopping: watch::Receiver<bool>,
}

impl Health {
    pub fn new(registry: Arc<Registry>, stopping: watch::Receiver<bool>) -> Arc<Health> {
        Arc::new(Health {
            registry,
            serving: AtomicBool::new(false),
            stopping,
        })
    }

    /// The API listener accepts calls from now on.
    pub fn serving(&self) {
        self.serving.store(true, Ordering::SeqCst);
    }

    fn healthy(&self) -> Result<(), String> {
        match self.registry.store_failing() {
            Some(why) => Err(format!("store: the last write failed: {why}")),
            None => Ok(()),
        }
    }

    fn ready(&self) -> Result<(), String> {
        if *self.stopping.borrow() {
            return Err("shutting down".to_string());
        }
        if !self.serving.load(Ordering::SeqCst) {
            return Err("not serving yet".to_string());
        }
        self.healthy()
    }
}

fn answer(check: Result<(), String>) -> (StatusCode, String) {
    match check {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

pub fn router(health: Arc<Health>) -> axum::Router {
    let (h, r) = (health.clone(), health);
    axum::Router::new()
        .route("/livez", get(|| async { answer(Ok(())) }))
        .route("/healthz", get(move || async move { answer(h.healthy()) }))
        .route("/readyz", get(move || async move { answer(r.ready()) }))
}
