//! `swctl create service …` and `swctl create namespace`, building the same
//! objects `kubectl create` builds; `swctl create user` and `swctl create
//! token`, which issue identities.

use switchyard_api::resources::Labels;

use anyhow::{bail, Context};
use switchyard_api::resources::{
    IntOrString, Namespace, Object, ObjectMeta, Service, ServicePort, ServiceSpec,
};

use super::qualified_name;
use crate::cli::{CreateCommand, CreateService, CreateTokenArgs, CreateUserArgs};
use crate::client::Client;
use switchyard_api::v1::{CreateTokenRequest, CreateUserRequest};
use switchyard_tls::credentials::Credentials;

pub async fn run(
    client: &mut Client,
    namespace: &str,
    cmd: &CreateCommand,
) -> anyhow::Result<bool> {
    let obj = match cmd {
        CreateCommand::User(args) => return user(client, args).await,
        CreateCommand::Token(args) => return token(client, args).await,
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

/// The URL the control plane advertises, else the one this command used.
fn server_url(client: &Client, advertised: &[String]) -> String {
    advertised
        .first()
        .cloned()
        .unwrap_or_else(|| client.login().target.url().to_string())
}

/// Makes the user's key here (it never leaves this host), has the control
/// plane sign it, and writes the credentials file.
async fn user(client: &mut Client, args: &CreateUserArgs) -> anyhow::Result<bool> {
    let key = switchyard_tls::csr::generate(&args.name)?;
    let issued = client
        .create_user(CreateUserRequest {
            name: args.name.clone(),
            role: args.role.clone(),
            ttl_seconds: args.ttl.as_secs(),
            csr_pem: key.csr_pem,
        })
        .await?;
    let creds = Credentials {
        server: server_url(client, &issued.server_urls),
        ca_pem: Some(issued.ca_pem),
        user: args.name.clone(),
        client_cert_pem: Some(issued.certificate_pem),
        client_key_pem: Some(key.key_pem),
    };
    match &args.output {
        Some(path) => {
            creds
                .write(path)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("user/{} created", args.name);
        }
        None => print!("{}", creds.to_yaml()?),
    }
    Ok(true)
}

/// The token on the first line, then the command that joins a host with it.
async fn token(client: &mut Client, args: &CreateTokenArgs) -> anyhow::Result<bool> {
    let created = client
        .create_token(CreateTokenRequest {
            node_name: args.node.clone().unwrap_or_default(),
            ttl_seconds: args.ttl.as_secs(),
            reusable: args.reusable,
        })
        .await?;
    let server = server_url(client, &created.server_urls);
    let node = args.node.as_deref().unwrap_or("<NODE_NAME>");
    println!("{}", created.token);
    println!(
        "switchyard-agent --control-plane {server} --join-token {} --ca-cert-hash {} --node-name {node} --node-ip <NODE_IP>",
        created.token, created.ca_cert_hash
    );
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
