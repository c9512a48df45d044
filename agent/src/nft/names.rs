//! Deterministic names for the objects the compiler creates per service port
//! and per endpoint, and the fingerprint comment that lets a restarted agent
//! recognise its own chains.
//!
//! Names are hashes of stable identities (`namespace/name/protocol/port`, plus
//! `ip:port` for endpoints), so they are valid nft identifiers whatever the
//! Service is called and identical across restarts and agent versions: the
//! reconciler matches live objects to desired ones by name alone. Tests pin
//! concrete names, so changing the scheme is a visible, deliberate act.

use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use crate::model::{ServiceKey, ServicePortEntry};

/// Prefix of the comment that carries a chain's fingerprint.
const FINGERPRINT_PREFIX: &str = "sy:";
/// nft refuses comments longer than this (NFT_USERDATA_MAXLEN is 256, but
/// older kernels and nft builds cap rule comments at 128 bytes).
const MAX_COMMENT: usize = 127;

/// First 16 hex digits of SHA-256: 64 bits is plenty to keep a node's few
/// thousand chain names apart, and short enough for any kernel's name limit.
pub fn short_hash(input: &str) -> String {
    hex64(Sha256::digest(input.as_bytes()).into())
}

/// The first 8 bytes of a digest as 16 hex digits, formatted in one go:
/// names are made on every recompile, so per-byte formatting showed up in
/// the agent's per-change profile.
fn hex64(digest: [u8; 32]) -> String {
    let [a, b, c, d, e, f, g, h, ..] = digest;
    format!("{:016x}", u64::from_be_bytes([a, b, c, d, e, f, g, h]))
}

/// Identity of one Service port; the protocol and port number are unique
/// within a Service, names may be empty.
pub fn service_port_id(key: &ServiceKey, port: &ServicePortEntry) -> String {
    format!(
        "{}/{}/{}/{}",
        key.namespace, key.name, port.protocol, port.port
    )
}

/// Identity of one endpoint of one Service port.
pub fn endpoint_id(service_port_id: &str, ip: Ipv4Addr, port: u16) -> String {
    format!("{service_port_id}/{ip}:{port}")
}

/// Cluster-policy chain of a Service port: every usable endpoint.
pub fn cluster_chain(service_port_id: &str) -> String {
    format!("svc-{}", short_hash(service_port_id))
}

/// Local-policy chain of a Service port: endpoints on this node only.
pub fn local_chain(service_port_id: &str) -> String {
    format!("local-{}", short_hash(service_port_id))
}

/// Source-range check of a LoadBalancer's IPs, before DNAT.
pub fn firewall_chain(service_port_id: &str) -> String {
    format!("fw-{}", short_hash(service_port_id))
}

/// Entry chain for NodePort, external and load-balancer traffic.
pub fn external_chain(service_port_id: &str) -> String {
    format!("ext-{}", short_hash(service_port_id))
}

/// DNAT chain of one endpoint.
pub fn endpoint_chain(endpoint_id: &str) -> String {
    format!("ep-{}", short_hash(endpoint_id))
}

/// Session-affinity set of one endpoint. The timeout is part of the name so a
/// timeout change creates a new set instead of mutating a referenced one.
pub fn affinity_set(endpoint_id: &str, timeout_secs: u32) -> String {
    format!(
        "aff-{}",
        short_hash(&format!("{endpoint_id}/{timeout_secs}"))
    )
}

/// Fingerprint of a chain body: changes whenever any rule text changes.
/// Hashes the rules as joined by newlines without building the joined text.
pub fn fingerprint(rules: &[String]) -> String {
    let mut hasher = Sha256::new();
    for (i, rule) in rules.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(rule.as_bytes());
    }
    hex64(hasher.finalize().into())
}

/// The comment put on a chain's first rule: the fingerprint, then a human
/// description for whoever reads `nft list table`.
pub fn fingerprint_comment(fingerprint: &str, description: &str) -> String {
    let mut text = format!("{FINGERPRINT_PREFIX}{fingerprint}");
    let description: String = description
        .chars()
        .filter(|c| (c.is_ascii_graphic() && *c != '"' && *c != '\\') || *c == ' ')
        .collect();
    if !description.is_empty() {
        text.push(' ');
        text.push_str(&description);
    }
    // ASCII only, so byte truncation is on a char boundary.
    text.truncate(MAX_COMMENT);
    text
}

/// Extracts the fingerprint from a comment written by [`fingerprint_comment`].
pub fn parse_fingerprint(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix(FINGERPRINT_PREFIX)?;
    Some(rest.split(' ').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::Protocol;

    #[test]
    fn names_are_stable_and_valid() {
        let key = ServiceKey::new("default", "web");
        let port = ServicePortEntry {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            node_port: None,
        };
        let id = service_port_id(&key, &port);
        assert_eq!(id, "default/web/tcp/80");
        assert_eq!(cluster_chain(&id), "svc-85208ae619feec63");
        let chain = endpoint_chain(&endpoint_id(&id, Ipv4Addr::new(10, 244, 1, 5), 8080));
        assert!(chain.starts_with("ep-") && chain.len() == 19);
    }

    #[test]
    fn fingerprint_comment_round_trips_and_is_sanitised() {
        let c = fingerprint_comment("0123456789abcdef", "ns/x \"quoted\"");
        assert_eq!(c, "sy:0123456789abcdef ns/x quoted");
        assert_eq!(parse_fingerprint(&c), Some("0123456789abcdef"));
        assert_eq!(parse_fingerprint("someone else"), None);
        let long = fingerprint_comment("f", &"a".repeat(300));
        assert_eq!(long.len(), MAX_COMMENT);
    }

    /// Live chains carry fingerprints of rules joined by newlines: hashing
    /// them in place must give the same value, or every chain is rewritten.
    #[test]
    fn fingerprint_is_the_hash_of_the_joined_rules() {
        let rules = ["ip saddr 1.2.3.4".to_string(), "return".to_string()];
        assert_eq!(fingerprint(&rules), short_hash("ip saddr 1.2.3.4\nreturn"));
        assert_eq!(fingerprint(&rules), "bb74fd2181744ec0");
    }
}
