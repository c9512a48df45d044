//! etcd's failures as [`StoreError`]s, decided once, by gRPC code and the
//! call that failed, never by the wording of etcd's messages (those are for
//! people; they are kept whole in the error's text).
//!
//! The codes are etcd's (`api/v3rpc/rpctypes/error.go`): `OutOfRange` is a
//! revision outside the window etcd keeps (compacted, or in the future) to
//! the KV and watch calls, but a TTL too large to a lease grant; `NotFound`
//! is a lease that does not exist; `Unavailable` is no leader, a stopping
//! member, a request that timed out inside etcd, or no connection at all.

use std::fmt;
use std::time::Duration;

use tonic::Code;

use crate::store::StoreError;

/// Which call to etcd failed. It names the call in messages ("a write got
/// no answer"), and decides what a code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdCall {
    Write,
    RangeRead,
    Watch,
    Compaction,
    LeaderRead,
    Campaign,
    Announcement,
    MemberRead,
    LeaseGrant,
    LeaseRenewal,
    LeaseRevocation,
    StatusRead,
}

impl EtcdCall {
    /// A call of the Lease service, where `OutOfRange` is about a TTL.
    fn is_lease_service(self) -> bool {
        matches!(
            self,
            EtcdCall::LeaseGrant | EtcdCall::LeaseRenewal | EtcdCall::LeaseRevocation
        )
    }

    /// What else a caller must know when this call got no answer: a write
    /// etcd never answered may still commit once it recovers.
    pub fn unanswered_note(self) -> &'static str {
        match self {
            EtcdCall::Write => "; the write may still be committed once etcd recovers",
            _ => "",
        }
    }
}

impl fmt::Display for EtcdCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EtcdCall::Write => "a write",
            EtcdCall::RangeRead => "a range read",
            EtcdCall::Watch => "a watch",
            EtcdCall::Compaction => "a compaction",
            EtcdCall::LeaderRead => "a leader read",
            EtcdCall::Campaign => "a campaign",
            EtcdCall::Announcement => "an announcement",
            EtcdCall::MemberRead => "a member read",
            EtcdCall::LeaseGrant => "a lease grant",
            EtcdCall::LeaseRenewal => "a lease renewal",
            EtcdCall::LeaseRevocation => "a lease revocation",
            EtcdCall::StatusRead => "a status read",
        })
    }
}

/// etcd's answer `status` to `call` as the store's error.
pub(super) fn classify(call: EtcdCall, status: &tonic::Status) -> StoreError {
    let message = status.message().to_string();
    match status.code() {
        // Compacted or future: the store only names revisions etcd gave
        // it, so a revision etcd no longer holds. (A future one would take
        // an etcd restored from an older backup; relisting is right then
        // too.) Which revision the caller knows, not etcd's answer.
        Code::OutOfRange if !call.is_lease_service() => StoreError::Compacted {
            requested: 0,
            oldest: 0,
        },
        Code::NotFound => StoreError::LeaseNotFound { call, message },
        Code::Unavailable => StoreError::Unavailable { call, message },
        code => StoreError::Refused {
            call,
            code,
            message,
        },
    }
}

/// A call that got no answer within `within`.
pub(super) fn no_answer(call: EtcdCall, within: Duration) -> StoreError {
    StoreError::NoAnswer { call, within }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, message: &str) -> tonic::Status {
        tonic::Status::new(code, message)
    }

    #[test]
    fn a_compacted_revision_is_compacted_by_its_code_whatever_the_words() {
        for message in [
            "etcdserver: mvcc: required revision has been compacted",
            "some future wording",
        ] {
            let e = classify(EtcdCall::RangeRead, &status(Code::OutOfRange, message));
            assert!(matches!(e, StoreError::Compacted { .. }), "{e:?}");
        }
        let e = classify(
            EtcdCall::Compaction,
            &status(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
        );
        assert!(matches!(e, StoreError::Compacted { .. }), "{e:?}");
    }

    #[test]
    fn out_of_range_to_a_lease_grant_is_a_refusal_not_a_compaction() {
        let e = classify(
            EtcdCall::LeaseGrant,
            &status(Code::OutOfRange, "etcdserver: too large lease TTL"),
        );
        assert!(
            matches!(
                e,
                StoreError::Refused {
                    code: Code::OutOfRange,
                    call: EtcdCall::LeaseGrant,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "storage: etcd: etcdserver: too large lease TTL"
        );
    }

    #[test]
    fn a_missing_lease_is_typed_and_keeps_etcds_words() {
        let e = classify(
            EtcdCall::Campaign,
            &status(Code::NotFound, "etcdserver: requested lease not found"),
        );
        assert!(
            matches!(
                e,
                StoreError::LeaseNotFound {
                    call: EtcdCall::Campaign,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "storage: etcd: etcdserver: requested lease not found"
        );
    }

    #[test]
    fn no_leader_is_unavailable() {
        let e = classify(
            EtcdCall::Write,
            &status(Code::Unavailable, "etcdserver: no leader"),
        );
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        assert_eq!(e.to_string(), "storage: etcd: etcdserver: no leader");
    }

    #[test]
    fn other_codes_are_refusals_with_their_code() {
        let e = classify(
            EtcdCall::Write,
            &status(
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
        );
        assert!(
            matches!(
                e,
                StoreError::Refused {
                    code: Code::InvalidArgument,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "storage: etcd: etcdserver: too many operations in txn request"
        );
    }

    /// ctl/tests/ha.rs asserts this text word for word.
    #[test]
    fn an_unanswered_write_says_it_may_still_commit() {
        let e = no_answer(EtcdCall::Write, Duration::from_secs(4));
        assert_eq!(
            e.to_string(),
            "storage: etcd: a write got no answer within 4s (is a quorum of its members up?); the write may still be committed once etcd recovers"
        );
        let e = no_answer(EtcdCall::RangeRead, Duration::from_secs(4));
        assert_eq!(
            e.to_string(),
            "storage: etcd: a range read got no answer within 4s (is a quorum of its members up?)"
        );
    }
}
