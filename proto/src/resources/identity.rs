//! The identities the control plane issues. Their secrets never enter the
//! store: a user's key stays with whoever made the CSR, a token's secret is
//! kept as a hash. What is stored is what revocation and `swctl get` need.

use serde::{Deserialize, Serialize};

use super::ObjectMeta;

/// A person or tool holding a client certificate (`swctl create user`).
/// Deleting it revokes the certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: UserSpec,
    #[serde(default)]
    pub status: UserStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// `admin` or `view`.
    #[serde(default)]
    pub role: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The one certificate this user may authenticate with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IssuedCertificate>,
}

/// A certificate the CA signed, as revocation checks it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCertificate {
    /// Lower-case hex, as `openssl x509 -serial` prints it.
    pub serial_number: String,
    /// RFC 3339.
    pub not_after: String,
}

/// A join token (`swctl create token`): `<metadata.name>.<secret>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapToken {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BootstrapTokenSpec,
    #[serde(default)]
    pub status: BootstrapTokenStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenSpec {
    /// Only this node may join with the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub expires: String,
    #[serde(default)]
    pub reusable: bool,
    /// Lower-case hex SHA-256 of the secret.
    #[serde(default)]
    pub secret_hash: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenStatus {
    #[serde(default)]
    pub uses: u64,
}
