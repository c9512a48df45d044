use std::fmt;
use std::str::FromStr;

/// Every kind the API serves. `Endpoints` is a read-only view that `swctl`
/// builds from EndpointSlices, as `kubectl get endpoints` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Service,
    Pod,
    Deployment,
    EndpointSlice,
    Node,
    User,
    BootstrapToken,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Namespace,
        Kind::Service,
        Kind::Pod,
        Kind::Deployment,
        Kind::EndpointSlice,
        Kind::Node,
        Kind::User,
        Kind::BootstrapToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Node => "Node",
            Kind::User => "User",
            Kind::BootstrapToken => "BootstrapToken",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment => "apps/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::User | Kind::BootstrapToken => "switchyard.io/v1",
            _ => "v1",
        }
    }

    /// The lower-case plural Kubernetes uses in URLs and error messages.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Service => "services",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::EndpointSlice => "endpointslices",
            Kind::Node => "nodes",
            Kind::User => "users",
            Kind::BootstrapToken => "tokens",
        }
    }

    /// The lower-case singular kubectl prints in `service/frontend-svc created`.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Service => "service",
            Kind::Pod => "pod",
            Kind::Deployment => "deployment.apps",
            Kind::EndpointSlice => "endpointslice.discovery.k8s.io",
            Kind::Node => "node",
            Kind::User => "user",
            Kind::BootstrapToken => "token",
        }
    }

    pub fn is_namespaced(self) -> bool {
        !matches!(
            self,
            Kind::Namespace | Kind::Node | Kind::User | Kind::BootstrapToken
        )
    }

    /// Identities: issued by their own calls (`swctl create user|token`),
    /// never applied from manifests.
    pub fn is_identity(self) -> bool {
        matches!(self, Kind::User | Kind::BootstrapToken)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server doesn't have a resource type \"{}\"", self.0)
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Accepts the kind, its plural, singular and kubectl short names, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let kind = match s.to_ascii_lowercase().as_str() {
            "namespace" | "namespaces" | "ns" => Kind::Namespace,
            "service" | "services" | "svc" => Kind::Service,
            "pod" | "pods" | "po" => Kind::Pod,
            "deployment" | "deployments" | "deploy" | "deployment.apps" => Kind::Deployment,
            "endpointslice" | "endpointslices" | "endpointslice.discovery.k8s.io" => {
                Kind::EndpointSlice
            }
            "node" | "nodes" | "no" => Kind::Node,
            "user" | "users" => Kind::User,
            "bootstraptoken" | "bootstraptokens" | "token" | "tokens" => Kind::BootstrapToken,
            _ => return Err(UnknownKind(s.to_string())),
        };
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_plural_names() {
        assert_eq!("svc".parse(), Ok(Kind::Service));
        assert_eq!("Services".parse(), Ok(Kind::Service));
        assert_eq!("deploy".parse(), Ok(Kind::Deployment));
        assert_eq!("po".parse(), Ok(Kind::Pod));
        assert_eq!(
            "widgets".parse::<Kind>().map_err(|e| e.to_string()),
            Err("the server doesn't have a resource type \"widgets\"".to_string())
        );
    }
}
