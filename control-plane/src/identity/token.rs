//! Bootstrap tokens, as kubeadm makes them: `<id>.<secret>`, six and
//! sixteen characters of `[a-z0-9]`. The id names the stored token; only a
//! hash of the secret is stored. Checking a token is a pure function of
//! the stored token, the presented secret, the joining node and the time.

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use switchyard_api::resources::BootstrapToken;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// Why a join was refused; the text follows `join refused: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown token")]
    Unknown,
    #[error("token expired")]
    Expired,
    #[error("token already used")]
    Used,
    #[error("token is for node {0}")]
    OtherNode(String),
}

/// A new `(id, secret)`.
pub fn generate(rng: &mut impl Rng) -> (String, String) {
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    (pick(ID_LEN), pick(SECRET_LEN))
}

/// Splits `<id>.<secret>` if it has the token's shape.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.trim().split_once('.')?;
    let shaped = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| ALPHABET.contains(&b));
    (shaped(id, ID_LEN) && shaped(secret, SECRET_LEN)).then_some((id, secret))
}

pub fn hash(secret: &str) -> String {
    switchyard_tls::certificate::hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `node` may join with `secret` against the stored `token`.
pub fn check(
    token: Option<&BootstrapToken>,
    secret: &str,
    node: &str,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let token = token
        .filter(|t| t.spec.secret_hash == hash(secret))
        .ok_or(Refusal::Unknown)?;
    let expires =
        DateTime::parse_from_rfc3339(&token.spec.expires).map_err(|_| Refusal::Expired)?;
    if now >= expires {
        return Err(Refusal::Expired);
    }
    if !token.spec.reusable && token.status.uses > 0 {
        return Err(Refusal::Used);
    }
    match token.spec.node_name.as_deref() {
        Some(bound) if bound != node => Err(Refusal::OtherNode(bound.to_string())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn token(node: Option<&str>, reusable: bool, uses: u64) -> BootstrapToken {
        let mut t = BootstrapToken::default();
        t.metadata.name = "abcdef".into();
        t.spec.secret_hash = hash("0123456789abcdef");
        t.spec.expires = "2026-12-01T12:00:00Z".into();
        t.spec.node_name = node.map(str::to_string);
        t.spec.reusable = reusable;
        t.status.uses = uses;
        t
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }

    #[test]
    fn generated_tokens_have_the_shape_parse_accepts() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (id, secret) = generate(&mut rng);
        let token = format!("{id}.{secret}");
        assert_eq!(parse(&token), Some((id.as_str(), secret.as_str())));
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde!",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn refusals_say_why() {
        let before = at("2026-12-01T11:59:59Z");
        let secret = "0123456789abcdef";
        assert_eq!(
            check(Some(&token(None, false, 0)), secret, "n1", before),
            Ok(())
        );
        assert_eq!(check(None, secret, "n1", before), Err(Refusal::Unknown));
        assert_eq!(
            check(
                Some(&token(None, false, 0)),
                "0123456789abcdee",
                "n1",
                before
            ),
            Err(Refusal::Unknown)
        );
        assert_eq!(
            check(
                Some(&token(None, false, 0)),
                secret,
                "n1",
                at("2026-12-01T12:00:00Z")
            ),
            Err(Refusal::Expired)
        );
        assert_eq!(
            check(Some(&token(None, false, 1)), secret, "n1", before),
            Err(Refusal::Used)
        );
        assert_eq!(
            check(Some(&token(None, true, 5)), secret, "n1", before),
            Ok(())
        );
        assert_eq!(
            check(Some(&token(Some("n2"), true, 0)), secret, "n1", before),
            Err(Refusal::OtherNode("n2".into()))
        );
        assert_eq!(
            Refusal::OtherNode("n2".into()).to_string(),
            "token is for node n2"
        );
    }
}
