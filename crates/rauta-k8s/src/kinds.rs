//! The watched kinds, as kube `ApiResource`s (group, version, kind, plural).

use kube::core::{ApiResource, GroupVersionKind};

/// One watched kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// networking.k8s.io/v1 IngressClass (cluster-scoped).
    IngressClass,
    /// v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// v1 Secret (TLS ones only; see `secrets`).
    Secret,
}

impl Kind {
    /// Every kind, in the order the cache lists them.
    pub const ALL: [Kind; 5] = [
        Kind::Ingress,
        Kind::IngressClass,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Secret,
    ];

    /// (group, version, kind, plural).
    pub fn gvk_plural(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Kind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            Kind::IngressClass => ("networking.k8s.io", "v1", "IngressClass", "ingressclasses"),
            Kind::Service => ("", "v1", "Service", "services"),
            Kind::EndpointSlice => ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
            Kind::Secret => ("", "v1", "Secret", "secrets"),
        }
    }

    /// The kube description of the kind.
    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = self.gvk_plural();
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    /// Whether objects of the kind live in namespaces.
    pub fn namespaced(self) -> bool {
        self != Kind::IngressClass
    }

    /// Lower-case name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ingress => "ingresses",
            Kind::IngressClass => "ingressclasses",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Secret => "secrets",
        }
    }
}
