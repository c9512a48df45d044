//! Leases, the leader key and member records in etcd: `<prefix>/leader`
//! holds the leader's name under its lease, `<prefix>/controlplanes/<name>`
//! each control plane's record under its own. Both vanish with the lease.

use super::etcdserverpb::{
    compare, lease_client::LeaseClient, request_op, Compare, LeaseGrantRequest,
    LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use futures::future::BoxFuture;
use futures::FutureExt;
use tonic::transport::Channel;

use super::{range_end, retried, timed, EtcdCall, EtcdStore};
use crate::store::coordination::{Coordination, Member};
use crate::store::StoreError;

impl EtcdStore {
    fn lease_client(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
    }

    fn leader_key(&self) -> Vec<u8> {
        self.keys.leader()
    }

    fn member_prefix(&self) -> Vec<u8> {
        format!("{}/controlplanes/", self.keys.prefix).into_bytes()
    }

    async fn lease_holding_leader_key(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let request = RangeRequest {
            key: self.leader_key(),
            ..Default::default()
        };
        let answer = retried(EtcdCall::LeaderRead, || {
            let (mut client, request) = (self.kv(), request.clone());
            async move { client.range(request).await }
        })
        .await?;
        Ok(answer.kvs.into_iter().next().map(|kv| (kv.lease, kv.value)))
    }
}

/// A compare that holds while `lease` holds the leader key.
pub(super) fn held_by(key: Vec<u8>, lease: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal.into(),
        target: compare::CompareTarget::Lease.into(),
        key,
        target_union: Some(compare::TargetUnion::Lease(lease)),
        range_end: Vec::new(),
    }
}

fn absent(key: Vec<u8>) -> Compare {
    Compare {
        result: compare::CompareResult::Equal.into(),
        target: compare::CompareTarget::Create.into(),
        key,
        target_union: Some(compare::TargetUnion::CreateRevision(0)),
        range_end: Vec::new(),
    }
}

fn put(key: Vec<u8>, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            lease,
            ..Default::default()
        })),
    }
}

impl Coordination for EtcdStore {
    fn grant(&self, ttl: i64) -> BoxFuture<'_, Result<i64, StoreError>> {
        async move {
            let request = LeaseGrantRequest { ttl, id: 0 };
            let answer = retried(EtcdCall::LeaseGrant, || {
                let (mut client, request) = (self.lease_client(), request);
                async move { client.lease_grant(request).await }
            })
            .await?;
            if !answer.error.is_empty() {
                return Err(StoreError::Backend(format!("etcd: {}", answer.error)));
            }
            Ok(answer.id)
        }
        .boxed()
    }

    fn keep_alive(&self, lease: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        async move {
            let request = LeaseKeepAliveRequest { id: lease };
            let requests = futures::stream::once(async move { request });
            let mut client = self.lease_client();
            let mut answers =
                match timed(EtcdCall::LeaseRenewal, client.lease_keep_alive(requests)).await {
                    Err(StoreError::LeaseNotFound { .. }) => return Ok(false),
                    other => other?.into_inner(),
                };
            let answer = match timed(EtcdCall::LeaseRenewal, answers.message()).await {
                // etcd answers a renewal of a lease it does not know with
                // TTL 0; a server that refuses it instead says the same.
                Err(StoreError::LeaseNotFound { .. }) => return Ok(false),
                other => other?,
            };
            Ok(answer.is_some_and(|a| a.ttl > 0))
        }
        .boxed()
    }

    fn campaign<'a>(
        &'a self,
        lease: i64,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let key = self.leader_key();
            let request = TxnRequest {
                compare: vec![absent(key.clone())],
                success: vec![put(key, name.as_bytes().to_vec(), lease)],
                failure: Vec::new(),
            };
            let answer = match retried(EtcdCall::Campaign, || {
                let (mut client, request) = (self.kv(), request.clone());
                async move { client.txn(request).await }
            })
            .await
            {
                // The lease expired: it leads nothing, and the next renewal
                // finds it gone.
                Err(StoreError::LeaseNotFound { .. }) => return Ok(false),
                other => other?,
            };
            if answer.succeeded {
                return Ok(true);
            }
            Ok(self
                .lease_holding_leader_key()
                .await?
                .is_some_and(|(holder, _)| holder == lease))
        }
        .boxed()
    }

    fn leader(&self) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        async move {
            Ok(self
                .lease_holding_leader_key()
                .await?
                .map(|(_, name)| String::from_utf8_lossy(&name).into_owned()))
        }
        .boxed()
    }

    fn announce<'a>(
        &'a self,
        lease: i64,
        member: &'a Member,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let mut key = self.member_prefix();
            key.extend_from_slice(member.name.as_bytes());
            let value =
                serde_json::to_vec(member).map_err(|e| StoreError::Backend(e.to_string()))?;
            let request = TxnRequest {
                compare: Vec::new(),
                success: vec![put(key, value, lease)],
                failure: Vec::new(),
            };
            retried(EtcdCall::Announcement, || {
                let (mut client, request) = (self.kv(), request.clone());
                async move { client.txn(request).await }
            })
            .await?;
            Ok(())
        }
        .boxed()
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, StoreError>> {
        async move {
            let prefix = self.member_prefix();
            let request = RangeRequest {
                range_end: range_end(&prefix),
                key: prefix,
                ..Default::default()
            };
            let answer = retried(EtcdCall::MemberRead, || {
                let (mut client, request) = (self.kv(), request.clone());
                async move { client.range(request).await }
            })
            .await?;
            Ok(answer
                .kvs
                .iter()
                .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
                .collect())
        }
        .boxed()
    }

    fn revoke(&self, lease: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let request = LeaseRevokeRequest { id: lease };
            match retried(EtcdCall::LeaseRevocation, || {
                let mut client = self.lease_client();
                async move { client.lease_revoke(request).await }
            })
            .await
            {
                // Gone already: what revoking it was for.
                Ok(_) | Err(StoreError::LeaseNotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }
}
