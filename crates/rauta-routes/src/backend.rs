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
use rauta_maglev::{MaglevBackend, MaglevTable};

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
        let hash = match client.ip() {
            IpAddr::V4(ip) => flow_hash_v4(ip.octets(), client.port()),
            IpAddr::V6(ip) => flow_hash_v6(ip.octets(), client.port()),
        };
        self.pick_by_hash(hash)
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
        services: &'a [Service],
        slices: &'a [EndpointSlice],
        diags: &mut Vec<Diagnostic>,
    ) -> Self {
        let services = services
            .iter()
            .map(|s| ((s.metadata.namespace(), s.metadata.name.as_str()), s))
            .collect();
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
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
            // Nil `ready` means ready (API contract); unparsable addresses were reported by `new`.
            let ready = slice
                .endpoints
                .iter()
                .filter(|e| e.conditions.ready != Some(false));
            let ips =
                ready.flat_map(|e| e.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()));
            endpoints.extend(ips.map(|ip| SocketAddr::new(ip, number)));
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
