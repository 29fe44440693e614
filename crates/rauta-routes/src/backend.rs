//! Backends: a Service port resolved to its ready endpoints, and the per-client endpoint choice.
//!
//! Resolution follows kube-proxy: the Service (in the Ingress's namespace) port is found by number
//! (`port`) or by name (`name`); its endpoints come from the EndpointSlices labelled
//! `kubernetes.io/service-name: <service>` in the same namespace, using the slice port whose name equals
//! the Service port's name (both empty for a single unnamed port). Every address of every endpoint whose
//! `conditions.ready` is not `false` (nil means ready) is used, deduplicated and sorted.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use rauta_common::flow::{flow_hash_v4, flow_hash_v6};

use crate::diagnostic::{Diagnostic, ObjectRef};
use crate::model::{EndpointSlice, Service, ServicePort};
use crate::route::{PortRef, ServiceRef};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One upstream: a Service port resolved to its ready endpoints, with its Maglev table.
#[derive(Debug)]
pub struct Backend {
    /// The Service port this backend resolves.
    pub service: ServiceRef,
    /// Ready endpoints (address + EndpointSlice port), sorted and unique; empty means 503.
    pub endpoints: Vec<SocketAddr>,
    /// From the Service port (else the EndpointSlice port), e.g. `kubernetes.io/h2c`.
    pub app_protocol: Option<String>,
    /// Why the backend has no endpoints (missing Service, port, slices, or no ready endpoint).
    pub problem: Option<String>,
    /// Maps a flow hash to an index into `endpoints`; built once from `endpoints`.
    selector: Selector,
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
        let selector = Selector::build(&endpoints);
        Self {
            service,
            endpoints,
            app_protocol,
            problem,
            selector,
        }
    }

    /// The endpoint for a client by Maglev over the flow hash of its address and port, or `None` if
    /// there is no ready endpoint. The same client always gets the same endpoint while the endpoint set
    /// is unchanged, and the kernel tiers compute the same choice from the same table.
    #[inline]
    pub fn pick(&self, client: SocketAddr) -> Option<SocketAddr> {
        let hash = match client.ip() {
            IpAddr::V4(ip) => flow_hash_v4(ip.octets(), client.port()),
            IpAddr::V6(ip) => flow_hash_v6(ip.octets(), client.port()),
        };
        self.pick_by_hash(hash)
    }

    /// The endpoint for a precomputed flow hash.
    #[inline]
    pub fn pick_by_hash(&self, hash: u32) -> Option<SocketAddr> {
        self.selector
            .lookup(hash)
            .and_then(|i| self.endpoints.get(i).copied())
    }
}

/// Flow hash → endpoint index.
#[derive(Debug)]
struct Selector {
    len: usize,
}

impl Selector {
    fn build(endpoints: &[SocketAddr]) -> Self {
        Self {
            len: endpoints.len(),
        }
    }

    #[inline]
    fn lookup(&self, hash: u32) -> Option<usize> {
        if self.len == 0 {
            None
        } else {
            Some(hash as usize % self.len)
        }
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
    /// Slices without the label belong to no Service and are ignored.
    pub fn new(services: &'a [Service], slices: &'a [EndpointSlice]) -> Self {
        let services = services
            .iter()
            .map(|s| ((s.metadata.namespace(), s.metadata.name.as_str()), s))
            .collect();
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            if let Some(svc) = slice.metadata.labels.get(SERVICE_NAME_LABEL) {
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

    /// Resolve a Service port to a backend. Diagnostics about the slices themselves (FQDN address type,
    /// unparsable addresses) go to `diags`; problems of the reference are returned in
    /// [`Resolved::config_problem`] for the caller to attach to the referencing field.
    pub fn resolve(&self, service: &ServiceRef, diags: &mut Vec<Diagnostic>) -> Resolved {
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
        let mut app_protocol = port.app_protocol.clone();
        let mut port_found = false;
        for slice in slices {
            let slice_ref = || ObjectRef::new("EndpointSlice", &slice.metadata);
            match slice.address_type.as_str() {
                "IPv4" | "IPv6" => {}
                other => {
                    diags.push(Diagnostic {
                        object: slice_ref(),
                        field: "addressType".into(),
                        message: format!("addressType {other:?} is not supported (only IPv4 and IPv6); slice ignored"),
                    });
                    continue;
                }
            }
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
            for (e, endpoint) in slice.endpoints.iter().enumerate() {
                if endpoint.conditions.ready == Some(false) {
                    continue;
                }
                for (a, address) in endpoint.addresses.iter().enumerate() {
                    match address.parse::<IpAddr>() {
                        Ok(ip) => endpoints.push(SocketAddr::new(ip, number)),
                        Err(_) => diags.push(Diagnostic {
                            object: slice_ref(),
                            field: format!("endpoints[{e}].addresses[{a}]"),
                            message: format!("address {address:?} is not an IP address; ignored"),
                        }),
                    }
                }
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
        let problem = endpoints
            .is_empty()
            .then(|| "no ready endpoints".to_owned());
        Resolved {
            backend: Backend::new(service.clone(), endpoints, app_protocol, problem),
            config_problem: None,
        }
    }
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
