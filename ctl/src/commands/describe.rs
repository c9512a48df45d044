use anyhow::bail;
use switchyard_api::resources::{Kind, Object, SERVICE_NAME_LABEL};

use super::parse_kind;
use crate::cli::DescribeArgs;
use crate::client::{Client, Scope};
use crate::output::{describe_deployment, describe_node, describe_pod, describe_service};

pub async fn run(
    client: &mut Client,
    namespace: &str,
    args: &DescribeArgs,
) -> anyhow::Result<bool> {
    let (kind, name) = match (super::split_kind_name(&args.kind), &args.name) {
        (Some((k, n)), None) => (parse_kind(k)?, Some(n.to_string())),
        (_, name) => (parse_kind(&args.kind)?, name.clone()),
    };
    let objects = match &name {
        Some(n) => vec![client.get(kind, namespace, n).await?],
        None => {
            let scope = Scope {
                namespace: namespace.to_string(),
                ..Default::default()
            };
            client.list(kind, &scope).await?.0
        }
    };
    let mut texts = Vec::new();
    for obj in &objects {
        texts.push(describe(client, obj).await?);
    }
    print!("{}", texts.join("\n\n"));
    Ok(true)
}

async fn describe(client: &mut Client, obj: &Object) -> anyhow::Result<String> {
    Ok(match obj {
        Object::Service(svc) => {
            let scope = Scope {
                namespace: obj.namespace().to_string(),
                selector: format!("{SERVICE_NAME_LABEL}={}", svc.metadata.name),
                ..Default::default()
            };
            let slices = client
                .list(Kind::EndpointSlice, &scope)
                .await?
                .0
                .into_iter()
                .filter_map(|o| match o {
                    Object::EndpointSlice(s) => Some(*s),
                    _ => None,
                })
                .collect::<Vec<_>>();
            describe_service(svc, &slices)
        }
        Object::Pod(pod) => describe_pod(pod),
        Object::Deployment(d) => describe_deployment(d),
        Object::Node(n) => describe_node(n),
        other => bail!("describe is not supported for {}", other.kind().plural()),
    })
}
