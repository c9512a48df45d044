//! Deserializers that keep decoded objects at their size.
//!
//! The control plane holds every object in memory for its whole life
//! (100,000 Pods at Kubernetes' scale). serde's list visitor grows a `Vec`
//! by doubling from four when the format gives no length, as JSON does, so
//! a Pod's single container would keep room for four: ~120 MiB of slack
//! across a 100,000-Pod store.

use serde::{Deserialize, Deserializer};

/// A list decoded without spare capacity.
pub fn vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut list = Vec::<T>::deserialize(deserializer)?;
    list.shrink_to_fit();
    Ok(list)
}

#[cfg(test)]
mod tests {
    use crate::resources::Pod;

    #[test]
    fn decoded_lists_hold_no_spare_room() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","ports":[{"containerPort":80}]}]},
                "status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        )
        .unwrap();
        assert_eq!(pod.spec.containers.capacity(), 1);
        assert_eq!(pod.spec.containers[0].ports.capacity(), 1);
        assert_eq!(pod.status.conditions.capacity(), 1);
    }
}
