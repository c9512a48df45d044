use anyhow::bail;
use switchyard_api::resources::Kind;
use tonic::Code;

use super::{parse_kind, split_kind_name};
use crate::cli::DeleteArgs;
use crate::client::Client;
use crate::manifest::read_inputs;

pub async fn run(client: &mut Client, namespace: &str, args: &DeleteArgs) -> anyhow::Result<bool> {
    let targets = targets(namespace, args)?;
    let mut ok = true;
    for (kind, ns, name) in targets {
        match client.delete(kind, &ns, &name).await {
            Ok(obj) => println!("{} \"{}\" deleted", kind.singular(), obj.name()),
            Err(e) if args.ignore_not_found && e.code() == Some(Code::NotFound) => {}
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

fn targets(namespace: &str, args: &DeleteArgs) -> anyhow::Result<Vec<(Kind, String, String)>> {
    if !args.files.is_empty() {
        return Ok(read_inputs(&args.files)?
            .into_iter()
            .map(|m| {
                let meta = m.value.get("metadata");
                let field = |f: &str| {
                    meta.and_then(|v| v.get(f))
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                let ns = Some(field("namespace"))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| namespace.to_string());
                (m.kind, ns, field("name"))
            })
            .collect());
    }
    let Some(first) = args.args.first() else {
        bail!("You must provide one or more resources by argument or filename.");
    };
    if split_kind_name(first).is_some() {
        return args
            .args
            .iter()
            .map(|a| {
                let (k, n) = split_kind_name(a).ok_or_else(|| anyhow::anyhow!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"))?;
                Ok((parse_kind(k)?, namespace.to_string(), n.to_string()))
            })
            .collect();
    }
    let kind = parse_kind(first)?;
    if args.args.len() < 2 {
        bail!("resource(s) were provided, but no name was specified");
    }
    Ok(args.args[1..]
        .iter()
        .map(|n| (kind, namespace.to_string(), n.clone()))
        .collect())
}
