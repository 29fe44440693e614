//! Backends: a Service port resolved to its ready endpoints, and the per-client endpoint choice.
//!
//! Resolution follows kube-proxy: the Service (in the Ingress's namespace) port is found by number
//! (`port`) or by name (`name`); its endpoints come from the EndpointSlices labelled
//! `kubernetes.io/service-name: <service>` in the same namespace, using the slice port whose name equals
//! the Service port's name (both empty for a single unnamed port).
//!
//! Endpoint conditions are read as the EndpointSlice API defines them and kube-proxy uses them: `ready`
//! nil means ready, `serving` nil means serving, `terminating` nil means not terminating. Every address of
//! every ready endpoint is used, deduplicated and sorted. Only when the Service port has no ready endpoint
//! at all are the endpoints that are `serving` and `terminating` used instead (a Deployment rolling its
//! last pods keeps answering while they drain, rather than failing with 503).
//!
//! A backend also carries its [`HealthPolicy`] (active HTTP checks, passive outlier ejection), read from
//! `rauta.io/` annotations on the Service and on the Ingress (see `health_policy`);
//! applying it is the job of the proxy side (`rauta-health`), not of this pure crate.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use rauta_common::flow::{flow_hash_v4, flow_hash_v6};
use rauta_maglev::{MaglevBackend, MaglevTable};

use crate::diagnostic::{Diagnostic, ObjectRef};
use crate::health_policy::HealthPolicy;
use crate::model::{EndpointConditions, EndpointSlice, Service, ServicePort};
use crate::route::{PortRef, ServiceRef};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One upstream: a Service port resolved to its ready endpoints, with its Maglev table.
#[derive(Debug)]
pub struct Backend {
    /// The Service port this backend resolves.
    pub service: ServiceRef,
    /// Ready endpoints (address + EndpointSlice port), sorted and unique; empty means 503. When no endpoint
    /// is ready, the serving-and-terminating ones (see [`Backend::terminating_fallback`]).
    pub endpoints: Vec<SocketAddr>,
    /// `endpoints` are serving-but-terminating endpoints, used because no endpoint is ready.
    pub terminating_fallback: bool,
    /// Active health checks and outlier ejection for the endpoints (annotations; defaults otherwise).
    pub health: HealthPolicy,
    /// From the Service port (else the EndpointSlice port), e.g. `kubernetes.io/h2c`.
    pub app_protocol: Option<String>,
    /// Why the backend has no endpoints (missing Service, port, slices, or no ready endpoint).
    pub problem: Option<String>,
    /// Maps a flow hash to an index into `endpoints`; built once from `endpoints` (key `ip:port`,
    /// weight 1), so it changes only when the endpoint set does.
    maglev: MaglevTable,
}

impl Backend {
    /// A backend over `endpoints` (sorted and deduplicated here), with its selection table built.
    pub fn new(
        service: ServiceRef,
        mut endpoints: Vec<SocketAddr>,
        app_protocol: Option<String>,
        problem: Option<String>,
    ) -> Self {
        endpoints.sort_unstable();
        endpoints.dedup();
        let keys: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
        let members: Vec<MaglevBackend> = keys
            .iter()
            .map(|key| MaglevBackend { key, weight: 1 })
            .collect();
        let maglev = MaglevTable::build(&members);
        Self {
            service,
            endpoints,
            terminating_fallback: false,
            health: HealthPolicy::default(),
            app_protocol,
            problem,
            maglev,
        }
    }

    /// The endpoint for a client by Maglev over the flow hash of its address and port, or `None` if
    /// there is no ready endpoint. The same client always gets the same endpoint while the endpoint set
    /// is unchanged, and the kernel tiers compute the same choice from the same table.
    #[inline]
    pub fn pick(&self, client: SocketAddr) -> Option<SocketAddr> {
        self.pick_by_hash(flow_hash(client))
    }

    /// The endpoint for a precomputed flow hash.
    #[inline]
    pub fn pick_by_hash(&self, hash: u32) -> Option<SocketAddr> {
        self.maglev
            .lookup(hash)
            .and_then(|i| self.endpoints.get(i).copied())
    }

    /// The Maglev table over [`Backend::endpoints`] (slot values index `endpoints`), for the BPF map
    /// writer: the kernel tiers index the same table to pick the same endpoint.
    pub fn maglev(&self) -> &MaglevTable {
        &self.maglev
    }

    /// Whether the backend takes a client's plain HTTP/1.1 request as it came — what the kernel tiers
    /// send: no `appProtocol`, `http`, or `kubernetes.io/ws` (WebSocket backends speak HTTP/1.1; upgrades
    /// never reach the kernel tiers). `kubernetes.io/h2c`, `kubernetes.io/wss` and others do not.
    pub fn speaks_plain_http1(&self) -> bool {
        match self.app_protocol.as_deref() {
            None => true,
            Some(p) => p.eq_ignore_ascii_case("http") || p == "kubernetes.io/ws",
        }
    }
}

/// The flow hash of a client address and port: the key every tier indexes Maglev tables with.
#[inline]
pub fn flow_hash(client: SocketAddr) -> u32 {
    match client.ip() {
        IpAddr::V4(ip) => flow_hash_v4(ip.octets(), client.port()),
        IpAddr::V6(ip) => flow_hash_v6(ip.octets(), client.port()),
    }
}

/// Services and EndpointSlices indexed for resolution, plus the backends resolved so far (one shared
/// backend per distinct [`ServiceRef`]).
pub(crate) struct Resolver<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

/// A resolved backend and, if it is broken, the message to attach to every reference to it.
pub(crate) struct Resolved {
    pub backend: Backend,
    /// Set for configuration problems worth a diagnostic at each reference (not for "no ready
    /// endpoints", which is a normal state of a scaled-down Deployment): the field under the
    /// reference's `backend` it is about (`service.name`, `service.port`, `service`) and the message.
    pub config_problem: Option<(&'static str, String)>,
}

impl<'a> Resolver<'a> {
    /// Index services by `(namespace, name)` and slices by `(namespace, service-name label)`.
    /// Slices without the label belong to no Service and are ignored. Each slice is checked once here
    /// (not per reference): FQDN slices are left out and unparsable addresses reported, into `diags`.
    pub fn new(
        services: &[&'a Service],
        slices: &[&'a EndpointSlice],
        diags: &mut Vec<Diagnostic>,
    ) -> Self {
        let services = services
            .iter()
            .map(|&s| ((s.metadata.namespace(), s.metadata.name.as_str()), s))
            .collect();
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for &slice in slices {
            if let Some(svc) = slice.metadata.labels.get(SERVICE_NAME_LABEL) {
                if !check_slice(slice, diags) {
                    continue;
                }
                by_service
                    .entry((slice.metadata.namespace(), svc.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        // Deterministic order, so that diagnostics come out in a stable order.
        for list in by_service.values_mut() {
            list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        Self {
            services,
            slices: by_service,
        }
    }

    /// Resolve a Service port to a backend. Problems of the reference are returned in
    /// [`Resolved::config_problem`] for the caller to attach to the referencing field.
    pub fn resolve(&self, service: &ServiceRef) -> Resolved {
        let broken = |field: &'static str, problem: String| Resolved {
            backend: Backend::new(service.clone(), Vec::new(), None, Some(problem.clone())),
            config_problem: Some((field, problem)),
        };
        let Some(svc) = self
            .services
            .get(&(service.namespace.as_str(), service.name.as_str()))
        else {
            return broken(
                "service.name",
                format!("service {}/{} not found", service.namespace, service.name),
            );
        };
        let Some(port) = find_port(&svc.spec.ports, &service.port) else {
            return broken(
                "service.port",
                format!(
                    "service {}/{} has no port {}",
                    service.namespace, service.name, service.port
                ),
            );
        };
        let Some(slices) = self
            .slices
            .get(&(service.namespace.as_str(), service.name.as_str()))
        else {
            return broken(
                "service",
                format!(
                    "service {}/{} has no EndpointSlices",
                    service.namespace, service.name
                ),
            );
        };
        let port_name = port.name.as_deref().unwrap_or("");
        let mut endpoints = Vec::new();
        let mut terminating = Vec::new();
        let mut app_protocol = port.app_protocol.clone();
        let mut port_found = false;
        for slice in slices {
            // The slice port with the Service port's name, as kube-proxy matches them.
            let Some(slice_port) = slice
                .ports
                .iter()
                .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            else {
                continue;
            };
            let Some(number) = slice_port
                .port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
            else {
                continue;
            };
            port_found = true;
            if app_protocol.is_none() {
                app_protocol = slice_port.app_protocol.clone();
            }
            // Unparsable addresses were reported by `new`.
            for endpoint in &slice.endpoints {
                let into = match Condition::of(&endpoint.conditions) {
                    Condition::Ready => &mut endpoints,
                    Condition::ServingTerminating => &mut terminating,
                    Condition::Unused => continue,
                };
                let ips = endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok());
                into.extend(ips.map(|ip| SocketAddr::new(ip, number)));
            }
        }
        if !port_found {
            return broken(
                "service.port",
                format!(
                    "no EndpointSlice of service {}/{} has a port named {:?}",
                    service.namespace, service.name, port_name
                ),
            );
        }
        // kube-proxy's fallback: terminating endpoints that still serve, only while none is ready.
        let terminating_fallback = endpoints.is_empty() && !terminating.is_empty();
        if terminating_fallback {
            endpoints = terminating;
        }
        let problem = endpoints
            .is_empty()
            .then(|| "no ready endpoints".to_owned());
        let mut backend = Backend::new(service.clone(), endpoints, app_protocol, problem);
        backend.terminating_fallback = terminating_fallback;
        Resolved {
            backend,
            config_problem: None,
        }
    }

    /// The Service a reference names, if it exists (for its annotations).
    pub fn service(&self, service: &ServiceRef) -> Option<&'a Service> {
        self.services
            .get(&(service.namespace.as_str(), service.name.as_str()))
            .copied()
    }
}

/// How an endpoint's conditions let it be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    /// `ready` (nil counts as true): serves traffic.
    Ready,
    /// Not ready, but `serving` (nil counts as true) and `terminating`: used only without ready endpoints.
    ServingTerminating,
    /// Neither.
    Unused,
}

impl Condition {
    fn of(c: &EndpointConditions) -> Condition {
        let ready = c.ready.unwrap_or(true);
        let serving = c.serving.unwrap_or(true);
        let terminating = c.terminating.unwrap_or(false);
        if ready {
            Condition::Ready
        } else if serving && terminating {
            Condition::ServingTerminating
        } else {
            Condition::Unused
        }
    }
}

/// Whether a slice can provide endpoints (IPv4 or IPv6); reports FQDN slices and bad addresses.
fn check_slice(slice: &EndpointSlice, diags: &mut Vec<Diagnostic>) -> bool {
    let object = || ObjectRef::new("EndpointSlice", &slice.metadata);
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        diags.push(Diagnostic {
            object: object(),
            field: "addressType".into(),
            message: format!(
                "addressType {:?} is not supported (only IPv4 and IPv6); slice ignored",
                slice.address_type
            ),
        });
        return false;
    }
    for (e, endpoint) in slice.endpoints.iter().enumerate() {
        for (a, address) in endpoint.addresses.iter().enumerate() {
            if address.parse::<IpAddr>().is_err() {
                diags.push(Diagnostic {
                    object: object(),
                    field: format!("endpoints[{e}].addresses[{a}]"),
                    message: format!("address {address:?} is not an IP address; ignored"),
                });
            }
        }
    }
    true
}

/// The Service port a reference names: by `port` number or by `name`.
fn find_port<'s>(ports: &'s [ServicePort], port: &PortRef) -> Option<&'s ServicePort> {
    match port {
        PortRef::Number(n) => ports.iter().find(|p| p.port == i32::from(*n)),
        PortRef::Name(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health_policy::{HEALTH_CHECK_PATH, OUTLIER_CONSECUTIVE_FAILURES};
    use crate::model::{Endpoint, EndpointPort, Ingress, Inputs, ObjectMeta};
    use crate::{compile, CompileOptions, Match};
    use std::sync::Arc;

    fn conditions(
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> EndpointConditions {
        EndpointConditions {
            ready,
            serving,
            terminating,
        }
    }

    #[test]
    fn conditions_follow_the_api_defaults() {
        use Condition::*;
        assert_eq!(Condition::of(&conditions(None, None, None)), Ready);
        assert_eq!(Condition::of(&conditions(Some(true), None, None)), Ready);
        assert_eq!(Condition::of(&conditions(Some(false), None, None)), Unused);
        // Serving nil counts as serving: a terminating endpoint without the field still drains.
        assert_eq!(
            Condition::of(&conditions(Some(false), None, Some(true))),
            ServingTerminating
        );
        assert_eq!(
            Condition::of(&conditions(Some(false), Some(true), Some(true))),
            ServingTerminating
        );
        assert_eq!(
            Condition::of(&conditions(Some(false), Some(false), Some(true))),
            Unused
        );
        assert_eq!(
            Condition::of(&conditions(Some(false), Some(true), Some(false))),
            Unused
        );
    }

    /// Address, ready, serving, terminating.
    type TestEndpoint<'s> = (&'s str, Option<bool>, Option<bool>, Option<bool>);

    /// Inputs with Service `shop/web` (port 80 "http") and one slice holding `endpoints`
    /// (address, ready, serving, terminating), plus an Ingress routing host `h` to it.
    fn inputs(
        endpoints: &[TestEndpoint],
        service_annotations: &[(&str, &str)],
        ingress_annotations: &[(&str, &str)],
    ) -> Inputs {
        let meta = |name: &str, annotations: &[(&str, &str)]| ObjectMeta {
            name: name.into(),
            namespace: Some("shop".into()),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ObjectMeta::default()
        };
        let service = Service {
            metadata: meta("web", service_annotations),
            spec: crate::model::ServiceSpec {
                ports: vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..ServicePort::default()
                }],
                ..Default::default()
            },
        };
        let mut slice_meta = meta("web-1", &[]);
        slice_meta
            .labels
            .insert(SERVICE_NAME_LABEL.into(), "web".into());
        let slice = EndpointSlice {
            metadata: slice_meta,
            address_type: "IPv4".into(),
            endpoints: endpoints
                .iter()
                .map(|(a, r, s, t)| Endpoint {
                    addresses: vec![a.to_string()],
                    conditions: conditions(*r, *s, *t),
                    ..Endpoint::default()
                })
                .collect(),
            ports: vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                ..EndpointPort::default()
            }],
        };
        let ingress: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ing", "namespace": "shop", "annotations":
                ingress_annotations.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<std::collections::BTreeMap<_, _>>()},
            "spec": {"ingressClassName": "rauta", "rules": [{"host": "h", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
        }))
        .unwrap();
        Inputs {
            ingresses: vec![ingress],
            services: vec![service],
            endpoint_slices: vec![slice],
            ..Inputs::default()
        }
    }

    fn backend(inputs: &Inputs) -> (Arc<Backend>, Vec<Diagnostic>) {
        let compiled = compile(inputs, &CompileOptions::default());
        match compiled.table.lookup("h", "/") {
            Match::Route(r) => (r.backend.clone(), compiled.diagnostics),
            other => panic!("{other:?}"),
        }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn terminating_serving_endpoints_are_used_only_without_ready_ones() {
        let t = Some(true);
        let f = Some(false);
        // One ready endpoint: the draining ones are not used.
        let (b, _) = backend(&inputs(
            &[
                ("10.0.0.1", None, None, None),
                ("10.0.0.2", f, t, t),
                ("10.0.0.3", f, None, t),
            ],
            &[],
            &[],
        ));
        assert_eq!(b.endpoints, addrs(&["10.0.0.1:8080"]));
        assert!(!b.terminating_fallback);
        // No ready endpoint: the serving+terminating ones serve; not-serving and not-ready-not-terminating
        // ones never do.
        let (b, _) = backend(&inputs(
            &[
                ("10.0.0.2", f, t, t),
                ("10.0.0.3", f, None, t),
                ("10.0.0.4", f, f, t),
                ("10.0.0.5", f, t, f),
            ],
            &[],
            &[],
        ));
        assert_eq!(b.endpoints, addrs(&["10.0.0.2:8080", "10.0.0.3:8080"]));
        assert!(b.terminating_fallback);
        assert_eq!(b.problem, None);
        assert!(b.pick("192.0.2.1:1000".parse().unwrap()).is_some());
        // Nothing usable at all: the backend is empty and says why.
        let (b, _) = backend(&inputs(&[("10.0.0.4", f, f, t)], &[], &[]));
        assert!(b.endpoints.is_empty());
        assert!(!b.terminating_fallback);
        assert_eq!(b.problem.as_deref(), Some("no ready endpoints"));
    }

    #[test]
    fn health_policy_comes_from_service_then_ingress_annotations() {
        let (b, diags) = backend(&inputs(
            &[("10.0.0.1", None, None, None)],
            &[(HEALTH_CHECK_PATH, "/healthz")],
            &[
                (HEALTH_CHECK_PATH, "/other"),
                (OUTLIER_CONSECUTIVE_FAILURES, "2"),
            ],
        ));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(b.health.active.as_ref().unwrap().path, "/healthz");
        assert_eq!(b.health.outlier.consecutive_failures, 2);
        // A bad value is reported on the object that carries it.
        let (b, diags) = backend(&inputs(
            &[("10.0.0.1", None, None, None)],
            &[(OUTLIER_CONSECUTIVE_FAILURES, "many")],
            &[(HEALTH_CHECK_PATH, "no-slash")],
        ));
        assert_eq!(b.health, HealthPolicy::default());
        let got: Vec<(&str, &str)> = diags
            .iter()
            .map(|d| (d.object.kind, d.field.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Service",
                    "metadata.annotations[rauta.io/outlier-consecutive-failures]"
                ),
                (
                    "Ingress",
                    "metadata.annotations[rauta.io/health-check-path]"
                ),
            ]
        );
    }
}
