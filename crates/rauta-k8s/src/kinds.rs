//! The watched kinds as kube `ApiResource`s. The kinds themselves (names, group, version, plural) are
//! `rauta_routes::Kind`, shared with the manifest reader, so that both modes read exactly the same kinds.

use kube::core::{ApiResource, GroupVersionKind};

pub use rauta_routes::Kind;

/// The kube description of `kind`, for dynamic watches and status writes.
pub fn api_resource(kind: Kind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group(), kind.version(), kind.name()),
        kind.plural(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_resources_name_the_api_paths() {
        let ingress = api_resource(Kind::Ingress);
        assert_eq!(ingress.api_version, "networking.k8s.io/v1");
        assert_eq!(ingress.plural, "ingresses");
        let service = api_resource(Kind::Service);
        assert_eq!(service.api_version, "v1");
        assert_eq!(service.group, "");
        assert_eq!(service.kind, "Service");
    }
}
