//! What the kernel's route maps should hold for a compiled route table: a pure function, testable
//! without BPF.
//!
//! A route goes into the kernel only if the kernel's answer for its (host, path) is provably Tier 3's:
//! - its tier is [`Tier::Xdp`] (Exact path, plain HTTP);
//! - it has an exact host: hostless routes (and wildcard hosts) apply to "every host without its own
//!   rules", which the kernel cannot know from a hash lookup — they stay in Tier 3;
//! - host and path fit `ROUTE_HOST_MAX` / `ROUTE_PATH_MAX` (`rauta_common::route`);
//! - `table.lookup(host, path)` returns this very route (so precedence, e.g. a longer regex, cannot
//!   disagree with the kernel's exact match);
//! - its backend has endpoints, all IPv4 (a mixed table's slots could point at an endpoint the kernel
//!   cannot reach; the whole service stays in Tier 3).
//!
//! Services are the distinct backends (by `Arc` identity) of the routes that qualify; each carries its
//! Maglev table expanded to one endpoint per slot, from `Backend::maglev()` — the table Tier 3 picks
//! with — so both tiers choose the same endpoint for the same client. When some endpoints are
//! unhealthy, Tier 3 picks from a table over the healthy ones (`rauta_health`); the caller passes that
//! table's slots ([`HealthySlots`]) and the kernel gets the same one.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use rauta_common::route::{Endpoint, RouteKey, ROUTE_ENTRIES, SERVICES_PER_BANK, SLOTS_PER_BANK};
use rauta_routes::{Backend, Match, Route, RouteTable, ServiceRef, Tier};

/// The contents of the route maps for one table, before service ids are assigned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteMapsImage {
    /// Route keys and the index into `services` each one points at.
    pub routes: Vec<(RouteKey, usize)>,
    /// One entry per distinct backend used by `routes`.
    pub services: Vec<ServiceImage>,
    /// Routes left to Tier 3, and why (for logs and tests).
    pub skipped: Vec<Skipped>,
}

/// One service's Maglev table, expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceImage {
    /// The Service port it resolves.
    pub service: ServiceRef,
    /// Distinct endpoints in `slots`.
    pub endpoints: u32,
    /// Endpoint per Maglev slot (`slots.len()` is the table size).
    pub slots: Vec<Endpoint>,
    /// Every endpoint of the backend, in the slots or not (an unhealthy one is not): splices to these
    /// stay; a splice to an endpoint outside every service's members left the table and is reset.
    pub members: Vec<Endpoint>,
}

/// The endpoint per Maglev slot Tier 3 picks from for a backend, when that is not the backend's own
/// table (some endpoints unhealthy); `None` for the backend's own table.
pub type HealthySlots<'a> = &'a dyn Fn(&Arc<Backend>) -> Option<Vec<SocketAddr>>;

/// A route Tier 1 does not serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The route's host (`None`: hostless).
    pub host: Option<String>,
    /// The route's path.
    pub path: String,
    /// Why.
    pub why: SkipReason,
}

/// Why a route stays in Tier 3 only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Not an XDP-tier route (Prefix, regex, TLS).
    NotXdpTier,
    /// No host: hostless rules apply to hosts the kernel cannot enumerate.
    Hostless,
    /// A wildcard host (`*.example.com`).
    WildcardHost,
    /// Host longer than `ROUTE_HOST_MAX` or path longer than `ROUTE_PATH_MAX`.
    TooLong,
    /// Tier 3's lookup of (host, path) returns another route or a default backend.
    Shadowed,
    /// The backend has no ready endpoint (Tier 3 answers 503).
    NoEndpoints,
    /// An endpoint is not IPv4.
    NotIpv4,

    /// The route, service or slot map would exceed its capacity.
    Capacity,
}

impl RouteMapsImage {
    /// Total Maglev slots over every service.
    pub fn slot_count(&self) -> usize {
        self.services.iter().map(|s| s.slots.len()).sum()
    }
}

/// Computes the route maps' contents for `table` (see the module docs for which routes qualify), every
/// backend with its own Maglev table.
pub fn route_maps_from_table(table: &RouteTable) -> RouteMapsImage {
    route_maps_with_health(table, &|_| None)
}

/// As [`route_maps_from_table`], each backend's slots from `healthy` where it has some.
pub fn route_maps_with_health(table: &RouteTable, healthy: HealthySlots) -> RouteMapsImage {
    let mut image = RouteMapsImage::default();
    // Backend identity → index into image.services.
    let mut service_index: HashMap<*const Backend, usize> = HashMap::new();
    let mut slots_used = 0usize;
    for route in table.routes() {
        match qualify(table, route) {
            Err(why) => image.skipped.push(skipped(route, why)),
            Ok(key) => {
                if image.routes.len() >= ROUTE_ENTRIES as usize {
                    image.skipped.push(skipped(route, SkipReason::Capacity));
                    continue;
                }
                let ptr = Arc::as_ptr(&route.backend);
                let index = match service_index.get(&ptr) {
                    Some(&i) => i,
                    None => {
                        let service = expand(&route.backend, healthy(&route.backend));
                        if image.services.len() >= SERVICES_PER_BANK as usize
                            || slots_used + service.slots.len() > SLOTS_PER_BANK as usize
                        {
                            image.skipped.push(skipped(route, SkipReason::Capacity));
                            continue;
                        }
                        slots_used += service.slots.len();
                        image.services.push(service);
                        service_index.insert(ptr, image.services.len() - 1);
                        image.services.len() - 1
                    }
                };
                image.routes.push((key, index));
            }
        }
    }
    image
}

fn skipped(route: &Route, why: SkipReason) -> Skipped {
    Skipped {
        host: route.host.clone(),
        path: route.path.clone(),
        why,
    }
}

/// The route's key if the kernel may serve it.
fn qualify(table: &RouteTable, route: &Route) -> Result<RouteKey, SkipReason> {
    if route.tier != Tier::Xdp {
        return Err(SkipReason::NotXdpTier);
    }
    let Some(host) = route.host.as_deref() else {
        return Err(SkipReason::Hostless);
    };
    if host.starts_with("*.") {
        return Err(SkipReason::WildcardHost);
    }
    let key = RouteKey::new(host.as_bytes(), route.path.as_bytes()).ok_or(SkipReason::TooLong)?;
    match table.lookup(host, &route.path) {
        Match::Route(found) if std::ptr::eq(found, route) => {}
        _ => return Err(SkipReason::Shadowed),
    }
    let endpoints = &route.backend.endpoints;
    if endpoints.is_empty() || route.backend.maglev().is_empty() {
        return Err(SkipReason::NoEndpoints);
    }
    if !endpoints.iter().all(SocketAddr::is_ipv4) {
        return Err(SkipReason::NotIpv4);
    }
    Ok(key)
}

/// The backend's Maglev table with each slot resolved to its (IPv4) endpoint.
fn expand(backend: &Backend, healthy: Option<Vec<SocketAddr>>) -> ServiceImage {
    // `qualify` checked every endpoint is IPv4.
    let endpoint = |addr: &SocketAddr| match addr {
        SocketAddr::V4(a) => Endpoint::new(a.ip().octets(), a.port()),
        SocketAddr::V6(_) => Endpoint::default(),
    };
    let members: Vec<Endpoint> = backend.endpoints.iter().map(endpoint).collect();
    let slots: Vec<Endpoint> = match healthy {
        // Health's table, if it only names this backend's endpoints (it always does; checked, as a
        // slot the kernel splices to must be one the table allows).
        Some(slots) if !slots.is_empty() && slots.iter().all(|a| backend.endpoints.contains(a)) => {
            slots.iter().map(endpoint).collect()
        }
        _ => backend
            .maglev()
            .slots()
            .iter()
            // Maglev slots index `endpoints`.
            .map(|&i| members.get(usize::from(i)).copied().unwrap_or_default())
            .collect(),
    };
    let endpoints = members.iter().filter(|m| slots.contains(m)).count() as u32;
    ServiceImage {
        service: backend.service.clone(),
        endpoints,
        slots,
        members,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use rauta_common::flow::{flow_hash_v4, maglev_slot};
    use rauta_common::route::ROUTE_PATH_MAX;
    use rauta_routes::{compile, model::Inputs, CompileOptions};

    use super::*;

    fn table(yaml: &str) -> RouteTable {
        let mut inputs = Inputs::default();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            match value.get("kind").and_then(|k| k.as_str()).unwrap() {
                "Ingress" => inputs
                    .ingresses
                    .push(serde_yaml::from_value(value).unwrap()),
                "Service" => inputs.services.push(serde_yaml::from_value(value).unwrap()),
                "EndpointSlice" => inputs
                    .endpoint_slices
                    .push(serde_yaml::from_value(value).unwrap()),
                other => panic!("unknown kind {other}"),
            }
        }
        compile(&inputs, &CompileOptions::default()).table
    }

    fn service(name: &str, addresses: &[&str]) -> String {
        format!(
            r#"
---
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: 80}}]
---
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: [{}]
"#,
            addresses
                .iter()
                .map(|a| format!("{{addresses: [\"{a}\"]}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    const INGRESS: &str = r#"
---
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  ingressClassName: rauta
  tls:
  - hosts: [secure.example]
  rules:
  - host: Shop.Example
    http:
      paths:
      - {path: /cart, pathType: Exact, backend: {service: {name: shop, port: {number: 80}}}}
      - {path: /static, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
      - {path: /about, pathType: Exact, backend: {service: {name: info, port: {number: 80}}}}
      - {path: /empty, pathType: Exact, backend: {service: {name: empty, port: {number: 80}}}}
      - {path: /v6, pathType: Exact, backend: {service: {name: six, port: {number: 80}}}}
      - {path: /grpc, pathType: Exact, backend: {service: {name: grpc, port: {number: 80}}}}
  - host: "*.wild.example"
    http:
      paths:
      - {path: /w, pathType: Exact, backend: {service: {name: shop, port: {number: 80}}}}
  - host: secure.example
    http:
      paths:
      - {path: /s, pathType: Exact, backend: {service: {name: shop, port: {number: 80}}}}
  - http:
      paths:
      - {path: /any, pathType: Exact, backend: {service: {name: shop, port: {number: 80}}}}
"#;

    fn fixture() -> RouteTable {
        let six = r#"
---
kind: Service
metadata: {name: six, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
kind: EndpointSlice
metadata:
  name: six-1
  namespace: default
  labels: {kubernetes.io/service-name: six}
addressType: IPv6
ports: [{name: http, port: 8080}]
endpoints: [{addresses: ["fd00::1"]}]
"#;
        let grpc = service("grpc", &["198.18.3.1"]).replace(
            "ports: [{name: http, port: 80}]",
            "ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]",
        );
        table(&format!(
            "{INGRESS}{}{}{}{six}{grpc}",
            service("shop", &["198.18.1.1", "198.18.1.2", "198.18.1.3"]),
            service("info", &["198.18.2.1"]),
            service("empty", &[]),
        ))
    }

    fn why(image: &RouteMapsImage, path: &str) -> Option<SkipReason> {
        image.skipped.iter().find(|s| s.path == path).map(|s| s.why)
    }

    #[test]
    fn only_exact_plain_http_routes_with_exact_hosts_and_ipv4_endpoints_qualify() {
        let image = route_maps_from_table(&fixture());
        let mut keys: Vec<(String, String)> = image
            .routes
            .iter()
            .map(|(k, _)| {
                (
                    String::from_utf8(k.host[..k.host_len as usize].to_vec()).unwrap(),
                    String::from_utf8(k.path[..k.path_len as usize].to_vec()).unwrap(),
                )
            })
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                ("shop.example".into(), "/about".into()),
                ("shop.example".into(), "/cart".into()),
            ],
            "skipped: {:?}",
            image.skipped
        );
        assert_eq!(why(&image, "/static"), Some(SkipReason::NotXdpTier));
        assert_eq!(why(&image, "/s"), Some(SkipReason::NotXdpTier), "TLS host");
        assert_eq!(why(&image, "/w"), Some(SkipReason::WildcardHost));
        assert_eq!(why(&image, "/any"), Some(SkipReason::Hostless));
        assert_eq!(why(&image, "/empty"), Some(SkipReason::NoEndpoints));
        assert_eq!(why(&image, "/v6"), Some(SkipReason::NotIpv4));
        assert_eq!(
            why(&image, "/grpc"),
            Some(SkipReason::NotXdpTier),
            "an h2c backend is Tier 3 only (Backend::speaks_plain_http1)"
        );
        assert_eq!(image.services.len(), 2, "shop and info, each once");
    }

    #[test]
    fn slots_pick_what_tier_3_picks_for_every_client() {
        let t = fixture();
        let image = route_maps_from_table(&t);
        for (key, index) in &image.routes {
            let host = std::str::from_utf8(&key.host[..key.host_len as usize]).unwrap();
            let path = std::str::from_utf8(&key.path[..key.path_len as usize]).unwrap();
            let Match::Route(route) = t.lookup(host, path) else {
                panic!("{host}{path} must be a route")
            };
            let service = &image.services[*index];
            assert_eq!(service.service, route.backend.service);
            let size = service.slots.len() as u32;
            assert!(rauta_maglev::is_prime(size), "{size}");
            for port in (1000..60000u16).step_by(997) {
                let client = Ipv4Addr::new(198, 18, 7, (port % 250) as u8);
                let hash = flow_hash_v4(client.octets(), port);
                let kernel = service.slots[maglev_slot(hash, size) as usize];
                let tier3 = route.backend.pick_by_hash(hash).unwrap();
                assert_eq!(
                    SocketAddr::V4(SocketAddrV4::new(kernel.octets().into(), kernel.port())),
                    tier3
                );
            }
        }
    }

    #[test]
    fn health_tables_replace_a_backends_slots_and_keep_its_members() {
        let t = fixture();
        let Match::Route(cart) = t.lookup("shop.example", "/cart") else {
            panic!()
        };
        let down: SocketAddr = "198.18.1.2:8080".parse().unwrap();
        let healthy: Vec<SocketAddr> = cart
            .backend
            .endpoints
            .iter()
            .copied()
            .filter(|&a| a != down)
            .cycle()
            .take(7)
            .collect();
        let shop = cart.backend.clone();
        let given = healthy.clone();
        let image = route_maps_with_health(&t, &move |b: &Arc<Backend>| {
            Arc::ptr_eq(b, &shop).then(|| given.clone())
        });
        let service = image
            .services
            .iter()
            .find(|s| s.service == cart.backend.service)
            .unwrap();
        let as_endpoint = |a: &SocketAddr| match a {
            SocketAddr::V4(a) => Endpoint::new(a.ip().octets(), a.port()),
            SocketAddr::V6(_) => unreachable!(),
        };
        assert_eq!(
            service.slots,
            healthy.iter().map(as_endpoint).collect::<Vec<_>>()
        );
        assert_eq!(service.endpoints, 2, "two distinct endpoints in the slots");
        assert_eq!(
            service.members.len(),
            3,
            "the unhealthy one is still a member"
        );
        assert!(service.members.contains(&as_endpoint(&down)));
        // Other backends keep their own tables; a table naming a foreign endpoint is ignored.
        let plain = route_maps_from_table(&t);
        let foreign = route_maps_with_health(&t, &|_| Some(vec!["192.0.2.1:80".parse().unwrap()]));
        assert_eq!(foreign, plain);
    }

    #[test]
    fn a_route_tier_3_resolves_differently_is_not_in_the_kernel() {
        // Two Ingresses claim the same host and Exact path: Tier 3 serves the older one; only that one
        // may be in the kernel (the other is dropped by the compiler or shadowed).
        let newer = INGRESS
            .replace("name: web,", "name: web2,")
            .replace("name: info", "name: shop");
        let t = table(&format!(
            "{INGRESS}{newer}{}{}",
            service("shop", &["198.18.1.1"]),
            service("info", &["198.18.2.1"])
        ));
        let image = route_maps_from_table(&t);
        let about: Vec<_> = image
            .routes
            .iter()
            .filter(|(k, _)| &k.path[..k.path_len as usize] == b"/about")
            .collect();
        assert_eq!(about.len(), 1, "{:?}", image.routes);
        let Match::Route(r) = t.lookup("shop.example", "/about") else {
            panic!()
        };
        assert_eq!(image.services[about[0].1].service, r.backend.service);
    }

    #[test]
    fn long_hosts_and_paths_stay_in_tier_3() {
        let long_path = format!("/{}", "p".repeat(ROUTE_PATH_MAX));
        let yaml = format!(
            r#"
---
kind: Ingress
metadata: {{name: long, namespace: default}}
spec:
  ingressClassName: rauta
  rules:
  - host: h.example
    http:
      paths:
      - {{path: "{long_path}", pathType: Exact, backend: {{service: {{name: shop, port: {{number: 80}}}}}}}}
{}"#,
            service("shop", &["198.18.1.1"])
        );
        let image = route_maps_from_table(&table(&yaml));
        assert!(image.routes.is_empty());
        assert_eq!(image.skipped[0].why, SkipReason::TooLong);
    }
}
