//! `swctl config kubeconfig`: the credentials swctl uses, as a kubeconfig
//! for kubectl and every Kubernetes client library, which speak the
//! control plane's REST API on the same address.

use std::io::Write;

use anyhow::{bail, Context};
use switchyard_tls::credentials::Credentials;

use crate::cli::ConfigCommand;
use crate::login::Login;

/// The user a kubeconfig for an `--insecure` control plane names.
const INSECURE_USER: &str = "insecure";

pub fn run(login: &Login, command: &ConfigCommand) -> anyhow::Result<bool> {
    let ConfigCommand::Kubeconfig { output } = command;
    let kubeconfig = kubeconfig(login)?;
    match output {
        Some(path) => kubeconfig
            .write(path)
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let yaml = kubeconfig.to_yaml()?;
            std::io::stdout().write_all(yaml.as_bytes())?;
        }
    }
    Ok(true)
}

/// The credentials, pointed at the server swctl would use (the first, when
/// several are given: a kubeconfig names one).
fn kubeconfig(login: &Login) -> anyhow::Result<Credentials> {
    if login.target.is_unix() {
        bail!(
            "kubectl cannot reach a control plane over a Unix socket ({}); pass --server https://HOST:PORT",
            login.target.url()
        );
    }
    let server = login.target.url().to_string();
    Ok(match &login.credentials {
        Some(c) if !login.target.is_plaintext() => Credentials {
            server,
            ..c.clone()
        },
        _ => Credentials {
            server,
            ca_pem: None,
            user: INSECURE_USER.to_string(),
            client_cert_pem: None,
            client_key_pem: None,
        },
    })
}
