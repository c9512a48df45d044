use switchyard_api::v1::ApplyOutcome;

use super::qualified_name;
use crate::cli::ApplyArgs;
use crate::client::Client;
use crate::manifest::{read_inputs, Manifest};

/// Sends every manifest, reporting each object as kubectl does.
pub async fn run(client: &mut Client, namespace: &str, args: &ApplyArgs) -> anyhow::Result<bool> {
    let manifests = read_inputs(&args.files)?;
    let mut ok = true;
    for m in manifests {
        let kind = m.kind;
        let json = with_namespace(m, namespace).to_string();
        match client.apply(kind, json, false).await {
            Ok((obj, outcome)) => {
                let verb = match outcome {
                    ApplyOutcome::Created => "created",
                    ApplyOutcome::Unchanged => "unchanged",
                    ApplyOutcome::Configured | ApplyOutcome::Unspecified => "configured",
                };
                println!("{} {verb}", qualified_name(&obj));
            }
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    Ok(ok)
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
