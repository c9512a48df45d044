//! The listeners' certificate: made afresh at every start, so the names in
//! it are always those the flags give, and written to `pki/server.crt`
//! (followed by the CA, as served) and `pki/server.key` for operators'
//! tools.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use switchyard_tls::server::ServerTls;

use super::{Ca, PkiError, Subject, Usage};

const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";
/// Renewed at every restart; a year is kube-apiserver's (kubeadm's) choice.
const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The names the serving certificate carries: every advertised address,
/// the listen address (for a wildcard, every address of this host and its
/// name, which is what a client of a wildcard listener may dial), and
/// `localhost`/127.0.0.1 (which also name the Unix socket).
pub fn serving_names(listen: SocketAddr, advertise: &[String], host: &HostNames) -> Vec<String> {
    let mut names: Vec<String> = advertise.to_vec();
    if listen.ip().is_unspecified() {
        names.extend(host.addresses.iter().map(IpAddr::to_string));
        names.extend(host.name.clone());
    } else {
        names.push(listen.ip().to_string());
    }
    names.push(switchyard_tls::client::SOCKET_SERVER_NAME.to_string());
    names.push(IpAddr::from([127, 0, 0, 1]).to_string());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// This host's addresses (link-local ones left out) and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNames {
    pub addresses: Vec<IpAddr>,
    pub name: Option<String>,
}

impl HostNames {
    pub fn of_this_host() -> HostNames {
        let addresses = if_addrs::get_if_addrs()
            .map(|ifs| {
                ifs.into_iter()
                    .map(|i| i.ip())
                    .filter(|ip| match ip {
                        IpAddr::V4(v4) => !v4.is_link_local(),
                        IpAddr::V6(v6) => !v6.is_unicast_link_local(),
                    })
                    .collect()
            })
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot list this host's addresses for the serving certificate");
                Vec::new()
            });
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|n| n.trim().to_string())
            .filter(|n| is_dns_name(n));
        HostNames { addresses, name }
    }
}

/// Letters, digits and inner hyphens, in dot-separated labels: what a
/// certificate's DNS name may hold (a hostname with `_` may not).
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub fn serving_tls(ca: &Ca, dir: &Path, names: &[String]) -> Result<ServerTls, PkiError> {
    let subject = Subject {
        common_name: "switchyard-control-plane".to_string(),
        organization: "switchyard".to_string(),
    };
    let (issued, key) =
        ca.issue_with_key(&subject, &Usage::Server(names.to_vec()), SERVING_LIFETIME)?;
    let chain_pem = format!("{}{}", issued.pem, ca.pem());
    switchyard_tls::pem::write_private(&dir.join(SERVER_KEY), key.serialize_pem().as_bytes())?;
    switchyard_tls::pem::write_private(&dir.join(SERVER_CERT), chain_pem.as_bytes())?;
    let key = switchyard_tls::pem::private_key(key.serialize_pem().as_bytes(), SERVER_KEY)?;
    Ok(ServerTls::new(
        ca.der().clone(),
        vec![issued.der, ca.der().clone()],
        key,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dns_shaped_hostnames_are_named() {
        assert!(is_dns_name("cp-1.example.com"));
        assert!(!is_dns_name("my_host"));
        assert!(!is_dns_name("-x"));
        assert!(!is_dns_name(""));
    }

    #[test]
    fn names_cover_advertised_listen_and_loopback_once() {
        let host = HostNames {
            addresses: vec![[127, 0, 0, 1].into(), [10, 0, 0, 5].into()],
            name: Some("cp-1".into()),
        };
        let listen: SocketAddr = "172.18.0.2:7443".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            serving_names(
                listen,
                &["cp.example.com".into(), "127.0.0.1".into()],
                &host
            ),
            vec!["cp.example.com", "127.0.0.1", "172.18.0.2", "localhost"]
        );
        let wildcard: SocketAddr = "0.0.0.0:7443".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            serving_names(wildcard, &[], &host),
            vec!["127.0.0.1", "10.0.0.5", "cp-1", "localhost"]
        );
    }
}
