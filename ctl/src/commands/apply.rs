//! `swctl apply -f`: every object of the manifests, in their order, as
//! `kubectl apply` applies them — with several in flight at once where the
//! order cannot matter.

use std::future::Future;

use futures::stream::FuturesOrdered;
use futures::StreamExt;
use switchyard_api::resources::Kind;
use switchyard_api::v1::ApplyOutcome;
use tonic::{Code, Status};

use super::qualified_name;
use crate::cli::{ApplyArgs, FieldValidation};
use crate::client::{Client, ClientError};
use crate::manifest::{stream_inputs, Manifest, ManifestError};

/// Objects being sent at once: enough to keep the API's writers busy (a
/// write is a durable commit, so one at a time leaves it idle most of the
/// time), few enough to stay polite to a shared control plane.
const IN_FLIGHT: usize = 32;

/// One object's outcome, as kubectl prints it.
enum Reported {
    /// Printed on stdout after its warnings on stderr.
    Applied {
        line: String,
        warnings: Vec<String>,
    },
    Refused(Refusal),
    /// The manifest itself is broken; nothing after it is read.
    Unreadable(ManifestError),
}

/// An object the server (or strict field validation) refused. kubectl
/// prints its errors once every object was tried, and words a lone
/// validation failure differently from one among several, so refusals
/// wait for the end.
struct Refusal {
    error: ClientError,
    /// kubectl's words for what it was doing with which file (its
    /// `AddSourceToErr`): `error when creating "web.yaml"`.
    context: String,
}

/// Sends every object of the manifests as they are read and reports each
/// in the order the manifests give them, then the refusals.
///
/// Up to [`IN_FLIGHT`] objects are sent at once, except around a
/// cluster-scoped object ([`is_barrier`]): it is sent once every object
/// before it was applied, and the objects after it wait until it was.
pub async fn run(client: &mut Client, namespace: &str, args: &ApplyArgs) -> anyhow::Result<bool> {
    let mut inputs = stream_inputs(&args.files);
    let mut sending = FuturesOrdered::new();
    let mut reports = Reports::default();
    // The stream ends with its first unreadable document, so nothing is
    // left in flight behind one.
    let read = async {
        while let Some(item) = inputs.recv().await {
            let barrier = matches!(&item, Ok(m) if is_barrier(m.kind));
            if barrier {
                reports.settle(&mut sending, 0).await?;
            }
            sending.push_back(send(client.clone(), item, namespace, args.validate));
            let keep = if barrier { 0 } else { IN_FLIGHT - 1 };
            reports.settle(&mut sending, keep).await?;
        }
        reports.settle(&mut sending, 0).await
    };
    let unreadable = read.await.err();
    let alone = reports.refusals.len() == 1 && unreadable.is_none();
    for refusal in &reports.refusals {
        eprintln!("{}", refusal.error.with_source(&refusal.context, alone));
    }
    match unreadable {
        Some(e) => Err(e.into()),
        None => Ok(reports.refusals.is_empty()),
    }
}

/// What was reported so far: applied objects are printed at once,
/// refusals kept for the end.
#[derive(Default)]
struct Reports {
    refusals: Vec<Refusal>,
}

impl Reports {
    /// Reports the objects in flight, oldest first, until at most `keep`
    /// are left; an unreadable document ends the command.
    async fn settle<F: Future<Output = Reported>>(
        &mut self,
        sending: &mut FuturesOrdered<F>,
        keep: usize,
    ) -> Result<(), ManifestError> {
        while sending.len() > keep {
            match sending.next().await {
                Some(Reported::Applied { line, warnings }) => {
                    for warning in warnings {
                        eprintln!("{warning}");
                    }
                    println!("{line}");
                }
                Some(Reported::Refused(refusal)) => self.refusals.push(refusal),
                Some(Reported::Unreadable(e)) => return Err(e),
                None => break,
            }
        }
        Ok(())
    }
}

/// Whether later objects of a manifest may need this one to exist: a
/// Namespace holds the objects after it, and so may any cluster-scoped
/// object (a Node their pods name). Namespaced objects never do — a Pod
/// needs no Deployment or Service before it — so they go concurrently.
fn is_barrier(kind: Kind) -> bool {
    !kind.is_namespaced()
}

/// Applies one object (or reports why it is not sent).
async fn send(
    mut client: Client,
    item: Result<Manifest, ManifestError>,
    namespace: &str,
    validate: FieldValidation,
) -> Reported {
    let m = match item {
        Ok(m) => m,
        Err(e) => return Reported::Unreadable(e),
    };
    let target = Target::of(&m, namespace);
    let warnings = match (validate, m.unknown_fields.is_empty()) {
        (_, true) | (FieldValidation::Ignore, _) => Vec::new(),
        (FieldValidation::Strict, false) => {
            let refused = ClientError::Server(Status::invalid_argument(strict_error(&m)));
            let sent = with_namespace(m, namespace).to_string();
            return Reported::Refused(target.refusal(&mut client, refused, &sent).await);
        }
        (FieldValidation::Warn, false) => m
            .unknown_fields
            .iter()
            .map(|f| format!("Warning: unknown field \"{f}\""))
            .collect(),
    };
    let json = with_namespace(m, namespace).to_string();
    match client.apply(target.kind, json.clone(), false).await {
        Ok((obj, outcome)) => {
            let verb = match outcome {
                ApplyOutcome::Created => "created",
                ApplyOutcome::Unchanged => "unchanged",
                ApplyOutcome::Configured | ApplyOutcome::Unspecified => "configured",
            };
            Reported::Applied {
                line: format!("{} {verb}", qualified_name(&obj)),
                warnings,
            }
        }
        Err(e) => Reported::Refused(target.refusal(&mut client, e, &json).await),
    }
}

/// The object a manifest names, and the file it came from.
struct Target {
    kind: Kind,
    namespace: String,
    name: String,
    source: String,
}

impl Target {
    fn of(m: &Manifest, namespace: &str) -> Target {
        let meta = |field: &str| {
            m.value["metadata"][field]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Target {
            kind: m.kind,
            namespace: match m.kind.is_namespaced() {
                true => meta("namespace").unwrap_or_else(|| namespace.to_string()),
                false => String::new(),
            },
            name: meta("name").unwrap_or_default(),
            source: m.source.clone(),
        }
    }

    /// `error` in kubectl's words for what it was doing: kubectl reads an
    /// object before writing it, then creates it (`error when creating
    /// "web.yaml"`) or patches the one it found (`error when applying
    /// patch: …`), or fails reading it. Asked only after a refusal, so an
    /// object applied costs one call.
    async fn refusal(&self, client: &mut Client, error: ClientError, sent: &str) -> Refusal {
        let source = &self.source;
        let exists = match self.name.as_str() {
            "" => Ok(false),
            name => match client.get(self.kind, &self.namespace, name).await {
                Ok(_) => Ok(true),
                Err(e) if e.code() == Some(Code::NotFound) => Ok(false),
                Err(e) => Err(e),
            },
        };
        match exists {
            Ok(false) => Refusal {
                error,
                context: format!("error when creating \"{source}\""),
            },
            Ok(true) => Refusal {
                error,
                context: format!(
                    "error when applying patch:\n{sent}\nto:\n{}\nfor: \"{source}\": error when patching \"{source}\"",
                    self.info()
                ),
            },
            Err(read) => Refusal {
                error: read,
                context: format!(
                    "error when retrieving current configuration of:\n{}\nfrom server for: \"{source}\"",
                    self.info()
                ),
            },
        }
    }

    /// How kubectl names an object in those messages (its `resource.Info`).
    fn info(&self) -> String {
        let version = self.kind.api_version();
        let group_version = match version.contains('/') {
            true => version.to_string(),
            false => format!("/{version}"),
        };
        format!(
            "Resource: \"{group_version}, Resource={}\", GroupVersionKind: \"{group_version}, Kind={}\"\nName: \"{}\", Namespace: \"{}\"",
            self.kind.plural(),
            self.kind,
            self.name,
            self.namespace,
        )
    }
}

/// The API server's words (a BadRequest) for an object strict field
/// validation refuses; the version is without its group, as its decoder
/// says it.
fn strict_error(m: &Manifest) -> String {
    let fields: Vec<String> = m
        .unknown_fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    let api_version = m.kind.api_version();
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", "),
        kind = m.kind,
    )
}

/// Objects without a namespace go to the one given with `-n`.
pub fn with_namespace(m: Manifest, namespace: &str) -> serde_json::Value {
    let mut value = m.value;
    if m.kind.is_namespaced() {
        if let Some(meta) = value.get_mut("metadata").and_then(|v| v.as_object_mut()) {
            let missing = meta
                .get("namespace")
                .and_then(|v| v.as_str())
                .is_none_or(str::is_empty);
            if missing {
                meta.insert("namespace".to_string(), namespace.into());
            }
        }
    }
    value
}
