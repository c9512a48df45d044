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
/// the listen address unless it is a wildcard, and `localhost`/127.0.0.1
/// (which also name the Unix socket).
pub fn serving_names(listen: SocketAddr, advertise: &[String]) -> Vec<String> {
    let mut names: Vec<String> = advertise.to_vec();
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.push(switchyard_tls::client::SOCKET_SERVER_NAME.to_string());
    names.push(IpAddr::from([127, 0, 0, 1]).to_string());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
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
    fn names_cover_advertised_listen_and_loopback_once() {
        let listen: SocketAddr = "172.18.0.2:7443".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            serving_names(listen, &["cp.example.com".into(), "127.0.0.1".into()]),
            vec!["cp.example.com", "127.0.0.1", "172.18.0.2", "localhost"]
        );
        let wildcard: SocketAddr = "0.0.0.0:7443".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(serving_names(wildcard, &[]), vec!["localhost", "127.0.0.1"]);
    }
}
