//! The kinds RAUTA reads, from manifest files and from the API server alike, with the apiVersion each
//! must have and the names the API uses for it.

use std::fmt;

/// An object kind RAUTA reads (manifests and the API server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `networking.k8s.io/v1` IngressClass (cluster-scoped).
    IngressClass,
    /// `v1` Service.
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// `v1` Secret.
    Secret,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 5] = [
        Kind::Ingress,
        Kind::IngressClass,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Secret,
    ];

    /// The `kind` field's value.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Secret => "Secret",
        }
    }

    /// The only `apiVersion` accepted for the kind (older versions such as `extensions/v1beta1`
    /// Ingress were removed from Kubernetes and are skipped).
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Ingress | Kind::IngressClass => "networking.k8s.io/v1",
            Kind::Service | Kind::Secret => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The version within the group (`v1` for every kind RAUTA reads).
    pub fn version(self) -> &'static str {
        self.api_version()
            .rsplit_once('/')
            .map_or(self.api_version(), |(_, version)| version)
    }

    /// The resource name in API paths (`/apis/networking.k8s.io/v1/ingresses`); also how logs name a kind.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Ingress => "ingresses",
            Kind::IngressClass => "ingressclasses",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Secret => "secrets",
        }
    }

    /// Whether objects of the kind live in a namespace (IngressClass does not).
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::IngressClass)
    }

    /// The kind for an `(apiVersion, kind)` pair, if RAUTA reads it.
    pub fn recognise(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == kind && k.api_version() == api_version)
    }

    /// The element kind of a typed list (`IngressList` at `networking.k8s.io/v1` gives Ingress).
    pub fn of_typed_list(api_version: &str, kind: &str) -> Option<Kind> {
        let element = kind.strip_suffix("List")?;
        Kind::recognise(api_version, element)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_version_split_the_api_version() {
        assert_eq!(Kind::Ingress.group(), "networking.k8s.io");
        assert_eq!(Kind::EndpointSlice.group(), "discovery.k8s.io");
        assert_eq!(Kind::Service.group(), "");
        assert_eq!(Kind::Secret.version(), "v1");
        assert_eq!(Kind::IngressClass.version(), "v1");
    }

    #[test]
    fn recognises_supported_pairs_only() {
        assert_eq!(
            Kind::recognise("networking.k8s.io/v1", "Ingress"),
            Some(Kind::Ingress)
        );
        assert_eq!(Kind::recognise("extensions/v1beta1", "Ingress"), None);
        assert_eq!(
            Kind::recognise("networking.k8s.io/v1beta1", "Ingress"),
            None
        );
        assert_eq!(Kind::recognise("v1", "Service"), Some(Kind::Service));
        assert_eq!(Kind::recognise("v1", "Endpoints"), None);
        assert_eq!(
            Kind::recognise("discovery.k8s.io/v1", "EndpointSlice"),
            Some(Kind::EndpointSlice)
        );
        assert_eq!(
            Kind::recognise("discovery.k8s.io/v1beta1", "EndpointSlice"),
            None
        );
        assert_eq!(Kind::recognise("apps/v1", "Deployment"), None);
    }

    #[test]
    fn typed_lists() {
        assert_eq!(
            Kind::of_typed_list("networking.k8s.io/v1", "IngressList"),
            Some(Kind::Ingress)
        );
        assert_eq!(
            Kind::of_typed_list("v1", "ServiceList"),
            Some(Kind::Service)
        );
        assert_eq!(Kind::of_typed_list("v1", "List"), None);
        assert_eq!(Kind::of_typed_list("apps/v1", "DeploymentList"), None);
    }
}
