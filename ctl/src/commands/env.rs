//! `swctl env [POD] [--export]`: the Service environment variables a pod
//! gets, as the kubelet builds them (computed by the control plane).
//!
//! Plain output is `NAME=value` lines, like `env` inside the pod; `--export`
//! prints shell-quoted `export NAME='value'` lines so that
//! `eval "$(swctl env --export POD)"` recreates the pod's view locally.

use anyhow::bail;
use switchyard_api::resources::Kind;
use switchyard_api::v1::EnvVar;

use super::{parse_kind, split_kind_name};
use crate::cli::EnvArgs;
use crate::client::Client;

pub async fn run(client: &mut Client, namespace: &str, args: &EnvArgs) -> anyhow::Result<bool> {
    let pod = args.pod.as_deref().map(pod_name).transpose()?;
    let vars = client.env(namespace, pod.unwrap_or_default()).await?;
    print!("{}", render(&vars, args.export));
    Ok(true)
}

/// `NAME` or `pod/NAME` (`po/`, `pods/`): anything else is not a pod.
fn pod_name(arg: &str) -> anyhow::Result<&str> {
    match split_kind_name(arg) {
        None => Ok(arg),
        Some((kind, name)) if parse_kind(kind)? == Kind::Pod => Ok(name),
        Some((kind, _)) => bail!("swctl env takes a pod, not {kind:?}"),
    }
}

/// One line per variable, in the order given (the server sorts by name).
pub fn render(vars: &[EnvVar], export: bool) -> String {
    vars.iter()
        .map(|v| {
            if export {
                format!("export {}={}\n", v.name, shell_quote(&v.value))
            } else {
                format!("{}={}\n", v.name, v.value)
            }
        })
        .collect()
}

/// POSIX single quoting: everything literal, `'` as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn plain_and_export_lines() {
        let vars = [
            var("WEB_PORT", "tcp://10.96.0.20:80"),
            var("WEB_SERVICE_HOST", "10.96.0.20"),
        ];
        assert_eq!(
            render(&vars, false),
            "WEB_PORT=tcp://10.96.0.20:80\nWEB_SERVICE_HOST=10.96.0.20\n"
        );
        assert_eq!(
            render(&vars, true),
            "export WEB_PORT='tcp://10.96.0.20:80'\nexport WEB_SERVICE_HOST='10.96.0.20'\n"
        );
        assert_eq!(render(&[], true), "");
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME `x`"), "'$HOME `x`'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn pod_arguments() {
        assert_eq!(pod_name("frontend-1").unwrap(), "frontend-1");
        assert_eq!(pod_name("pod/frontend-1").unwrap(), "frontend-1");
        assert_eq!(pod_name("po/frontend-1").unwrap(), "frontend-1");
        assert!(pod_name("svc/frontend-svc").is_err());
    }
}
