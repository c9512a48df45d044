//! The HA store: etcd v3, shared by every control plane of a cluster.
//!
//! Keys are `<prefix>/objects/<plural>/<key>` (the object's JSON, without
//! its resourceVersion: that is the key's mod revision, as kube-apiserver
//! does it) and `<prefix>/alloc/<allocation>` (the owner's key). A write is
//! one etcd transaction: a compare per object on the mod revision it was
//! read at, a compare per claimed allocation that it is absent, then the
//! puts and deletes. The watch on `<prefix>/` is every control plane's feed;
//! a resumed client watch's history is read through a watch too (`history`:
//! when such a read is whole). etcd's failures become typed errors in one
//! place (`errors`).

mod coordination;
mod errors;
mod history;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use switchyard_api::etcd::{
    compare, kv_client::KvClient, request_op, watch_client::WatchClient, watch_request,
    CompactionRequest, Compare, DeleteRangeRequest, Event as EtcdEvent, KeyValue, PutRequest,
    RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use switchyard_api::resources::{Kind, Object};
use switchyard_tls::client::{ClientIdentity, Target, Trust};
use tonic::transport::Channel;

use super::{
    Batch, Committed, EventType, Loaded, LoggedEvent, ObjectKey, Result, Store, StoreError,
    Visitor, Watch,
};
use crate::allocator::AllocKey;
use crate::store::key_of;
pub use errors::EtcdCall;
use errors::{classify, no_answer};

/// How long one etcd request may take: a cluster that lost its quorum
/// never answers a write, and the caller must hear so.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// Keys read per range request at start-up.
const PAGE: i64 = 1000;
/// How long a history read may take to show it holds every event of its
/// window (see `history`).
const HISTORY_PATIENCE: Duration = Duration::from_secs(3);

/// `--etcd-*` flags.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub prefix: String,
}

pub struct EtcdStore {
    channel: Channel,
    keys: Keys,
    failure: Mutex<Option<String>>,
}

/// The store's key layout under its prefix, and decoding what a watch sees.
#[derive(Clone)]
struct Keys {
    prefix: String,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

/// Pause between tries of a call a member refused for being unreachable.
const RETRY: Duration = Duration::from_millis(50);

/// How long one try of a call may take before it is tried again: a member
/// whose leader just died holds a proposal until its own timeout, while the
/// surviving members elect a new leader within about a second.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);

/// A unary call, tried again while the member it went to is unreachable or
/// slow to answer (the connection then moves on to the next member), within
/// [`REQUEST_TIMEOUT`]. Writes are safe to repeat: each is guarded by its
/// compares, so a repeat of one that did commit fails them instead.
pub(super) async fn retried<T, F, Fut>(what: EtcdCall, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let attempt_ends = deadline.min(tokio::time::Instant::now() + ATTEMPT_TIMEOUT);
        let left = || tokio::time::Instant::now() + RETRY < deadline;
        match tokio::time::timeout_at(attempt_ends, call()).await {
            Ok(Ok(answer)) => return Ok(answer.into_inner()),
            Ok(Err(e)) if e.code() == tonic::Code::Unavailable && left() => {
                tokio::time::sleep(RETRY).await;
            }
            Ok(Err(e)) => return Err(classify(what, &e)),
            Err(_) if left() => {}
            Err(_) => return Err(no_answer(what, REQUEST_TIMEOUT)),
        }
    }
}

async fn timed<T>(
    what: EtcdCall,
    call: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(answer) => answer.map_err(|e| classify(what, &e)),
        Err(_) => Err(no_answer(what, REQUEST_TIMEOUT)),
    }
}

fn read_file(path: &std::path::Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| StoreError::Backend(format!("reading {what} {}: {e}", path.display())))
}

/// The end of the key range that starts with `prefix` (etcd's `range_end`).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn revision(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

fn signed(r: u64) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

/// A watch etcd created: its request stream (open as long as the watch
/// is), its responses after the first, and the member serving it.
struct OpenWatch {
    requests: mpsc::UnboundedSender<WatchRequest>,
    responses: tonic::Streaming<WatchResponse>,
    member: u64,
}

/// What a key under the prefix names.
enum Key {
    Object(Kind, ObjectKey),
    Alloc(AllocKey),
    Other,
}

impl Keys {
    fn object(&self, kind: Kind, key: &str) -> Vec<u8> {
        format!("{}/objects/{}/{key}", self.prefix, kind.plural()).into_bytes()
    }

    fn alloc(&self, key: &AllocKey) -> Vec<u8> {
        format!("{}/alloc/{key}", self.prefix).into_bytes()
    }

    fn leader(&self) -> Vec<u8> {
        format!("{}/leader", self.prefix).into_bytes()
    }

    fn parse(&self, raw: &[u8]) -> Key {
        let Ok(text) = std::str::from_utf8(raw) else {
            return Key::Other;
        };
        let Some(rest) = text.strip_prefix(&self.prefix) else {
            return Key::Other;
        };
        if let Some(rest) = rest.strip_prefix("/objects/") {
            let Some((plural, key)) = rest.split_once('/') else {
                return Key::Other;
            };
            return match Kind::ALL.into_iter().find(|k| k.plural() == plural) {
                Some(kind) => Key::Object(kind, key.to_string()),
                None => Key::Other,
            };
        }
        match rest.strip_prefix("/alloc/").map(str::parse) {
            Some(Ok(key)) => Key::Alloc(key),
            _ => Key::Other,
        }
    }

    /// Turns one watch response into committed writes, one per revision.
    fn committed(&self, response: WatchResponse) -> Vec<Committed> {
        let mut out: Vec<Committed> = Vec::new();
        for event in response.events {
            let Some(kv) = event.kv.as_ref() else {
                continue;
            };
            let rev = revision(kv.mod_revision);
            if out.last().map(|c| c.revision) != Some(rev) {
                out.push(Committed {
                    revision: rev,
                    ..Default::default()
                });
            }
            let Some(committed) = out.last_mut() else {
                continue;
            };
            self.add_event(committed, &event);
        }
        out
    }

    fn add_event(&self, committed: &mut Committed, event: &EtcdEvent) {
        let Some(kv) = event.kv.as_ref() else {
            return;
        };
        match (self.parse(&kv.key), is_delete(event)) {
            (Key::Object(kind, key), true) => committed.deletes.push((kind, key)),
            (Key::Object(kind, key), false) => match decode(kind, kv) {
                Ok(obj) => committed.puts.push(Arc::new(obj)),
                Err(e) => tracing::error!(%key, error = %e, "skipping an undecodable object"),
            },
            (Key::Alloc(key), true) => committed.releases.push(key),
            (Key::Alloc(key), false) => committed
                .claims
                .push((key, String::from_utf8_lossy(&kv.value).into_owned())),
            (Key::Other, _) => {}
        }
    }

    /// One watch event as the revision log would have kept it.
    fn logged(&self, event: &EtcdEvent, rev: u64) -> Option<LoggedEvent> {
        let kv = event.kv.as_ref()?;
        let Key::Object(kind, _) = self.parse(&kv.key) else {
            return None;
        };
        let (event_type, source) = match (is_delete(event), event.prev_kv.as_ref()) {
            (true, Some(prev)) => (EventType::Deleted, prev),
            (true, None) => return None,
            // etcd counts a key's versions from 1 at its creation.
            (false, _) => (EventType::of_put(kv.version > 1), kv),
        };
        let object = decode(kind, source).ok()?;
        Some(LoggedEvent {
            revision: rev,
            event_type,
            kind: kind.as_str().to_string(),
            object: object.to_json(),
        })
    }
}

impl EtcdStore {
    /// Connects lazily: the first request dials, each connection to the
    /// member that answered last, then the others.
    pub fn open(cfg: &EtcdConfig) -> Result<Self> {
        let target = Target::parse_all(&cfg.endpoints).map_err(backend)?;
        let tls = if target.is_plaintext() {
            None
        } else {
            Some(client_tls(cfg)?)
        };
        let endpoint = target
            .endpoint()
            .map_err(backend)?
            .connect_timeout(target.dial_deadline())
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = target.lazy_channel(endpoint, tls).map_err(backend)?;
        Ok(Self {
            channel,
            keys: Keys {
                prefix: cfg.prefix.trim_end_matches('/').to_string(),
            },
            failure: Mutex::new(None),
        })
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// Every key under `prefix` at one revision, a page at a time.
    async fn range_all(
        &self,
        prefix: &[u8],
        at: i64,
        mut each: impl FnMut(KeyValue) -> Result<()>,
    ) -> Result<i64> {
        let end = range_end(prefix);
        let mut from = prefix.to_vec();
        let mut at = at;
        loop {
            let request = RangeRequest {
                key: from.clone(),
                range_end: end.clone(),
                limit: PAGE,
                revision: at,
                ..Default::default()
            };
            let page = retried(EtcdCall::RangeRead, || {
                let (mut client, request) = (self.kv(), request.clone());
                async move { client.range(request).await }
            })
            .await?;
            if at == 0 {
                at = page.header.map(|h| h.revision).unwrap_or(0);
            }
            let last = page.kvs.last().map(|kv| kv.key.clone());
            for kv in page.kvs {
                each(kv)?;
            }
            match (page.more, last) {
                (true, Some(mut last)) => {
                    last.push(0);
                    from = last;
                }
                _ => return Ok(at),
            }
        }
    }

    async fn open_watch(&self, from: u64, prev_kv: bool) -> Result<OpenWatch> {
        let prefix = format!("{}/", self.keys.prefix).into_bytes();
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    range_end: range_end(&prefix),
                    key: prefix,
                    start_revision: signed(from),
                    prev_kv,
                    ..Default::default()
                },
            )),
        };
        let (requests, queued) = mpsc::unbounded();
        // The receiver is alive: it is right here.
        let _ = requests.unbounded_send(create);
        let mut client =
            WatchClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX);
        let mut responses = timed(EtcdCall::Watch, client.watch(queued))
            .await?
            .into_inner();
        let first = timed(EtcdCall::Watch, responses.message())
            .await?
            .ok_or_else(|| backend("the watch ended before it started"))?;
        if first.compact_revision > 0 || first.canceled {
            return Err(compacted(from, &first));
        }
        Ok(OpenWatch {
            requests,
            responses,
            member: first.header.map(|h| h.member_id).unwrap_or(0),
        })
    }

    fn record(&self, outcome: &Result<u64>) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(_) | Err(StoreError::Conflict { .. }) => *failure = None,
            Err(e) => *failure = Some(e.to_string()),
        }
    }

    async fn commit_batch(&self, batch: Batch) -> Result<u64> {
        let request = txn_of(&self.keys, &batch);
        let answer = retried(EtcdCall::Write, || {
            let (mut client, request) = (self.kv(), request.clone());
            async move { client.txn(request).await }
        })
        .await?;
        let at = revision(answer.header.map(|h| h.revision).unwrap_or(0));
        if answer.succeeded {
            Ok(at)
        } else {
            Err(StoreError::Conflict { seen: at })
        }
    }

    async fn load_all(&self, visit: &mut Visitor<'_>) -> Result<Loaded> {
        let objects = format!("{}/objects/", self.keys.prefix).into_bytes();
        let at = self
            .range_all(&objects, 0, |kv| match self.keys.parse(&kv.key) {
                Key::Object(kind, key) => {
                    let json = std::str::from_utf8(&kv.value).map_err(|e| StoreError::Corrupt {
                        tree: kind.plural().to_string(),
                        detail: format!("{key}: {e}"),
                    })?;
                    visit(kind, key, json, revision(kv.mod_revision))
                }
                _ => Ok(()),
            })
            .await?;
        let mut allocations = Vec::new();
        let allocs = format!("{}/alloc/", self.keys.prefix).into_bytes();
        self.range_all(&allocs, at, |kv| {
            if let Key::Alloc(key) = self.keys.parse(&kv.key) {
                allocations.push((key, String::from_utf8_lossy(&kv.value).into_owned()));
            }
            Ok(())
        })
        .await?;
        Ok(Loaded {
            revision: revision(at),
            allocations,
        })
    }
}

/// A batch as one etcd transaction: a compare per object on the mod
/// revision it was read at, one per claimed allocation that it is free
/// (unless the same write releases it), the leader fence, then the puts
/// and deletes.
fn txn_of(keys: &Keys, batch: &Batch) -> TxnRequest {
    let mut compares = Vec::new();
    let mut ops = Vec::new();
    for put in &batch.puts {
        let key = keys.object(put.object.kind(), &key_of(&put.object));
        compares.push(mod_revision_is(&key, put.expect));
        let mut object = put.object.clone();
        object.meta_mut().resource_version = None;
        ops.push(put_op(key, object.to_json().into_bytes()));
    }
    for delete in &batch.deletes {
        let key = keys.object(delete.object.kind(), &key_of(&delete.object));
        compares.push(mod_revision_is(&key, delete.expect));
        ops.push(delete_op(key));
    }
    for key in &batch.releases {
        if !batch.claims.iter().any(|(c, _)| c == key) {
            ops.push(delete_op(keys.alloc(key)));
        }
    }
    for (key, owner) in &batch.claims {
        let raw = keys.alloc(key);
        if !batch.releases.contains(key) {
            compares.push(mod_revision_is(&raw, 0));
        }
        ops.push(put_op(raw, owner.clone().into_bytes()));
    }
    if let Some(lease) = batch.fence {
        compares.push(coordination::held_by(keys.leader(), lease));
    }
    TxnRequest {
        compare: compares,
        success: ops,
        failure: Vec::new(),
    }
}

fn is_delete(event: &EtcdEvent) -> bool {
    event.r#type == i32::from(switchyard_api::etcd::event::EventType::Delete)
}

fn compacted(requested: u64, response: &WatchResponse) -> StoreError {
    if response.compact_revision > 0 {
        StoreError::Compacted {
            requested,
            oldest: revision(response.compact_revision),
        }
    } else {
        backend(format!(
            "the watch was cancelled: {}",
            response.cancel_reason
        ))
    }
}

fn client_tls(cfg: &EtcdConfig) -> Result<Arc<rustls::ClientConfig>> {
    let ca_file = cfg
        .ca_file
        .as_deref()
        .ok_or_else(|| backend("an https:// endpoint needs --etcd-cafile"))?;
    let ca = switchyard_tls::pem::certificate(
        read_file(ca_file, "--etcd-cafile")?.as_bytes(),
        "etcd CA",
    )
    .map_err(backend)?;
    let identity = match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => Some(
            ClientIdentity::from_pem(
                &read_file(cert, "--etcd-certfile")?,
                &read_file(key, "--etcd-keyfile")?,
                "etcd client",
            )
            .map_err(backend)?,
        ),
        (None, None) => None,
        _ => return Err(backend("--etcd-certfile and --etcd-keyfile go together")),
    };
    switchyard_tls::client::config(Trust::Ca(ca), identity).map_err(backend)
}

fn decode(kind: Kind, kv: &KeyValue) -> std::result::Result<Object, String> {
    let json = std::str::from_utf8(&kv.value).map_err(|e| e.to_string())?;
    let mut obj = Object::from_json(kind, json).map_err(|e| e.to_string())?;
    obj.meta_mut().resource_version = Some(kv.mod_revision.to_string());
    Ok(obj)
}

fn mod_revision_is(key: &[u8], expect: u64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal.into(),
        target: compare::CompareTarget::Mod.into(),
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(signed(expect))),
        range_end: Vec::new(),
    }
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

fn delete_op(key: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key,
                ..Default::default()
            },
        )),
    }
}

impl Store for EtcdStore {
    fn coordination(self: Arc<Self>) -> Option<Arc<dyn crate::store::coordination::Coordination>> {
        Some(self)
    }

    fn load<'a>(&'a self, visit: &'a mut Visitor<'_>) -> BoxFuture<'a, Result<Loaded>> {
        self.load_all(visit).boxed()
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<u64>> {
        async move {
            let outcome = self.commit_batch(batch).await;
            self.record(&outcome);
            outcome
        }
        .boxed()
    }

    fn watch(&self, after: u64) -> BoxFuture<'_, Result<Watch>> {
        async move {
            let OpenWatch {
                requests,
                responses,
                ..
            } = self.open_watch(after + 1, false).await?;
            let keys = self.keys.clone();
            let watch = responses
                .map(move |item| {
                    // The request stream stays open as long as the watch
                    // does.
                    let _open = &requests;
                    match item {
                        Ok(r) if r.compact_revision > 0 || r.canceled => Err(compacted(after, &r)),
                        Ok(r) => Ok(keys.committed(r)),
                        Err(e) => Err(classify(EtcdCall::Watch, &e)),
                    }
                })
                .flat_map(|item| match item {
                    Ok(batch) => futures::stream::iter(batch.into_iter().map(Ok)).left_stream(),
                    Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
                });
            Ok(watch.boxed())
        }
        .boxed()
    }

    fn failing(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn events_after(&self, after: u64, until: u64) -> BoxFuture<'_, Result<Vec<LoggedEvent>>> {
        self.history(after, until).boxed()
    }

    fn compact(&self, keep_from: u64) -> BoxFuture<'_, Result<()>> {
        async move {
            let request = CompactionRequest {
                revision: signed(keep_from),
                physical: false,
            };
            match retried(EtcdCall::Compaction, || {
                let (mut client, request) = (self.kv(), request);
                async move { client.compact(request).await }
            })
            .await
            {
                // Another control plane compacted as far already.
                Ok(_) | Err(StoreError::Compacted { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_is_the_next_prefix() {
        assert_eq!(range_end(b"/switchyard/"), b"/switchyard0".to_vec());
        assert_eq!(range_end(&[b'a', 0xff]), b"b".to_vec());
    }

    fn keys() -> Keys {
        Keys {
            prefix: "/sy".to_string(),
        }
    }

    fn service_json(name: &str) -> Vec<u8> {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}]},
        })
        .to_string()
        .into_bytes()
    }

    fn kv(key: &str, value: &[u8], rev: i64, version: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: rev - version + 1,
            mod_revision: rev,
            version,
            value: value.to_vec(),
            lease: 0,
        }
    }

    fn put(kv: KeyValue) -> EtcdEvent {
        EtcdEvent {
            r#type: i32::from(switchyard_api::etcd::event::EventType::Put),
            kv: Some(kv),
            prev_kv: None,
        }
    }

    /// A deletion: etcd's tombstone names the key at the deleting revision
    /// (version 0, no value); `prev` is the object before, when asked for.
    fn delete(key: &str, rev: i64, prev: Option<KeyValue>) -> EtcdEvent {
        EtcdEvent {
            r#type: i32::from(switchyard_api::etcd::event::EventType::Delete),
            kv: Some(KeyValue {
                key: key.as_bytes().to_vec(),
                mod_revision: rev,
                ..Default::default()
            }),
            prev_kv: prev,
        }
    }

    #[test]
    fn keys_under_the_prefix_name_objects_and_allocations() {
        let keys = keys();
        assert!(matches!(
            keys.parse(b"/sy/objects/services/default/web"),
            Key::Object(Kind::Service, ref k) if k == "default/web"
        ));
        assert!(matches!(
            keys.parse(b"/sy/alloc/nodeport/30080"),
            Key::Alloc(AllocKey::NodePort(30080))
        ));
        for other in [
            &b"/sy/controlplanes/cp-1"[..],
            b"/sy/leader",
            b"/sy/objects/nothings/x",
            b"/sy/alloc/bogus",
            b"/other/objects/services/default/web",
            b"\xff\xfe",
        ] {
            assert!(matches!(keys.parse(other), Key::Other), "{other:?}");
        }
        assert_eq!(
            keys.object(Kind::Service, "default/web"),
            b"/sy/objects/services/default/web".to_vec()
        );
        assert_eq!(
            keys.alloc(&AllocKey::NodePort(30080)),
            b"/sy/alloc/nodeport/30080".to_vec()
        );
    }

    /// One watch response may hold several writes: each becomes one
    /// commit at its revision, with its objects stamped with it, its
    /// deletions, claims and releases.
    #[test]
    fn a_watch_response_becomes_one_commit_per_revision() {
        let response = WatchResponse {
            events: vec![
                put(kv(
                    "/sy/objects/services/default/web",
                    &service_json("web"),
                    7,
                    1,
                )),
                put(kv("/sy/alloc/nodeport/30080", b"default/web", 7, 1)),
                delete("/sy/objects/services/default/old", 8, None),
                delete("/sy/alloc/nodeport/30081", 8, None),
                put(kv("/sy/controlplanes/cp-1", b"{}", 9, 3)),
            ],
            ..Default::default()
        };
        let commits = keys().committed(response);
        let revisions: Vec<u64> = commits.iter().map(|c| c.revision).collect();
        assert_eq!(revisions, vec![7, 8, 9]);
        let (first, second, third) = (&commits[0], &commits[1], &commits[2]);
        assert_eq!(first.puts.len(), 1);
        assert_eq!(first.puts[0].name(), "web");
        assert_eq!(first.puts[0].meta().resource_version.as_deref(), Some("7"));
        assert_eq!(
            first.claims,
            vec![(AllocKey::NodePort(30080), "default/web".to_string())]
        );
        assert_eq!(
            second.deletes,
            vec![(Kind::Service, "default/old".to_string())]
        );
        assert_eq!(second.releases, vec![AllocKey::NodePort(30081)]);
        // A member's record is no object: its revision still passes, empty.
        assert!(third.puts.is_empty() && third.deletes.is_empty() && third.claims.is_empty());
    }

    #[test]
    fn an_undecodable_object_is_skipped_not_fatal() {
        let response = WatchResponse {
            events: vec![
                put(kv("/sy/objects/services/default/bad", b"{not json", 7, 1)),
                put(kv(
                    "/sy/objects/services/default/web",
                    &service_json("web"),
                    7,
                    1,
                )),
            ],
            ..Default::default()
        };
        let commits = keys().committed(response);
        assert_eq!(commits.len(), 1);
        assert_eq!(commits[0].puts.len(), 1);
    }

    /// History entries: ADDED for a first version, MODIFIED after, DELETED
    /// with the object as it was (from prev_kv); nothing for what is no
    /// object, or a deletion whose previous value etcd no longer has.
    #[test]
    fn watch_events_become_the_logs_events() {
        let keys = keys();
        let logged = |event: &EtcdEvent| {
            let rev = revision(event.kv.as_ref().map(|kv| kv.mod_revision).unwrap_or(0));
            keys.logged(event, rev)
        };
        let added = logged(&put(kv(
            "/sy/objects/services/default/web",
            &service_json("web"),
            7,
            1,
        )))
        .unwrap();
        assert_eq!((added.revision, added.event_type), (7, EventType::Added));
        assert_eq!(added.kind, "Service");
        let object: serde_json::Value = serde_json::from_str(&added.object).unwrap();
        assert_eq!(object["metadata"]["resourceVersion"], "7");

        let modified = logged(&put(kv(
            "/sy/objects/services/default/web",
            &service_json("web"),
            9,
            2,
        )))
        .unwrap();
        assert_eq!(modified.event_type, EventType::Modified);

        let prev = kv(
            "/sy/objects/services/default/web",
            &service_json("web"),
            9,
            2,
        );
        let deleted = logged(&delete("/sy/objects/services/default/web", 11, Some(prev))).unwrap();
        assert_eq!(
            (deleted.revision, deleted.event_type),
            (11, EventType::Deleted)
        );
        let object: serde_json::Value = serde_json::from_str(&deleted.object).unwrap();
        assert_eq!(object["metadata"]["name"], "web");

        assert!(logged(&delete("/sy/objects/services/default/web", 11, None)).is_none());
        assert!(logged(&put(kv("/sy/alloc/nodeport/30080", b"default/web", 7, 1))).is_none());
        assert!(logged(&put(kv("/sy/controlplanes/cp-1", b"{}", 7, 1))).is_none());
    }

    #[test]
    fn a_compacted_watch_says_from_where_and_a_cancelled_one_why() {
        let compacted_at = WatchResponse {
            canceled: true,
            compact_revision: 40,
            ..Default::default()
        };
        assert!(matches!(
            compacted(12, &compacted_at),
            StoreError::Compacted {
                requested: 12,
                oldest: 40
            }
        ));
        let cancelled = WatchResponse {
            canceled: true,
            cancel_reason: "permission denied".into(),
            ..Default::default()
        };
        assert_eq!(
            compacted(12, &cancelled).to_string(),
            "storage: etcd: the watch was cancelled: permission denied"
        );
    }

    /// A write is one transaction: a compare per object on the revision it
    /// was read at, one per claimed allocation that it is free (unless the
    /// same write releases it), the leader fence, then the operations.
    #[test]
    fn a_batch_is_one_guarded_transaction() {
        let web: Object = Object::from_json(
            Kind::Service,
            std::str::from_utf8(&service_json("web")).unwrap(),
        )
        .unwrap();
        let old: Object = Object::from_json(
            Kind::Service,
            std::str::from_utf8(&service_json("old")).unwrap(),
        )
        .unwrap();
        let batch = Batch {
            puts: vec![super::super::Put {
                object: web,
                expect: 5,
            }],
            deletes: vec![super::super::Delete {
                object: old,
                expect: 6,
            }],
            claims: vec![
                (AllocKey::NodePort(30080), "default/web".into()),
                (AllocKey::NodePort(30081), "default/web".into()),
            ],
            releases: vec![AllocKey::NodePort(30081), AllocKey::NodePort(30082)],
            fence: Some(42),
        };
        let keys = keys();
        let txn = txn_of(&keys, &batch);
        let compares: Vec<(Vec<u8>, Option<compare::TargetUnion>)> = txn
            .compare
            .iter()
            .cloned()
            .map(|c| (c.key, c.target_union))
            .collect();
        assert_eq!(
            compares,
            vec![
                (
                    b"/sy/objects/services/default/web".to_vec(),
                    Some(compare::TargetUnion::ModRevision(5))
                ),
                (
                    b"/sy/objects/services/default/old".to_vec(),
                    Some(compare::TargetUnion::ModRevision(6))
                ),
                (
                    b"/sy/alloc/nodeport/30080".to_vec(),
                    Some(compare::TargetUnion::ModRevision(0))
                ),
                (
                    b"/sy/leader".to_vec(),
                    Some(compare::TargetUnion::Lease(42))
                ),
            ]
        );
        let ops: Vec<(&str, Vec<u8>)> = txn
            .success
            .iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => ("put", p.key.clone()),
                Some(request_op::Request::RequestDeleteRange(d)) => ("delete", d.key.clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                ("put", b"/sy/objects/services/default/web".to_vec()),
                ("delete", b"/sy/objects/services/default/old".to_vec()),
                ("delete", b"/sy/alloc/nodeport/30082".to_vec()),
                ("put", b"/sy/alloc/nodeport/30080".to_vec()),
                ("put", b"/sy/alloc/nodeport/30081".to_vec()),
            ]
        );
        // The stored JSON leaves the resourceVersion to etcd's mod revision.
        let Some(request_op::Request::RequestPut(stored)) = &txn.success[0].request else {
            panic!("not a put");
        };
        let json: serde_json::Value = serde_json::from_slice(&stored.value).unwrap();
        assert!(json["metadata"].get("resourceVersion").is_none(), "{json}");
    }
}
