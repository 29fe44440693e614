//! EndpointSlice rules.

use super::{metadata, names, port_number, protocol, Problems};
use rauta_routes::model::EndpointSlice;
use rauta_routes::Kind;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Validates an EndpointSlice: the address type, every address in that family, ports in range with
/// unique names.
pub(crate) fn endpoint_slice(slice: &EndpointSlice) -> Problems {
    let mut p = Problems::default();
    metadata(Kind::EndpointSlice, &slice.metadata, &mut p);
    let family = slice.address_type.as_str();
    let check_address: fn(&str) -> Option<String> = match family {
        "IPv4" => |a| {
            a.parse::<Ipv4Addr>()
                .is_err()
                .then(|| format!("must be a valid IPv4 address (got {a:?})"))
        },
        "IPv6" => |a| {
            a.parse::<Ipv6Addr>()
                .is_err()
                .then(|| format!("must be a valid IPv6 address (got {a:?})"))
        },
        "FQDN" => names::dns1123_subdomain,
        "" => {
            p.add("addressType", "required value");
            return p;
        }
        other => {
            p.add(
                "addressType",
                format!("unknown variant `{other}`, expected one of `IPv4`, `IPv6`, `FQDN`"),
            );
            return p;
        }
    };
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        if endpoint.addresses.is_empty() {
            p.add(
                format!("endpoints[{i}].addresses"),
                "at least one address is required",
            );
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            p.check(
                format!("endpoints[{i}].addresses[{j}]"),
                check_address(address),
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in slice.ports.iter().enumerate() {
        let at = format!("ports[{i}]");
        // A missing port number means "all ports" in the API; only a given one is range-checked.
        if let Some(n) = port.port {
            port_number(format!("{at}.port"), n.into(), &mut p);
        }
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            p.check(format!("{at}.name"), names::dns1123_label(name));
        }
        if !seen.insert(name) {
            p.add(
                format!("{at}.name"),
                format!("duplicate port name {name:?}"),
            );
        }
        protocol(format!("{at}.protocol"), port.protocol.as_deref(), &mut p);
    }
    p
}
