//! Where an object lives in the store: `<namespace>/<name>` for namespaced
//! kinds, `<name>` for the rest (one keyspace per kind).

use switchyard_api::resources::{Kind, Object};

use super::ObjectKey;

pub fn object_key(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
    if kind.is_namespaced() {
        format!("{namespace}/{name}")
    } else {
        name.to_string()
    }
}

pub fn key_of(obj: &Object) -> ObjectKey {
    object_key(obj.kind(), obj.namespace(), obj.name())
}
