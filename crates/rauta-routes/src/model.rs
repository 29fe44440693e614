//! The subset of the Kubernetes API objects the compiler reads, as serde types that accept real API JSON/YAML
//! (camelCase field names, unknown fields ignored). Only fields RAUTA uses are modelled.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `metadata` of any object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Empty means `default` (as `kubectl apply` does for namespaced kinds).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels (EndpointSlices carry `kubernetes.io/service-name`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (e.g. the legacy `kubernetes.io/ingress.class`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339, e.g. `2024-01-02T03:04:05Z`; absent in hand-written manifests.
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    /// Opaque version of the object, as the API server sets it.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// Unique id, as the API server sets it.
    #[serde(default)]
    pub uid: Option<String>,
}

impl ObjectMeta {
    /// The namespace, defaulting to `default`.
    pub fn namespace(&self) -> &str {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => "default",
        }
    }
}

/// networking.k8s.io/v1 Ingress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingress {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired routing.
    #[serde(default)]
    pub spec: IngressSpec,
}

/// The `spec` of an Ingress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The IngressClass this Ingress belongs to.
    #[serde(default)]
    pub ingress_class_name: Option<String>,
    /// Backend for requests that match no rule of this Ingress.
    #[serde(default)]
    pub default_backend: Option<IngressBackend>,
    /// Hosts served over TLS and their certificates.
    #[serde(default)]
    pub tls: Vec<IngressTls>,
    /// Host and path rules.
    #[serde(default)]
    pub rules: Vec<IngressRule>,
}

/// One `spec.tls` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// Hosts the certificate covers; empty means every host of the Ingress.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The `kubernetes.io/tls` Secret holding the certificate and key.
    #[serde(default)]
    pub secret_name: Option<String>,
}

/// One `spec.rules` entry: a host and its paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// Exact host or `*.` wildcard; absent matches every host no host rule matches.
    #[serde(default)]
    pub host: Option<String>,
    /// The paths of the rule.
    #[serde(default)]
    pub http: Option<HttpIngressRuleValue>,
}

/// The `http` of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpIngressRuleValue {
    /// Path rules, each to a backend.
    #[serde(default)]
    pub paths: Vec<HttpIngressPath>,
}

/// One path of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpIngressPath {
    /// The path (a regex for `ImplementationSpecific`).
    #[serde(default)]
    pub path: Option<String>,
    /// `Exact`, `Prefix` or `ImplementationSpecific`; required by the API. Kept as a string so that a bad
    /// value becomes a compiler diagnostic naming the field rather than a parse failure of the whole file.
    #[serde(default)]
    pub path_type: Option<String>,
    /// Where matching requests go.
    #[serde(default)]
    pub backend: IngressBackend,
}

/// A backend: a Service port (resource backends are unsupported).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackend {
    /// A Service port backend.
    #[serde(default)]
    pub service: Option<IngressServiceBackend>,
    /// Resource backends are not supported by RAUTA (reported as a diagnostic).
    #[serde(default)]
    pub resource: Option<serde_json::Value>,
}

/// A Service port backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressServiceBackend {
    /// Service name, in the Ingress's namespace.
    #[serde(default)]
    pub name: String,
    /// Service port, by number or by name.
    #[serde(default)]
    pub port: ServiceBackendPort,
}

/// A Service port by number or by name (exactly one is set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBackendPort {
    /// Service port name.
    #[serde(default)]
    pub name: Option<String>,
    /// Service port number.
    #[serde(default)]
    pub number: Option<i32>,
}

/// networking.k8s.io/v1 IngressClass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressClass {
    /// Object metadata (the default-class annotation lives here).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The controller the class belongs to.
    #[serde(default)]
    pub spec: IngressClassSpec,
}

/// The `spec` of an IngressClass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressClassSpec {
    /// Controller name, e.g. `rauta.io/ingress-controller`.
    #[serde(default)]
    pub controller: Option<String>,
}

/// v1 Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Ports and type.
    #[serde(default)]
    pub spec: ServiceSpec,
}

/// The `spec` of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The ports the Service exposes.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// The virtual IP, if any. The API spells it `clusterIP`, which camelCase renaming would miss.
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
}

/// One port of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port name; matches the EndpointSlice port name.
    #[serde(default)]
    pub name: Option<String>,
    /// The Service port number (what Ingress backends name by number).
    #[serde(default)]
    pub port: i32,
    /// Number or name of the container port; informational here (EndpointSlices carry the real port).
    #[serde(default)]
    pub target_port: Option<serde_json::Value>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// e.g. `kubernetes.io/h2c`, `kubernetes.io/ws`, `kubernetes.io/wss`.
    #[serde(default)]
    pub app_protocol: Option<String>,
}

/// discovery.k8s.io/v1 EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Object metadata (label `kubernetes.io/service-name` ties it to its Service).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN` (FQDN slices are ignored with a diagnostic).
    #[serde(default)]
    pub address_type: String,
    /// The endpoints of the slice.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The ports every endpoint of the slice serves.
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// IP addresses (or FQDNs in FQDN slices) of the endpoint.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Readiness of the endpoint.
    #[serde(default)]
    pub conditions: EndpointConditions,
    /// The node hosting the endpoint.
    #[serde(default)]
    pub node_name: Option<String>,
    /// The zone of the endpoint.
    #[serde(default)]
    pub zone: Option<String>,
}

/// Per the API, a nil `ready` means ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointConditions {
    /// Ready to receive traffic; `None` means ready.
    #[serde(default)]
    pub ready: Option<bool>,
    /// Serving (may be true while terminating).
    #[serde(default)]
    pub serving: Option<bool>,
    /// Being shut down.
    #[serde(default)]
    pub terminating: Option<bool>,
}

/// One port of an EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// Matches the Service port's name (both empty for a single unnamed port).
    #[serde(default)]
    pub name: Option<String>,
    /// The port number endpoints listen on.
    #[serde(default)]
    pub port: Option<i32>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Application protocol, used when the Service port has none.
    #[serde(default)]
    pub app_protocol: Option<String>,
}

/// v1 Secret (only `kubernetes.io/tls` ones matter to RAUTA).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// e.g. `kubernetes.io/tls`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Base64-encoded values, as the API serves them.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Plain-text values (manifests only; the API merges them into `data`).
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
}

/// Every object the compiler reads. Order within each list does not matter: the compiler sorts.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Ingresses (of every class; the compiler filters).
    pub ingresses: Vec<Ingress>,
    /// IngressClasses (for the default-class rule).
    pub ingress_classes: Vec<IngressClass>,
    /// Services referenced by Ingress backends.
    pub services: Vec<Service>,
    /// EndpointSlices of those Services.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// TLS Secrets (not read by the route compiler; carried for the TLS loader).
    pub secrets: Vec<Secret>,
}

/// [`Inputs`] with every object behind an `Arc`: what a long-running source (the Kubernetes watch cache)
/// hands to [`crate::IncrementalCompiler`]. Successive snapshots share the objects that did not change, so
/// taking one costs a pointer copy per object rather than a deep clone, and the compiler recognises
/// unchanged objects by pointer before comparing values.
#[derive(Debug, Clone, Default)]
pub struct SharedInputs {
    /// Ingresses (of every class; the compiler filters).
    pub ingresses: Vec<std::sync::Arc<Ingress>>,
    /// IngressClasses (for the default-class rule).
    pub ingress_classes: Vec<std::sync::Arc<IngressClass>>,
    /// Services referenced by Ingress backends.
    pub services: Vec<std::sync::Arc<Service>>,
    /// EndpointSlices of those Services.
    pub endpoint_slices: Vec<std::sync::Arc<EndpointSlice>>,
    /// TLS Secrets (not read by the route compiler; carried for the TLS loader).
    pub secrets: Vec<std::sync::Arc<Secret>>,
}

impl SharedInputs {
    /// Wrap owned objects (each one moves into its own `Arc`).
    pub fn from_inputs(inputs: Inputs) -> Self {
        fn arcs<T>(v: Vec<T>) -> Vec<std::sync::Arc<T>> {
            v.into_iter().map(std::sync::Arc::new).collect()
        }
        Self {
            ingresses: arcs(inputs.ingresses),
            ingress_classes: arcs(inputs.ingress_classes),
            services: arcs(inputs.services),
            endpoint_slices: arcs(inputs.endpoint_slices),
            secrets: arcs(inputs.secrets),
        }
    }

    /// A deep copy as plain [`Inputs`] (for consumers that take owned objects, e.g. tests).
    pub fn to_inputs(&self) -> Inputs {
        fn owned<T: Clone>(v: &[std::sync::Arc<T>]) -> Vec<T> {
            v.iter().map(|o| (**o).clone()).collect()
        }
        Inputs {
            ingresses: owned(&self.ingresses),
            ingress_classes: owned(&self.ingress_classes),
            services: owned(&self.services),
            endpoint_slices: owned(&self.endpoint_slices),
            secrets: owned(&self.secrets),
        }
    }
}
