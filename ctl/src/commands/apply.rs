use futures::StreamExt;
use switchyard_api::v1::ApplyOutcome;
use tokio_stream::wrappers::ReceiverStream;

use super::qualified_name;
use crate::cli::{ApplyArgs, FieldValidation};
use crate::client::Client;
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
    Refused(String),
    /// The manifest itself is broken; nothing after it is read.
    Unreadable(ManifestError),
}

/// Sends every object of the manifests as they are read, [`IN_FLIGHT`] at
/// a time, and reports each in the order the manifests give them.
pub async fn run(client: &mut Client, namespace: &str, args: &ApplyArgs) -> anyhow::Result<bool> {
    let validate = args.validate;
    let sends = ReceiverStream::new(stream_inputs(&args.files)).map(|item| {
        let mut client = client.clone();
        async move {
            let m = match item {
                Ok(m) => m,
                Err(e) => return Reported::Unreadable(e),
            };
            let warnings = match (validate, m.unknown_fields.is_empty()) {
                (_, true) | (FieldValidation::Ignore, _) => Vec::new(),
                (FieldValidation::Strict, false) => return Reported::Refused(strict_error(&m)),
                (FieldValidation::Warn, false) => m
                    .unknown_fields
                    .iter()
                    .map(|f| format!("Warning: unknown field \"{f}\""))
                    .collect(),
            };
            let kind = m.kind;
            let json = with_namespace(m, namespace).to_string();
            match client.apply(kind, json, false).await {
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
                Err(e) => Reported::Refused(e.to_string()),
            }
        }
    });
    let mut reports = sends.buffered(IN_FLIGHT);
    let mut ok = true;
    while let Some(report) = reports.next().await {
        match report {
            Reported::Applied { line, warnings } => {
                for warning in warnings {
                    eprintln!("{warning}");
                }
                println!("{line}");
            }
            Reported::Refused(line) => {
                eprintln!("{line}");
                ok = false;
            }
            Reported::Unreadable(e) => return Err(e.into()),
        }
    }
    Ok(ok)
}

/// kubectl's words for an object strict field validation refuses.
fn strict_error(m: &Manifest) -> String {
    let fields: Vec<String> = m
        .unknown_fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    format!(
        "error when applying \"{}\": {kind} in version \"{}\" cannot be handled as a {kind}: strict decoding error: {}",
        m.source,
        m.kind.api_version(),
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
