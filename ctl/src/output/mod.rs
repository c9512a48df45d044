//! Everything `swctl` prints about objects, in kubectl's formats, as pure
//! functions returning `String` (the caller writes it out). Times come in as
//! `now` so output is reproducible in tests.
//!
//! - `get`: [`print_table`] with [`TableOptions`] (`-o wide`, `-A`, kind
//!   prefixes, `--no-headers`); [`WatchPrinter`] for `get -w`;
//!   [`print_endpoints`] / [`endpoints_rows`] for the Endpoints view built
//!   from EndpointSlices.
//! - `-o yaml` / `-o json`: [`to_yaml`], [`to_json`].
//! - `describe`: [`describe_service`], [`describe_pod`], [`describe_deployment`], [`describe_node`].

mod control_planes;
mod describe;
mod endpoints;
mod table;

pub use control_planes::print_control_planes;
pub use describe::{describe_deployment, describe_node, describe_pod, describe_service};
pub use endpoints::{endpoints_rows, print_endpoints, EndpointsRow};
pub use table::{print_table, TableOptions, WatchPrinter};

use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use switchyard_api::resources::Object;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `-o yaml`: a single object as itself when one was asked for by name
/// (`as_list == false`), anything else as a `v1` `List`, as kubectl does.
/// Keys are sorted, as kubectl's YAML (converted from JSON maps) has them.
pub fn to_yaml(objects: &[Object], as_list: bool) -> Result<String, OutputError> {
    let mut value = match objects {
        [object] if !as_list => typed(object).to_value(),
        _ => list(objects.iter().map(|o| typed(o).to_value()).collect()),
    };
    value.sort_all_objects();
    Ok(serde_saphyr::to_string(&value)?)
}

/// `-o json`: shaped as [`to_yaml`]; four-space indents and fields in API
/// order, as kubectl prints them.
pub fn to_json(objects: &[Object], as_list: bool) -> Result<String, OutputError> {
    let typed: Vec<Object> = objects.iter().map(typed).collect();
    let text = match typed.as_slice() {
        [object] if !as_list => pretty_json(&Typed(object))?,
        _ => pretty_json(&TypedList {
            api_version: "v1",
            items: typed.iter().map(Typed).collect(),
            kind: "List",
            metadata: ListMeta {
                resource_version: "",
            },
        })?,
    };
    Ok(text + "\n")
}

/// The object with `apiVersion` and `kind` filled, so it stands on its own.
fn typed(object: &Object) -> Object {
    object.clone().with_type_meta()
}

fn list(items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": { "resourceVersion": "" },
    })
}

fn pretty_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    // serde_json writes only valid UTF-8.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Serializes the concrete type, keeping its field order (a `Value` would sort it).
struct Typed<'a>(&'a Object);

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Object::Namespace(o) => o.serialize(serializer),
            Object::Service(o) => o.serialize(serializer),
            Object::Pod(o) => o.serialize(serializer),
            Object::Deployment(o) => o.serialize(serializer),
            Object::EndpointSlice(o) => o.serialize(serializer),
            Object::Node(o) => o.serialize(serializer),
            Object::User(o) => o.serialize(serializer),
            Object::BootstrapToken(o) => o.serialize(serializer),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypedList<'a> {
    api_version: &'static str,
    items: Vec<Typed<'a>>,
    kind: &'static str,
    metadata: ListMeta,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: &'static str,
}

#[cfg(test)]
mod tests;
