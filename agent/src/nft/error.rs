//! Errors of the nftables data path.

use std::io;

/// Why programming or reading the table failed. On any failure the last good
/// ruleset stays in place: every change is one atomic nft transaction.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// nft rejected the transaction or the command; nothing was changed.
    /// `stderr` is nft's own message, fit to send back in a NACK.
    #[error("nft failed ({status}): {stderr}")]
    Rejected { status: String, stderr: String },
    /// The nft binary (or `ip netns exec`) could not be run at all.
    #[error("could not run {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// `nft -j` printed something that is not JSON.
    #[error("nft printed invalid JSON")]
    Json(#[source] serde_json::Error),
    /// `nft -j` printed JSON of an unexpected shape.
    #[error("unexpected nft JSON: {0}")]
    Malformed(String),
    /// The nf_tables netlink socket failed: it could not be opened, the
    /// send failed, or no reply came in time. In the last case whether the
    /// batch was applied is unknown: re-read the table before trusting it.
    #[error("nf_tables netlink socket failed")]
    Netlink(#[source] io::Error),
    /// nf_tables refused message `request` of a netlink batch (`None`: the
    /// commit itself) with `errno`; the whole batch was aborted.
    /// `netlink::Batch::explain` turns this into `Rejected`, naming the
    /// command as nft would.
    #[error("nf_tables refused request {request:?} of the batch (errno {errno})")]
    Refused { request: Option<usize>, errno: i32 },
    /// The table name is not a plain nft identifier.
    #[error("invalid nftables table name {0:?}")]
    InvalidTable(String),
}

impl NftError {
    /// nft's error text, when nft itself refused.
    pub fn nft_stderr(&self) -> Option<&str> {
        match self {
            NftError::Rejected { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// `pub type Result<T, E = Error>` in the kube-rs style.
pub type Result<T, E = NftError> = std::result::Result<T, E>;
