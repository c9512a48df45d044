//! `swctl create service …` and `swctl create namespace`, building the same
//! objects `kubectl create` builds.

use switchyard_api::resources::Labels;

use anyhow::{bail, Context};
use switchyard_api::resources::{
    IntOrString, Namespace, Object, ObjectMeta, Service, ServicePort, ServiceSpec,
};

use super::qualified_name;
use crate::cli::{CreateCommand, CreateService};
use crate::client::Client;

pub async fn run(
    client: &mut Client,
    namespace: &str,
    cmd: &CreateCommand,
) -> anyhow::Result<bool> {
    let obj = match cmd {
        CreateCommand::Namespace { name } => Object::Namespace(Box::new(Namespace {
            metadata: ObjectMeta {
                name: name.clone(),
                ..Default::default()
            },
            ..Default::default()
        })),
        CreateCommand::Service(which) => Object::Service(Box::new(service(namespace, which)?)),
    };
    let kind = obj.kind();
    let (created, _) = client
        .apply(kind, obj.with_type_meta().to_json(), true)
        .await?;
    println!("{} created", qualified_name(&created));
    Ok(true)
}

fn service(namespace: &str, which: &CreateService) -> anyhow::Result<Service> {
    let (type_, args) = match which {
        CreateService::Clusterip(a) => ("ClusterIP", a),
        CreateService::Nodeport(a) => ("NodePort", a),
        CreateService::Loadbalancer(a) => ("LoadBalancer", a),
        CreateService::Externalname(a) => ("ExternalName", a),
    };
    let mut ports = args
        .tcp
        .iter()
        .map(|spec| port(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(np) = args.node_port {
        match ports.as_mut_slice() {
            [only] => only.node_port = Some(np),
            _ => bail!("--node-port needs exactly one --tcp port"),
        }
    }
    let external = type_ == "ExternalName";
    if external && args.external_name.is_none() {
        bail!("--external-name is required for an ExternalName service");
    }
    let labels: Labels = [("app".to_string(), args.name.clone())].into();
    Ok(Service {
        metadata: ObjectMeta {
            name: args.name.clone(),
            namespace: Some(namespace.to_string()),
            labels: labels.clone(),
            ..Default::default()
        },
        spec: ServiceSpec {
            type_: Some(type_.to_string()),
            ports,
            selector: (!external).then_some(labels),
            cluster_ip: args.clusterip.clone(),
            external_name: args.external_name.clone(),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// `--tcp=80:5000` → a port named `80-5000`, as kubectl names them.
fn port(spec: &str) -> anyhow::Result<ServicePort> {
    let (port, target) = spec.split_once(':').unwrap_or((spec, spec));
    let number: i32 = port
        .parse()
        .with_context(|| format!("invalid --tcp port {spec:?}"))?;
    let target = match target.parse::<i32>() {
        Ok(n) => IntOrString::Int(n),
        Err(_) => IntOrString::String(target.to_string()),
    };
    Ok(ServicePort {
        name: Some(format!("{port}-{target}")),
        protocol: Some("TCP".to_string()),
        port: number,
        target_port: Some(target),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::CreateServiceArgs;

    #[test]
    fn tcp_flag_names_ports_like_kubectl() {
        let p = port("80:5000").unwrap();
        assert_eq!(p.name.as_deref(), Some("80-5000"));
        assert_eq!(p.port, 80);
        assert_eq!(p.target_port, Some(IntOrString::Int(5000)));
        let p = port("8080").unwrap();
        assert_eq!(p.name.as_deref(), Some("8080-8080"));
        assert!(port("x:1").is_err());
    }

    #[test]
    fn nodeport_service_from_flags() {
        let args = CreateServiceArgs {
            name: "web".into(),
            tcp: vec!["80:5000".into()],
            node_port: Some(32233),
            clusterip: None,
            external_name: None,
        };
        let svc = service("default", &CreateService::Nodeport(args)).unwrap();
        assert_eq!(svc.spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(svc.spec.ports[0].node_port, Some(32233));
        assert_eq!(
            svc.spec.selector.unwrap().get("app").map(String::as_str),
            Some("web")
        );
    }
}
