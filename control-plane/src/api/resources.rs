//! The `switchyard.v1.Resources` service.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use switchyard_api::resources::{Kind, Object};
use switchyard_api::v1::resources_server::Resources;
use switchyard_api::v1::{
    ApplyOutcome, ApplyRequest, ApplyResponse, ControlPlane, ControlPlanesRequest,
    ControlPlanesResponse, EnvRequest, EnvResponse, EnvVar, EventType, ListRequest, ListResponse,
    ObjectRef, Resource, WatchEvent, WatchRequest,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::auth::policy::PodFacts;
use crate::auth::{Access, Action, Caller, Verb};
use crate::ha::Directory;
use crate::registry::{Event, Outcome, Page, PageRequest, Registry, Write};
use crate::selector::Selector;
use crate::status::to_status;
use crate::store;
use crate::sync::session::SyncContext;

const APPLY: &str = "/switchyard.v1.Resources/Apply";
const GET: &str = "/switchyard.v1.Resources/Get";
const LIST: &str = "/switchyard.v1.Resources/List";
const DELETE: &str = "/switchyard.v1.Resources/Delete";
const WATCH: &str = "/switchyard.v1.Resources/Watch";
const ENV: &str = "/switchyard.v1.Resources/Env";
const CONTROL_PLANES: &str = "/switchyard.v1.Resources/ControlPlanes";

pub struct ResourcesApi {
    registry: Arc<Registry>,
    sync: Arc<SyncContext>,
    access: Arc<Access>,
    directory: Arc<Directory>,
}

impl ResourcesApi {
    pub fn new(
        registry: Arc<Registry>,
        sync: Arc<SyncContext>,
        access: Arc<Access>,
        directory: Arc<Directory>,
    ) -> Self {
        Self {
            registry,
            sync,
            access,
            directory,
        }
    }

    /// The stored pod of that name, shared (not copied): what
    /// NodeRestriction reads of a pod being written or deleted. `None` for
    /// other kinds, whose authorization reads nothing stored.
    fn stored_pod(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Object>> {
        if kind != Kind::Pod {
            return None;
        }
        let key = crate::store::object_key(kind, namespace, name);
        self.registry
            .with_state(|state| state.get(kind, &key).cloned())
    }

    /// Nodes carry their agent's live sync state, which is not stored.
    fn with_sync_state(&self, mut obj: Object) -> Object {
        if let Object::Node(node) = &mut obj {
            let version = self.sync.cache.version();
            self.sync
                .nodes
                .fill_status(&node.metadata.name, version, &mut node.status);
        }
        obj
    }
}

fn parse_kind(kind: &str) -> Result<Kind, Status> {
    kind.parse()
        .map_err(|e: switchyard_api::resources::UnknownKind| Status::not_found(e.to_string()))
}

fn parse_selector(s: &str) -> Result<Selector, Status> {
    Selector::parse(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn resource(obj: &Object) -> Resource {
    Resource {
        kind: obj.kind().as_str().to_string(),
        json: obj.to_json(),
    }
}

fn decode(r: Option<Resource>) -> Result<Object, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("resource is required"))?;
    let kind = parse_kind(&r.kind)?;
    if kind.is_identity() {
        return Err(Status::invalid_argument(format!(
            "{} are issued by `swctl create {}`, not applied",
            kind.plural(),
            kind.singular()
        )));
    }
    let mut value: serde_json::Value = serde_json::from_str(&r.json).map_err(|e| {
        Status::invalid_argument(format!(
            "{kind} in version \"{}\" cannot be handled: {e}",
            kind.api_version()
        ))
    })?;
    // swctl warned of these (or was told to ignore them); Kubernetes drops them.
    switchyard_api::resources::drop_unknown_fields(kind, &mut value);
    Object::from_value(kind, value).map_err(|e| {
        Status::invalid_argument(format!(
            "{kind} in version \"{}\" cannot be handled: {e}",
            kind.api_version()
        ))
    })
}

/// Which objects a list or watch asked for.
pub struct Scope {
    namespace: Option<String>,
    selector: Selector,
    /// Pods bound to this node only.
    node: Option<String>,
}

impl Scope {
    /// The namespace authorization names: `None` for all of them.
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Objects of `kind` in `namespace` (empty: `default`), or in every
    /// namespace with `all`, whose labels `selector` matches.
    pub fn new(kind: Kind, namespace: &str, all: bool, selector: Selector) -> Self {
        let namespace = (kind.is_namespaced() && !all).then(|| {
            if namespace.is_empty() {
                "default".to_string()
            } else {
                namespace.to_string()
            }
        });
        Self {
            namespace,
            selector,
            node: None,
        }
    }

    pub fn admits(&self, obj: &Object) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj.namespace() == ns)
            && self.selector.matches(&obj.meta().labels)
            && self.node.as_deref().is_none_or(|node| bound_to(obj, node))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Resources for ResourcesApi {
    #[tracing::instrument(skip_all)]
    async fn apply(
        &self,
        request: Request<ApplyRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let caller = Caller::of(&request);
        let req = request.into_inner();
        let obj = decode(req.resource)?;
        let write = Write {
            create_only: req.create_only,
            ..Write::default()
        };
        let (stored, outcome) = self.apply_object(&caller, APPLY, None, obj, &write).await?;
        let outcome = match outcome {
            Outcome::Created => ApplyOutcome::Created,
            Outcome::Configured => ApplyOutcome::Configured,
            Outcome::Unchanged => ApplyOutcome::Unchanged,
        };
        Ok(Response::new(ApplyResponse {
            resource: Some(resource(&stored)),
            outcome: outcome as i32,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get(&self, request: Request<ObjectRef>) -> Result<Response<Resource>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let kind = parse_kind(&r.kind)?;
        let obj = self
            .get_object(&caller, GET, kind, &r.namespace, &r.name)
            .await?;
        Ok(Response::new(resource(&obj)))
    }

    #[tracing::instrument(skip_all)]
    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let kind = parse_kind(&r.kind)?;
        let selector = parse_selector(&r.label_selector)?;
        let scope = Scope::new(kind, &r.namespace, r.all_namespaces, selector);
        let (items, revision) = self.list_objects(&caller, LIST, kind, scope).await?;
        Ok(Response::new(ListResponse {
            items: items.iter().map(resource).collect(),
            resource_version: revision,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete(&self, request: Request<ObjectRef>) -> Result<Response<Resource>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let kind = parse_kind(&r.kind)?;
        let obj = self
            .delete_object(&caller, DELETE, kind, &r.namespace, &r.name, false)
            .await?;
        Ok(Response::new(resource(&obj)))
    }

    /// The Service variables a pod gets (`swctl env`): its namespace's
    /// Services created at or before it, or all current ones without a pod.
    #[tracing::instrument(skip_all)]
    async fn env(&self, request: Request<EnvRequest>) -> Result<Response<EnvResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let namespace = namespace_or_default(&r.namespace);
        let action = Action::new(Verb::List, Kind::Service.plural()).namespace(namespace);
        self.access.authorize(&caller, ENV, action)?;
        let pod_created = match r.pod.as_str() {
            "" => None,
            pod => self
                .registry
                .get(Kind::Pod, namespace, pod)
                .map_err(to_status)?
                .meta()
                .creation_timestamp
                .clone(),
        };
        let (objects, _) = self
            .registry
            .list(Kind::Service, None, &Selector::default());
        let services: Vec<_> = objects
            .into_iter()
            .filter_map(|o| match o {
                Object::Service(s) => Some(*s),
                _ => None,
            })
            .collect();
        let vars = crate::env::service_env(namespace, &services, pod_created.as_deref())
            .into_iter()
            .map(|v| EnvVar {
                name: v.name,
                value: v.value,
            })
            .collect();
        Ok(Response::new(EnvResponse { vars }))
    }

    /// The control planes sharing this cluster's store.
    #[tracing::instrument(skip_all)]
    async fn control_planes(
        &self,
        request: Request<ControlPlanesRequest>,
    ) -> Result<Response<ControlPlanesResponse>, Status> {
        let caller = Caller::of(&request);
        let action = Action::new(Verb::List, "controlplanes");
        self.access.authorize(&caller, CONTROL_PLANES, action)?;
        let control_planes = self.control_plane_list().await?;
        Ok(Response::new(ControlPlanesResponse { control_planes }))
    }

    type WatchStream = WatchStream;

    #[tracing::instrument(skip_all)]
    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let kind = parse_kind(&r.kind)?;
        let selector = parse_selector(&r.label_selector)?;
        let scope = Scope::new(kind, &r.namespace, r.all_namespaces, selector);
        let events = self
            .watch_objects(&caller, WATCH, kind, scope, r.resource_version)
            .await?;
        let wire = ReceiverStream::new(events).map(|e| e.map(|e| wire_event(&e)));
        Ok(Response::new(Box::pin(wire)))
    }
}

/// The operations both APIs make (gRPC here, REST in `rest`): each
/// authorizes, audits and calls the registry the same way, whichever
/// protocol asked; `method` names the call in the audit log.
impl ResourcesApi {
    /// Writes `obj`; `verb` is what authorization and audit see (`None`:
    /// create or patch, whichever the write turns out to be).
    pub async fn apply_object(
        &self,
        caller: &Caller,
        method: &str,
        verb: Option<Verb>,
        obj: Object,
        write: &Write,
    ) -> Result<(Object, Outcome), Status> {
        let kind = obj.kind();
        let namespace = kind
            .is_namespaced()
            .then(|| namespace_or_default(obj.namespace()).to_string());
        let ns = namespace.as_deref().unwrap_or_default();
        // Pods: what NodeRestriction reads, of the pod as sent and as stored.
        let stored = self.stored_pod(kind, ns, obj.name());
        let verb = verb.unwrap_or_else(|| {
            match stored.is_some() || self.registry.contains(kind, ns, obj.name()) {
                true => Verb::Patch,
                false => Verb::Create,
            }
        });
        let name = obj.name().to_string();
        // Owned: the object itself moves into the write.
        let sent = pod_facts(&obj).map(|p| (p.node_name.to_string(), p.mirror));
        let mut action = Action::new(verb, kind.plural())
            .name(&name)
            .stored(stored.as_deref().and_then(pod_facts));
        action.namespace = namespace.as_deref();
        action.pod = sent.as_ref().map(|(node_name, mirror)| PodFacts {
            node_name,
            mirror: *mirror,
        });
        self.access
            .run(caller, method, action, async {
                self.registry
                    .apply_with(obj, write)
                    .await
                    .map_err(to_status)
            })
            .await
    }

    pub async fn get_object(
        &self,
        caller: &Caller,
        method: &str,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, Status> {
        let namespace = namespace_or_default(namespace);
        let action = object_action(Verb::Get, kind, namespace, name);
        let obj = self
            .access
            .run(caller, method, action, async {
                self.registry.get(kind, namespace, name).map_err(to_status)
            })
            .await?;
        Ok(self.with_sync_state(obj))
    }

    /// The objects `scope` admits, and the revision they were read at.
    pub async fn list_objects(
        &self,
        caller: &Caller,
        method: &str,
        kind: Kind,
        scope: Scope,
    ) -> Result<(Vec<Object>, u64), Status> {
        let page = self
            .list_page(
                caller,
                method,
                kind,
                scope,
                &PageRequest::default(),
                &|_| true,
            )
            .await?;
        Ok((page.items, page.revision))
    }

    /// A page of the objects `scope` and `also` admit.
    pub async fn list_page(
        &self,
        caller: &Caller,
        method: &str,
        kind: Kind,
        mut scope: Scope,
        page: &PageRequest<'_>,
        also: &(dyn Fn(&Object) -> bool + Sync),
    ) -> Result<Page, Status> {
        // A node lists only the pods bound to it, as the Node authorizer
        // scopes a kubelet's reads.
        if kind == Kind::Pod {
            scope.node = caller.principal.node().map(str::to_string);
        }
        let mut action = Action::new(Verb::List, kind.plural());
        action.namespace = scope.namespace();
        action.node = scope.node.as_deref();
        let mut listed = self
            .access
            .run(caller, method, action, async {
                let admits = |o: &Object| scope.admits(o) && also(o);
                Ok(self
                    .registry
                    .list_page(kind, scope.namespace(), page, &admits))
            })
            .await?;
        listed.items = std::mem::take(&mut listed.items)
            .into_iter()
            .map(|o| self.with_sync_state(o))
            .collect();
        Ok(listed)
    }

    pub async fn delete_object(
        &self,
        caller: &Caller,
        method: &str,
        kind: Kind,
        namespace: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Object, Status> {
        let namespace = namespace_or_default(namespace);
        let stored = self.stored_pod(kind, namespace, name);
        let action = object_action(Verb::Delete, kind, namespace, name)
            .stored(stored.as_deref().and_then(pod_facts));
        self.access
            .run(caller, method, action, async {
                match dry_run {
                    true => self.registry.delete_dry_run(kind, namespace, name),
                    false => self.registry.delete(kind, namespace, name).await,
                }
                .map_err(to_status)
            })
            .await
    }

    /// The changes `scope` admits after revision `after` (0: every current
    /// object first, as ADDED), until the caller drops the receiver.
    pub async fn watch_objects(
        &self,
        caller: &Caller,
        method: &str,
        kind: Kind,
        scope: Scope,
        after: u64,
    ) -> Result<mpsc::Receiver<Result<Event, Status>>, Status> {
        let mut action = Action::new(Verb::Watch, kind.plural());
        action.namespace = scope.namespace();
        self.access.authorize(caller, method, action)?;
        let start = self.registry.watch(kind, after).await.map_err(to_status)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(forward_watch(
            kind,
            scope,
            start,
            tx,
            self.sync.stopping.clone(),
        ));
        Ok(rx)
    }

    /// Authorizes `action` and records it as `method`.
    pub fn authorize(
        &self,
        caller: &Caller,
        method: &str,
        action: Action<'_>,
    ) -> Result<(), Status> {
        self.access.authorize(caller, method, action)
    }

    /// The control planes sharing this cluster's store.
    pub async fn control_plane_list(&self) -> Result<Vec<ControlPlane>, Status> {
        let listed = self
            .directory
            .list(&self.registry)
            .await
            .map_err(|e| to_status(e.into()))?;
        Ok(listed
            .into_iter()
            .map(|(m, leader)| ControlPlane {
                name: m.name,
                address: m.address,
                leader,
                revision: m.revision,
                agents: m.agents,
                started: m.started,
            })
            .collect())
    }
}

/// An action on one named object; cluster-scoped kinds have no namespace.
fn object_action<'a>(verb: Verb, kind: Kind, namespace: &'a str, name: &'a str) -> Action<'a> {
    let action = Action::new(verb, kind.plural()).name(name);
    if kind.is_namespaced() {
        action.namespace(namespace)
    } else {
        action
    }
}

/// What authorization reads of a pod; `None` for other kinds.
fn pod_facts(obj: &Object) -> Option<PodFacts<'_>> {
    match obj {
        Object::Pod(pod) => Some(PodFacts::of(pod)),
        _ => None,
    }
}

fn bound_to(obj: &Object, node: &str) -> bool {
    matches!(obj, Object::Pod(pod) if pod.spec.node_name.as_deref() == Some(node))
}

fn namespace_or_default(ns: &str) -> &str {
    if ns.is_empty() {
        "default"
    } else {
        ns
    }
}

fn wire_event(e: &Event) -> WatchEvent {
    let t = match e.event_type {
        store::EventType::Added => EventType::Added,
        store::EventType::Modified => EventType::Modified,
        store::EventType::Deleted => EventType::Deleted,
    };
    WatchEvent {
        r#type: t as i32,
        resource: Some(resource(&e.object)),
        resource_version: e.revision,
    }
}

/// Feeds one watcher: backlog first, then live commits. A watcher too slow
/// to keep up is cut off with OUT_OF_RANGE so it relists, rather than the
/// server buffering without bound.
async fn forward_watch(
    kind: Kind,
    scope: Scope,
    start: crate::registry::WatchStart,
    tx: mpsc::Sender<Result<Event, Status>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    for e in start.backlog.iter().filter(|e| scope.admits(&e.object)) {
        if tx.send(Ok(e.clone())).await.is_err() {
            return;
        }
    }
    let mut live = start.live;
    loop {
        let received = tokio::select! {
            _ = stopping.changed() => {
                let _ = tx.send(Err(Status::unavailable("the control plane is shutting down"))).await;
                return;
            }
            received = live.recv() => received,
        };
        let batch = match received {
            Ok(batch) => batch,
            Err(RecvError::Lagged(_)) => {
                let _ = tx
                    .send(Err(Status::out_of_range(
                        "watch fell behind; list again and resume",
                    )))
                    .await;
                return;
            }
            Err(RecvError::Closed) => return,
        };
        let relevant = batch.iter().filter(|e| {
            e.revision > start.revision && e.object.kind() == kind && scope.admits(&e.object)
        });
        for e in relevant {
            if tx.send(Ok(e.clone())).await.is_err() {
                return;
            }
        }
    }
}
