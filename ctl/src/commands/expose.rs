//! `swctl expose deploy|pod NAME`: a Service selecting the same pods.

use anyhow::bail;
use switchyard_api::resources::{
    IntOrString, Kind, Labels, Object, ObjectMeta, Service, ServicePort, ServiceSpec,
};

use super::{parse_kind, split_kind_name};
use crate::cli::ExposeArgs;
use crate::client::Client;

pub async fn run(client: &mut Client, namespace: &str, args: &ExposeArgs) -> anyhow::Result<bool> {
    let (kind, name) = match (split_kind_name(&args.kind), &args.target) {
        (Some((k, n)), None) => (parse_kind(k)?, n.to_string()),
        (_, Some(n)) => (parse_kind(&args.kind)?, n.clone()),
        (None, None) => bail!("you must provide a name to expose"),
    };
    let source = client.get(kind, namespace, &name).await?;
    let (selector, labels) = selector_of(&source)?;
    let svc = service(namespace, args, &name, selector, labels)?;
    let (created, _) = client
        .apply(
            Kind::Service,
            Object::Service(Box::new(svc)).with_type_meta().to_json(),
            true,
        )
        .await?;
    println!("service/{} exposed", created.name());
    Ok(true)
}

type LabelMap = Labels;

/// kubectl's introspection: a Deployment's matchLabels, or a Pod's labels.
fn selector_of(obj: &Object) -> anyhow::Result<(LabelMap, LabelMap)> {
    match obj {
        Object::Deployment(d) => {
            if !d.spec.selector.match_expressions.is_empty() {
                bail!("couldn't retrieve selectors via --selector flag or introspection: the deployment's selector uses matchExpressions, which a Service cannot express");
            }
            Ok((
                d.spec.selector.match_labels.clone(),
                d.metadata.labels.clone(),
            ))
        }
        Object::Pod(p) if p.metadata.labels.is_empty() => {
            bail!("couldn't retrieve selectors via --selector flag or introspection: the pod has no labels and cannot be exposed")
        }
        Object::Pod(p) => Ok((p.metadata.labels.clone(), p.metadata.labels.clone())),
        other => bail!("cannot expose a {}", other.kind()),
    }
}

fn service(
    namespace: &str,
    args: &ExposeArgs,
    source_name: &str,
    selector: LabelMap,
    labels: LabelMap,
) -> anyhow::Result<Service> {
    let target = match &args.target_port {
        None => IntOrString::Int(args.port),
        Some(t) => match t.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(t.clone()),
        },
    };
    let protocol = args.protocol.to_ascii_uppercase();
    if !["TCP", "UDP", "SCTP"].contains(&protocol.as_str()) {
        bail!(
            "invalid --protocol {:?}: must be TCP, UDP or SCTP",
            args.protocol
        );
    }
    let name = args
        .service_name
        .clone()
        .unwrap_or_else(|| source_name.to_string());
    Ok(Service {
        metadata: ObjectMeta {
            name,
            namespace: Some(namespace.to_string()),
            labels,
            ..Default::default()
        },
        spec: ServiceSpec {
            selector: Some(selector),
            type_: args.type_.clone(),
            cluster_ip: args.cluster_ip.clone(),
            external_ips: args.external_ip.clone(),
            ports: vec![ServicePort {
                name: args.port_name.clone(),
                protocol: Some(protocol),
                port: args.port,
                target_port: Some(target),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    })
}
