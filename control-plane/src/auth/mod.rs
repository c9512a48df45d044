//! Identity and authorization. Authentication happens once, at the edge
//! ([`layer`]): the connection's certificate becomes a [`Principal`]
//! ([`principal`]), or the request is refused. Handlers receive the
//! [`Caller`] and ask [`Access`] whether it may do an [`Action`]: a pure
//! table ([`policy`]), with every write, identity change and port-forward
//! recorded in the [`audit`] log.

pub mod audit;
pub mod layer;
pub mod policy;
pub mod principal;

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::Utc;
use switchyard_api::resources::Kind;
use switchyard_tls::server::Peer;
use tokio::sync::{broadcast, watch};
use tonic::Status;

pub use audit::Audit;
pub use layer::AuthLayer;
pub use policy::{Action, Verb};
pub use principal::{Caller, Principal, Role};

use crate::registry::Registry;
use crate::store::EventType;

/// Decides who a connection's peer is, and notices revocations.
pub struct Authenticator {
    registry: Arc<Registry>,
    insecure: bool,
    /// Bumped whenever a User or Node is deleted: streams then check
    /// whether their caller still is anyone.
    revocations: watch::Receiver<u64>,
}

impl Authenticator {
    /// `insecure` turns authentication off: everybody is [`Principal::Insecure`].
    pub fn new(registry: Arc<Registry>, insecure: bool) -> Arc<Self> {
        let (tx, revocations) = watch::channel(0);
        tokio::spawn(follow_revocations(registry.subscribe(), tx));
        Arc::new(Self {
            registry,
            insecure,
            revocations,
        })
    }

    pub fn authenticate(&self, peer: &Peer) -> Result<Principal, String> {
        if self.insecure {
            return Ok(Principal::Insecure);
        }
        self.registry
            .with_state(|state| principal::authenticate(peer, state, SystemTime::now()))
    }

    fn revocations(&self) -> watch::Receiver<u64> {
        self.revocations.clone()
    }

    /// Resolves once `peer`'s certificate is revoked.
    async fn until_revoked(self: Arc<Self>, peer: Peer, mut revocations: watch::Receiver<u64>) {
        loop {
            if revocations.changed().await.is_err() {
                return std::future::pending().await;
            }
            if self
                .registry
                .with_state(|state| principal::is_revoked(&peer, state))
            {
                return;
            }
        }
    }
}

async fn follow_revocations(
    mut events: broadcast::Receiver<Arc<Vec<crate::registry::Event>>>,
    tx: watch::Sender<u64>,
) {
    loop {
        let revokes = match events.recv().await {
            Ok(batch) => batch.iter().any(|e| {
                matches!(
                    (e.event_type, e.object.kind()),
                    (EventType::Deleted, Kind::User | Kind::Node)
                        | (EventType::Modified, Kind::User)
                )
            }),
            Err(broadcast::error::RecvError::Lagged(_)) => true,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if revokes {
            tx.send_modify(|generation| *generation += 1);
        }
    }
}

/// Authorization and audit for handlers.
pub struct Access {
    audit: Audit,
}

impl Access {
    pub fn new(audit: Audit) -> Arc<Self> {
        Arc::new(Self { audit })
    }

    /// Authorizes `action`, runs `op` if allowed, and records anything but
    /// a read in the audit log, refused or not.
    pub async fn run<T>(
        &self,
        caller: &Caller,
        method: &str,
        action: Action<'_>,
        op: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let received = Utc::now();
        let result = match policy::authorize(&caller.principal, &action) {
            Ok(()) => op.await,
            Err(refusal) => Err(Status::permission_denied(refusal)),
        };
        self.audited(caller, method, &action, received, result)
    }

    /// Authorizes a read or the opening of a stream, which [`Access::run`]
    /// would wrap around nothing.
    pub fn authorize(
        &self,
        caller: &Caller,
        method: &str,
        action: Action<'_>,
    ) -> Result<(), Status> {
        let result =
            policy::authorize(&caller.principal, &action).map_err(Status::permission_denied);
        self.audited(caller, method, &action, Utc::now(), result)
    }

    /// Records `result` unless the action only reads.
    fn audited<T>(
        &self,
        caller: &Caller,
        method: &str,
        action: &Action<'_>,
        received: chrono::DateTime<Utc>,
        result: Result<T, Status>,
    ) -> Result<T, Status> {
        if !action.verb.is_read() {
            self.record(caller, method, action, result.as_ref().err(), received);
        }
        result
    }

    /// Records a request authorized by other means (a join's token).
    pub fn record(
        &self,
        caller: &Caller,
        method: &str,
        action: &Action<'_>,
        failure: Option<&Status>,
        received: chrono::DateTime<Utc>,
    ) {
        self.audit.record(&audit::Event {
            caller,
            method,
            action,
            failure,
            received,
        });
    }
}
