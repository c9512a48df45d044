//! `swctl get`: tables, `-o wide|yaml|json|name`, and `-w`.

use anyhow::bail;
use chrono::Utc;
use switchyard_api::resources::{EndpointSlice, Kind, Object, Service};
use switchyard_api::v1::WatchEvent;

use super::{parse_kind, qualified_name, split_kind_name};
use crate::cli::{GetArgs, OutputFormat};
use crate::client::{decode, Client, Scope};
use crate::output::{
    print_control_planes, print_endpoints, print_table, to_json, to_yaml, TableOptions,
    WatchPrinter,
};

/// A kind as `get` understands it: stored kinds plus the Endpoints view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Stored(Kind),
    Endpoints,
}

fn parse_target(s: &str) -> anyhow::Result<Target> {
    match s.to_ascii_lowercase().as_str() {
        "ep" | "endpoints" | "endpoint" => Ok(Target::Endpoints),
        other => Ok(Target::Stored(parse_kind(other)?)),
    }
}

/// What one `get` asked for: each target with the names requested (none = all).
fn requests(args: &GetArgs) -> anyhow::Result<Vec<(Target, Vec<String>)>> {
    if split_kind_name(&args.kinds).is_some() {
        let all = std::iter::once(&args.kinds).chain(&args.names);
        return all
            .map(|a| {
                let (k, n) = split_kind_name(a).ok_or_else(|| {
                    anyhow::anyhow!(
                        "arguments in resource/name form must have a single resource and name"
                    )
                })?;
                Ok((parse_target(k)?, vec![n.to_string()]))
            })
            .collect();
    }
    args.kinds
        .split(',')
        .filter(|k| !k.is_empty())
        .flat_map(|k| match k {
            // kubectl's `all` category, as far as Switchyard has those kinds.
            "all" => vec!["pods", "services", "deployments"],
            other => vec![other],
        })
        .map(|k| Ok((parse_target(k)?, args.names.clone())))
        .collect()
}

/// Names `get` takes for the control planes of the cluster.
const CONTROL_PLANES: [&str; 3] = ["controlplanes", "controlplane", "cp"];

pub async fn run(client: &mut Client, namespace: &str, args: &GetArgs) -> anyhow::Result<bool> {
    if CONTROL_PLANES.contains(&args.kinds.to_ascii_lowercase().as_str()) {
        return control_planes(client, args).await;
    }
    let requests = requests(args)?;
    let scope = Scope {
        namespace: namespace.to_string(),
        all_namespaces: args.all_namespaces,
        selector: args.selector.clone().unwrap_or_default(),
    };
    if args.watch {
        let [(Target::Stored(kind), names)] = requests.as_slice() else {
            bail!("you may only specify a single resource type to watch");
        };
        return watch(client, *kind, names, &scope, args).await;
    }
    let several_kinds = requests.len() > 1;
    let structured = matches!(args.output, Some(OutputFormat::Yaml | OutputFormat::Json));
    let mut ok = true;
    let mut tables = Vec::new();
    let mut documents = Vec::new();
    let mut found = 0;
    for (target, names) in &requests {
        let (objects, all_found) = fetch(client, *target, names, &scope).await?;
        ok &= all_found;
        found += objects.len();
        if objects.is_empty() {
            continue;
        }
        if structured {
            documents.extend(as_documents(client, *target, objects, &scope).await?);
        } else {
            tables.push(render(client, *target, &objects, &scope, args, several_kinds).await?);
        }
    }
    if structured && !documents.is_empty() {
        // kubectl prints a bare object only for one object asked for by name.
        let as_list = !matches!(requests.as_slice(), [(_, names)] if names.len() == 1);
        let text = match args.output {
            Some(OutputFormat::Yaml) => to_yaml(&documents, as_list)?,
            _ => to_json(&documents, as_list)?,
        };
        print!("{text}");
    }
    let separator = if args.output == Some(OutputFormat::Name) {
        ""
    } else {
        "\n"
    };
    print!("{}", tables.join(separator));
    if found == 0 && ok && requests.iter().all(|(_, n)| n.is_empty()) {
        eprintln!("{}", no_resources(&scope));
    }
    Ok(ok)
}

/// What `-o yaml|json` shows: the objects, or for the Endpoints view the
/// EndpointSlices behind it.
async fn as_documents(
    client: &mut Client,
    target: Target,
    objects: Vec<Object>,
    scope: &Scope,
) -> anyhow::Result<Vec<Object>> {
    if target != Target::Endpoints {
        return Ok(objects);
    }
    let slices = slices_for(client, &objects, scope).await?;
    Ok(slices
        .into_iter()
        .map(|s| Object::EndpointSlice(Box::new(s)))
        .collect())
}

fn no_resources(scope: &Scope) -> String {
    if scope.all_namespaces {
        "No resources found".to_string()
    } else {
        format!("No resources found in {} namespace.", scope.namespace)
    }
}

/// The objects to show: Services for the Endpoints view, whose rows derive from them.
async fn fetch(
    client: &mut Client,
    target: Target,
    names: &[String],
    scope: &Scope,
) -> anyhow::Result<(Vec<Object>, bool)> {
    let kind = match target {
        Target::Stored(k) => k,
        Target::Endpoints => Kind::Service,
    };
    if names.is_empty() {
        return Ok((client.list(kind, scope).await?.0, true));
    }
    let mut ok = true;
    let mut objects = Vec::new();
    for name in names {
        match client.get(kind, &scope.namespace, name).await {
            Ok(o) => objects.push(o),
            Err(e) => {
                let msg = e.to_string();
                // The Endpoints view is named after the Service it shows.
                let msg = if target == Target::Endpoints {
                    msg.replace("services \"", "endpoints \"")
                } else {
                    msg
                };
                eprintln!("{msg}");
                ok = false;
            }
        }
    }
    Ok((objects, ok))
}

async fn render(
    client: &mut Client,
    target: Target,
    objects: &[Object],
    scope: &Scope,
    args: &GetArgs,
    several_kinds: bool,
) -> anyhow::Result<String> {
    let opts = TableOptions {
        wide: args.output == Some(OutputFormat::Wide),
        all_namespaces: args.all_namespaces,
        with_kind_prefix: several_kinds,
        no_headers: args.no_headers,
        show_labels: args.show_labels,
    };
    let now = Utc::now();
    if target == Target::Endpoints {
        let slices = slices_for(client, objects, scope).await?;
        return Ok(match args.output {
            Some(OutputFormat::Name) => objects
                .iter()
                .map(|o| format!("endpoints/{}\n", o.name()))
                .collect(),
            _ => print_endpoints(&services(objects), &slices, &opts, now),
        });
    }
    Ok(match args.output {
        Some(OutputFormat::Name) => objects
            .iter()
            .map(|o| format!("{}\n", qualified_name(o)))
            .collect(),
        _ => print_table(objects, &opts, now),
    })
}

fn services(objects: &[Object]) -> Vec<Service> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::Service(s) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

async fn slices_for(
    client: &mut Client,
    services: &[Object],
    scope: &Scope,
) -> anyhow::Result<Vec<EndpointSlice>> {
    let all = Scope {
        selector: String::new(),
        ..scope.clone()
    };
    let (slices, _) = client.list(Kind::EndpointSlice, &all).await?;
    Ok(slices
        .into_iter()
        .filter_map(|o| match o {
            Object::EndpointSlice(s) => Some(*s),
            _ => None,
        })
        .filter(|s| {
            services.iter().any(|svc| {
                svc.namespace() == s.metadata.namespace.as_deref().unwrap_or("")
                    && s.service_name() == Some(svc.name())
            })
        })
        .collect())
}

/// Lists, prints, then follows changes until interrupted.
async fn watch(
    client: &mut Client,
    kind: Kind,
    names: &[String],
    scope: &Scope,
    args: &GetArgs,
) -> anyhow::Result<bool> {
    let opts = TableOptions {
        wide: args.output == Some(OutputFormat::Wide),
        all_namespaces: args.all_namespaces,
        with_kind_prefix: false,
        no_headers: args.no_headers,
        show_labels: args.show_labels,
    };
    let wanted = |o: &Object| names.is_empty() || names.iter().any(|n| n == o.name());
    let (objects, revision) = client.list(kind, scope).await?;
    let objects: Vec<Object> = objects.into_iter().filter(|o| wanted(o)).collect();
    let mut out = WatchOutput {
        format: args.output,
        table: WatchPrinter::new(opts),
        printed: false,
    };
    print_flush(&out.show(&objects)?);
    let mut stream = client.watch(kind, scope, revision).await?;
    while let Some(event) = stream
        .message()
        .await
        .map_err(crate::client::ClientError::Server)?
    {
        if let Some(obj) = event_object(&event)? {
            if wanted(&obj) {
                print_flush(&out.show(&[obj])?);
            }
        }
    }
    Ok(true)
}

/// What `get -w` prints per object, as kubectl does: table rows, names,
/// or each object as a YAML document (`---` between) or a JSON object.
struct WatchOutput {
    format: Option<OutputFormat>,
    table: WatchPrinter,
    printed: bool,
}

impl WatchOutput {
    fn show(&mut self, objects: &[Object]) -> anyhow::Result<String> {
        if matches!(self.format, Some(OutputFormat::Wide) | None) {
            // The whole first batch at once: it sizes the columns.
            return Ok(self.table.print(objects, Utc::now()));
        }
        let mut text = String::new();
        for o in objects {
            let one = std::slice::from_ref(o);
            match self.format {
                Some(OutputFormat::Yaml) => {
                    if self.printed {
                        text.push_str("---\n");
                    }
                    text.push_str(&to_yaml(one, false)?);
                }
                Some(OutputFormat::Json) => text.push_str(&to_json(one, false)?),
                _ => text.push_str(&format!("{}\n", qualified_name(o))),
            }
            self.printed = true;
        }
        Ok(text)
    }
}

fn event_object(event: &WatchEvent) -> anyhow::Result<Option<Object>> {
    Ok(match &event.resource {
        Some(r) => Some(decode(r)?),
        None => None,
    })
}

fn print_flush(s: &str) {
    use std::io::Write;
    print!("{s}");
    let _ = std::io::stdout().flush();
}

/// `get controlplanes`: a table, or the records as JSON or YAML.
async fn control_planes(client: &mut Client, args: &GetArgs) -> anyhow::Result<bool> {
    let mut rows = client.control_planes().await?;
    if !args.names.is_empty() {
        rows.retain(|cp| args.names.contains(&cp.name));
    }
    let records: Vec<serde_json::Value> = rows
        .iter()
        .map(|cp| {
            serde_json::json!({
                "name": cp.name,
                "address": cp.address,
                "leader": cp.leader,
                "revision": cp.revision,
                "agents": cp.agents,
                "started": cp.started,
            })
        })
        .collect();
    match args.output {
        Some(OutputFormat::Json) => println!("{}", serde_json::to_string_pretty(&records)?),
        Some(OutputFormat::Yaml) => print!("{}", serde_saphyr::to_string(&records)?),
        Some(OutputFormat::Name) => rows
            .iter()
            .for_each(|cp| println!("controlplane/{}", cp.name)),
        _ => print!(
            "{}",
            print_control_planes(&rows, args.no_headers, Utc::now())
        ),
    }
    Ok(true)
}
