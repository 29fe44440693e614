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

    /// The kube description of the kind.
    pub fn api_resource(self) -> ApiResource {
        let (group, kind, plural) = match self {
            Kind::Ingress => ("networking.k8s.io", "Ingress", "ingresses"),
            Kind::IngressClass => ("networking.k8s.io", "IngressClass", "ingressclasses"),
            Kind::Service => ("", "Service", "services"),
            Kind::EndpointSlice => ("discovery.k8s.io", "EndpointSlice", "endpointslices"),
            Kind::Secret => ("", "Secret", "secrets"),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
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
