use serde::Serialize;

use super::{
    BootstrapToken, Deployment, EndpointSlice, Kind, Namespace, Node, ObjectMeta, Pod, Service,
    User,
};

/// Any stored object, tagged by kind. Pods are most of a cluster's
/// objects and the control plane holds every one, so the other kinds are
/// boxed: the enum is the size of a Pod, not of the largest kind (a
/// Service is half as big again).
#[allow(clippy::large_enum_variant)] // on purpose: Pods unboxed, one allocation each
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Namespace(Box<Namespace>),
    Service(Box<Service>),
    Pod(Pod),
    Deployment(Box<Deployment>),
    EndpointSlice(Box<EndpointSlice>),
    Node(Box<Node>),
    User(Box<User>),
    BootstrapToken(Box<BootstrapToken>),
}

macro_rules! each_kind {
    ($value:expr, $bound:ident => $body:expr) => {
        match $value {
            Object::Namespace($bound) => $body,
            Object::Service($bound) => $body,
            Object::Pod($bound) => $body,
            Object::Deployment($bound) => $body,
            Object::EndpointSlice($bound) => $body,
            Object::Node($bound) => $body,
            Object::User($bound) => $body,
            Object::BootstrapToken($bound) => $body,
        }
    };
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Service(_) => Kind::Service,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Node(_) => Kind::Node,
            Object::User(_) => Kind::User,
            Object::BootstrapToken(_) => Kind::BootstrapToken,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        each_kind!(self, o => &o.metadata)
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each_kind!(self, o => &mut o.metadata)
    }

    /// Decodes an object of a known kind from JSON.
    pub fn from_json(kind: Kind, json: &str) -> serde_json::Result<Object> {
        Ok(match kind {
            Kind::Namespace => Object::Namespace(serde_json::from_str(json)?),
            Kind::Service => Object::Service(serde_json::from_str(json)?),
            Kind::Pod => Object::Pod(serde_json::from_str(json)?),
            Kind::Deployment => Object::Deployment(serde_json::from_str(json)?),
            Kind::EndpointSlice => Object::EndpointSlice(serde_json::from_str(json)?),
            Kind::Node => Object::Node(serde_json::from_str(json)?),
            Kind::User => Object::User(serde_json::from_str(json)?),
            Kind::BootstrapToken => Object::BootstrapToken(serde_json::from_str(json)?),
        })
    }

    /// Decodes an object of a known kind from a JSON value.
    pub fn from_value(kind: Kind, value: serde_json::Value) -> serde_json::Result<Object> {
        Ok(match kind {
            Kind::Namespace => Object::Namespace(serde_json::from_value(value)?),
            Kind::Service => Object::Service(serde_json::from_value(value)?),
            Kind::Pod => Object::Pod(serde_json::from_value(value)?),
            Kind::Deployment => Object::Deployment(serde_json::from_value(value)?),
            Kind::EndpointSlice => Object::EndpointSlice(serde_json::from_value(value)?),
            Kind::Node => Object::Node(serde_json::from_value(value)?),
            Kind::User => Object::User(serde_json::from_value(value)?),
            Kind::BootstrapToken => Object::BootstrapToken(serde_json::from_value(value)?),
        })
    }

    pub fn to_json(&self) -> String {
        each_kind!(self, o => to_json(o))
    }

    pub fn to_value(&self) -> serde_json::Value {
        each_kind!(self, o => serde_json::to_value(o).unwrap_or(serde_json::Value::Null))
    }

    /// Fills `apiVersion` and `kind` so the JSON stands on its own.
    pub fn with_type_meta(mut self) -> Object {
        let kind = self.kind();
        each_kind!(&mut self, o => {
            o.api_version = kind.api_version().to_string();
            o.kind = kind.as_str().to_string();
        });
        self
    }

    pub fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        &self.meta().name
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail: every map key is a string.
    serde_json::to_string(value).unwrap_or_default()
}

/// What a JSON value is, in the words of a manifest error
/// (`expected an object, found a list`).
pub fn json_type(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
