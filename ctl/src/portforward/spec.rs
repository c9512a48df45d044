//! What `swctl port-forward TARGET [LOCAL:]REMOTE... --address A` asks for,
//! parsed without any IO so every accepted and refused spelling is tested.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use switchyard_api::resources::Kind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid target {0:?}: expected svc/NAME, deploy/NAME, pod/NAME or a pod name")]
    BadTarget(String),
    #[error("cannot port-forward to {target:?}: {kind:?} is not a Service, Deployment or Pod (use svc/NAME, deploy/NAME, pod/NAME or a pod name)")]
    UnsupportedKind { target: String, kind: String },
    #[error("invalid port pair {spec:?}: {reason}")]
    BadPorts { spec: String, reason: String },
    #[error("invalid --address {0:?}: expected an IP address or localhost")]
    BadAddress(String),
}

/// The object a forward goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Service, Deployment or Pod.
    pub kind: Kind,
    pub name: String,
}

impl Target {
    /// `svc/x`, `service/x`, `deploy/x`, `deployment.apps/x`, `pod/x`, `po/x`
    /// or a bare pod name, as kubectl accepts them.
    pub fn parse(s: &str) -> Result<Target, SpecError> {
        let bad = || SpecError::BadTarget(s.to_string());
        let (kind, name) = match s.split_once('/') {
            None => (Kind::Pod, s),
            Some(("", _)) => return Err(bad()),
            Some((kind, name)) => {
                let parsed = kind
                    .parse::<Kind>()
                    .ok()
                    .filter(|k| matches!(k, Kind::Service | Kind::Deployment | Kind::Pod))
                    .ok_or_else(|| unsupported(s, kind))?;
                (parsed, name)
            }
        };
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Target {
            kind,
            name: name.to_string(),
        })
    }
}

fn unsupported(target: &str, kind: &str) -> SpecError {
    SpecError::UnsupportedKind {
        target: target.to_string(),
        kind: kind.to_string(),
    }
}

impl fmt::Display for Target {
    /// kubectl's `service/frontend-svc` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.singular(), self.name)
    }
}

/// One `[LOCAL:]REMOTE` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPair {
    /// `None` (written `:REMOTE` or `0:REMOTE`) picks a free local port.
    pub local: Option<u16>,
    pub remote: u16,
}

impl PortPair {
    /// `8080:80`, `:80`, `0:80`, or `80` (the same port locally).
    pub fn parse(s: &str) -> Result<PortPair, SpecError> {
        let bad = |reason: String| SpecError::BadPorts {
            spec: s.to_string(),
            reason,
        };
        let (local, remote) = match s.split_once(':') {
            None => (Some(s), s),
            Some(("", remote)) => (None, remote),
            Some((local, remote)) => (Some(local), remote),
        };
        if remote.contains(':') {
            return Err(bad("expected [LOCAL:]REMOTE".to_string()));
        }
        let remote = port(remote, "remote").map_err(bad)?;
        if remote == 0 {
            return Err(bad("the remote port must be from 1 to 65535".to_string()));
        }
        let local = match local {
            None => None,
            Some(l) => Some(port(l, "local").map_err(bad)?).filter(|p| *p != 0),
        };
        Ok(PortPair { local, remote })
    }
}

fn port(s: &str, which: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err(format!("the {which} port is missing"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the {which} port {s:?} is not a number"));
    }
    s.parse::<u16>()
        .map_err(|_| format!("the {which} port {s} is out of range (at most 65535)"))
}

/// The addresses to listen on; `localhost` means both loopbacks, as with
/// kubectl. Duplicates are dropped, order kept.
pub fn listen_addresses(given: &[String]) -> Result<Vec<IpAddr>, SpecError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in given.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        let ips = if a.eq_ignore_ascii_case("localhost") {
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]
        } else {
            vec![a
                .parse::<IpAddr>()
                .map_err(|_| SpecError::BadAddress(a.to_string()))?]
        };
        for ip in ips {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    if out.is_empty() {
        return Err(SpecError::BadAddress(given.join(",")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> (Kind, String) {
        let t = Target::parse(s).unwrap();
        (t.kind, t.name)
    }

    #[test]
    fn parses_kubectl_target_spellings() {
        assert_eq!(
            target("svc/frontend-svc"),
            (Kind::Service, "frontend-svc".into())
        );
        assert_eq!(target("service/x"), (Kind::Service, "x".into()));
        assert_eq!(target("services/x"), (Kind::Service, "x".into()));
        assert_eq!(
            target("deploy/frontend"),
            (Kind::Deployment, "frontend".into())
        );
        assert_eq!(target("deployment.apps/x"), (Kind::Deployment, "x".into()));
        assert_eq!(target("pod/frontend-1"), (Kind::Pod, "frontend-1".into()));
        assert_eq!(target("po/x"), (Kind::Pod, "x".into()));
        assert_eq!(
            target("frontend-77cbdf6f79-qsdts"),
            (Kind::Pod, "frontend-77cbdf6f79-qsdts".into())
        );
    }

    #[test]
    fn refuses_bad_targets_clearly() {
        for s in ["", "svc/", "/x", "pod/a/b", "a b"] {
            assert_eq!(
                Target::parse(s),
                Err(SpecError::BadTarget(s.to_string())),
                "{s}"
            );
        }
        let err = Target::parse("ns/default").unwrap_err().to_string();
        assert!(
            err.contains("\"ns\" is not a Service, Deployment or Pod"),
            "{err}"
        );
        let err = Target::parse("widget/x").unwrap_err().to_string();
        assert!(err.contains("\"widget\""), "{err}");
    }

    #[test]
    fn shows_targets_like_kubectl() {
        assert_eq!(Target::parse("svc/x").unwrap().to_string(), "service/x");
        assert_eq!(Target::parse("x").unwrap().to_string(), "pod/x");
    }

    #[test]
    fn parses_port_pairs() {
        let p = |s| PortPair::parse(s).unwrap();
        assert_eq!(
            p("8080:80"),
            PortPair {
                local: Some(8080),
                remote: 80
            }
        );
        assert_eq!(
            p(":80"),
            PortPair {
                local: None,
                remote: 80
            }
        );
        assert_eq!(
            p("0:80"),
            PortPair {
                local: None,
                remote: 80
            }
        );
        assert_eq!(
            p("80"),
            PortPair {
                local: Some(80),
                remote: 80
            }
        );
        assert_eq!(
            p("65535:1"),
            PortPair {
                local: Some(65535),
                remote: 1
            }
        );
    }

    #[test]
    fn refuses_bad_port_pairs_clearly() {
        let err = |s| PortPair::parse(s).unwrap_err().to_string();
        assert_eq!(
            err(""),
            "invalid port pair \"\": the remote port is missing"
        );
        assert_eq!(
            err("8080:"),
            "invalid port pair \"8080:\": the remote port is missing"
        );
        assert_eq!(
            err("http:80"),
            "invalid port pair \"http:80\": the local port \"http\" is not a number"
        );
        assert_eq!(
            err("8080:abc"),
            "invalid port pair \"8080:abc\": the remote port \"abc\" is not a number"
        );
        assert_eq!(
            err("70000"),
            "invalid port pair \"70000\": the remote port 70000 is out of range (at most 65535)"
        );
        assert_eq!(
            err("8080:0"),
            "invalid port pair \"8080:0\": the remote port must be from 1 to 65535"
        );
        assert_eq!(
            err("1:2:3"),
            "invalid port pair \"1:2:3\": expected [LOCAL:]REMOTE"
        );
        assert!(err("-1").contains("not a number"));
        assert!(err(":").contains("remote port is missing"));
    }

    #[test]
    fn parses_listen_addresses() {
        let a = |v: &[&str]| listen_addresses(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            a(&["127.0.0.1"]).unwrap(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        );
        assert_eq!(
            a(&["localhost", "127.0.0.1"]).unwrap(),
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(
            a(&["0.0.0.0"]).unwrap(),
            vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        );
        assert_eq!(
            a(&["nope"]).unwrap_err().to_string(),
            "invalid --address \"nope\": expected an IP address or localhost"
        );
        assert!(a(&[]).is_err());
    }
}
