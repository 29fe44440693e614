//! The validation a real API server applies to these kinds, where a controller could tell the difference:
//! a manifest the fake accepts is one a real cluster accepts, and the reverse for what is checked here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::encode;
use crate::error::ApiError;
use crate::resources::Resource;

/// Collects `(field, message)` causes.
#[derive(Default)]
struct Causes(Vec<(String, String)>);

impl Causes {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }
}

/// 422 Invalid with every cause, or Ok.
pub fn validate(res: &Resource, object: &Value) -> Result<(), ApiError> {
    let mut causes = Causes::default();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        causes.add(
            "metadata.name",
            "Required value: name or generateName is required",
        );
    } else if !is_dns_subdomain(name) {
        causes.add(
            "metadata.name",
            format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"),
        );
    }
    match res.kind {
        "Ingress" => ingress(object, &mut causes),
        "Service" => service(object, &mut causes),
        "EndpointSlice" => endpoint_slice(object, &mut causes),
        "Secret" => secret(object, &mut causes),
        _ => {}
    }
    if causes.0.is_empty() {
        return Ok(());
    }
    let summary = causes
        .0
        .iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut error = ApiError::new(
        422,
        "Invalid",
        format!("{} \"{name}\" is invalid: {summary}", res.kind),
    );
    error.causes = causes.0;
    error.details = Some((name.to_string(), res.plural.to_string()));
    Err(error)
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn backend(field: &str, backend: &Value, causes: &mut Causes) {
    let service = &backend["service"];
    if service.is_null() {
        if backend["resource"].is_null() {
            causes.add(
                field,
                "Invalid value: one backend (service or resource) must be specified",
            );
        }
        return;
    }
    if service["name"].as_str().unwrap_or("").is_empty() {
        causes.add(format!("{field}.service.name"), "Required value");
    }
    let port = &service["port"];
    match (port["number"].as_i64(), port["name"].as_str()) {
        (Some(n), None) if (1..=65535).contains(&n) => {}
        (None, Some(n)) if !n.is_empty() => {}
        (Some(n), None) => causes.add(
            format!("{field}.service.port.number"),
            format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
        ),
        _ => causes.add(
            format!("{field}.service.port"),
            "Invalid value: exactly one of name or number must be specified",
        ),
    }
}

fn ingress(object: &Value, causes: &mut Causes) {
    let spec = &object["spec"];
    if !spec["defaultBackend"].is_null() {
        backend("spec.defaultBackend", &spec["defaultBackend"], causes);
    }
    let rules = items(&spec["rules"]);
    if rules.is_empty() && spec["defaultBackend"].is_null() {
        causes.add(
            "spec.rules",
            "Required value: either `defaultBackend` or `rules` must be specified",
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        if let Some(host) = rule["host"].as_str() {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if bare.parse::<IpAddr>().is_ok() || !is_dns_subdomain(bare) {
                causes.add(
                    format!("spec.rules[{i}].host"),
                    format!("Invalid value: \"{host}\": must be a DNS name, not an IP address"),
                );
            }
        }
        for (j, path) in items(&rule["http"]["paths"]).iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let path_type = path["pathType"].as_str();
            match path_type {
                Some("Exact" | "Prefix") => {
                    if !path["path"].as_str().unwrap_or("").starts_with('/') {
                        causes.add(format!("{field}.path"), "Invalid value: must be an absolute path");
                    }
                }
                Some("ImplementationSpecific") => {}
                Some(other) => causes.add(
                    format!("{field}.pathType"),
                    format!("Unsupported value: \"{other}\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""),
                ),
                None => causes.add(format!("{field}.pathType"), "Required value: pathType must be specified"),
            }
            backend(&format!("{field}.backend"), &path["backend"], causes);
        }
    }
}

fn service(object: &Value, causes: &mut Causes) {
    let ports = items(&object["spec"]["ports"]);
    let external = object["spec"]["type"].as_str() == Some("ExternalName");
    if ports.is_empty() && !external {
        causes.add("spec.ports", "Required value");
    }
    for (i, port) in ports.iter().enumerate() {
        let n = port["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&n) {
            causes.add(
                format!("spec.ports[{i}].port"),
                format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
            );
        }
        if ports.len() > 1 && port["name"].as_str().unwrap_or("").is_empty() {
            causes.add(format!("spec.ports[{i}].name"), "Required value");
        }
    }
}

/// The address checks of `ValidateEndpointIP`: no unspecified, loopback, link-local or link-local
/// multicast addresses, whatever the network.
fn endpoint_ip_problem(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("may not be unspecified (0.0.0.0 or ::)");
    }
    if ip.is_loopback() {
        return Some("may not be in the loopback range (127.0.0.0/8, ::1/128)");
    }
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_link_local() {
                return Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)");
            }
            if Ipv4Addr::new(224, 0, 0, 0) <= v4 && v4 <= Ipv4Addr::new(224, 0, 0, 255) {
                return Some(
                    "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
                );
            }
        }
        IpAddr::V6(v6) => {
            if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                return Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)");
            }
            if (v6.segments()[0] & 0xffc0) == 0xff00 && v6 != Ipv6Addr::UNSPECIFIED {
                return Some(
                    "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
                );
            }
        }
    }
    None
}

fn endpoint_slice(object: &Value, causes: &mut Causes) {
    let address_type = object["addressType"].as_str().unwrap_or("");
    if !matches!(address_type, "IPv4" | "IPv6" | "FQDN") {
        causes.add(
            "addressType",
            format!("Unsupported value: \"{address_type}\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""),
        );
    }
    for (i, endpoint) in items(&object["endpoints"]).iter().enumerate() {
        let addresses = items(&endpoint["addresses"]);
        if addresses.is_empty() || addresses.len() > 100 {
            causes.add(
                format!("endpoints[{i}].addresses"),
                "Invalid value: must contain 1 to 100 addresses",
            );
        }
        for (j, address) in addresses.iter().enumerate() {
            let field = format!("endpoints[{i}].addresses[{j}]");
            let text = address.as_str().unwrap_or("");
            match address_type {
                "IPv4" | "IPv6" => match text.parse::<IpAddr>() {
                    Ok(ip) if ip.is_ipv4() != (address_type == "IPv4") => causes.add(
                        field,
                        format!("Invalid value: \"{text}\": must be an {address_type} address"),
                    ),
                    Ok(ip) => {
                        if let Some(problem) = endpoint_ip_problem(ip) {
                            causes.add(field, format!("Invalid value: \"{text}\": {problem}"));
                        }
                    }
                    Err(_) => causes.add(
                        field,
                        format!("Invalid value: \"{text}\": must be a valid IP address"),
                    ),
                },
                _ => {}
            }
        }
    }
    for (i, port) in items(&object["ports"]).iter().enumerate() {
        if let Some(n) = port["port"].as_i64() {
            if !(1..=65535).contains(&n) {
                causes.add(
                    format!("ports[{i}].port"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                );
            }
        }
    }
}

fn secret(object: &Value, causes: &mut Causes) {
    if let Some(data) = object["data"].as_object() {
        for (key, value) in data {
            if !value.as_str().is_some_and(encode::is_base64) {
                causes.add(
                    format!("data[{key}]"),
                    "Invalid value: must be base64-encoded",
                );
            }
        }
    }
    if object["type"].as_str() == Some("kubernetes.io/tls") {
        for key in ["tls.crt", "tls.key"] {
            if object["data"].get(key).is_none() {
                causes.add(format!("data[{key}]"), "Required value");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;
    use serde_json::json;

    fn slice(ip: &str) -> Value {
        json!({"metadata": {"name": "s"}, "addressType": "IPv4",
               "endpoints": [{"addresses": [ip]}], "ports": [{"port": 80}]})
    }

    #[test]
    fn endpoint_slices_reject_loopback_like_a_real_server() {
        let res = RESOURCES
            .iter()
            .find(|r| r.kind == "EndpointSlice")
            .unwrap();
        let error = validate(res, &slice("127.0.0.1")).unwrap_err();
        assert_eq!(error.code, 422);
        assert!(error.message.contains("loopback"), "{}", error.message);
        assert!(validate(res, &slice("169.254.1.1")).is_err());
        assert!(validate(res, &slice("0.0.0.0")).is_err());
        validate(res, &slice("198.18.0.2")).unwrap();
    }

    #[test]
    fn ingress_paths_need_a_type() {
        let res = RESOURCES.iter().find(|r| r.kind == "Ingress").unwrap();
        let ingress = json!({"metadata": {"name": "i"}, "spec": {"rules": [{"http": {"paths": [
            {"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}});
        let error = validate(res, &ingress).unwrap_err();
        assert_eq!(error.causes[0].0, "spec.rules[0].http.paths[0].pathType");
    }
}
