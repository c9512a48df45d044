//! The fingerprint comment on each chain's first rule: a listing shows
//! whether a chain still holds what the agent wrote without parsing a rule.

use sha2::{Digest, Sha256};

/// Prefix of the comment that carries a chain's fingerprint.
const FINGERPRINT_PREFIX: &str = "sy:";
/// nft refuses comments longer than this (NFT_USERDATA_MAXLEN is 256, but
/// older kernels and nft builds cap rule comments at 128 bytes).
const MAX_COMMENT: usize = 127;

/// The first 8 bytes of a digest as 16 hex digits.
fn hex64(digest: [u8; 32]) -> String {
    let [a, b, c, d, e, f, g, h, ..] = digest;
    format!("{:016x}", u64::from_be_bytes([a, b, c, d, e, f, g, h]))
}

/// Fingerprint of a chain body: changes whenever any rule text changes.
/// Hashes the rules as joined by newlines without building the joined text.
pub fn of(rules: &[String]) -> String {
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
pub fn comment(fingerprint: &str, description: &str) -> String {
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

/// Extracts the fingerprint from a comment written by [`comment`].
pub fn parse(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix(FINGERPRINT_PREFIX)?;
    Some(rest.split(' ').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn fingerprint_comment_round_trips_and_is_sanitised() {
        let c = comment("0123456789abcdef", "ns/x \"quoted\"");
        assert_eq!(c, "sy:0123456789abcdef ns/x quoted");
        assert_eq!(parse(&c), Some("0123456789abcdef"));
        assert_eq!(parse("someone else"), None);
        let long = comment("f", &"a".repeat(300));
        assert_eq!(long.len(), MAX_COMMENT);
    }

    /// Live chains carry fingerprints of rules joined by newlines: hashing
    /// them in place must give the same value, or every chain is rewritten.
    #[test]
    fn fingerprint_is_the_hash_of_the_joined_rules() {
        let rules = ["ip saddr 1.2.3.4".to_string(), "return".to_string()];
        let joined = hex64(Sha256::digest(b"ip saddr 1.2.3.4\nreturn").into());
        assert_eq!(of(&rules), joined);
        assert_eq!(of(&rules), "bb74fd2181744ec0");
    }
}
