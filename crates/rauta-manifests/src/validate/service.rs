//! Service rules.

use super::{metadata, names, port_number, protocol, Problems};
use rauta_routes::model::Service;
use rauta_routes::Kind;
use std::collections::BTreeSet;

/// Validates a Service: ports in range, port names present and unique when there are several
/// (backends select ports by name), target ports a number in range or a port name.
pub(crate) fn service(svc: &Service) -> Problems {
    let mut p = Problems::default();
    metadata(Kind::Service, &svc.metadata, &mut p);
    let ports = &svc.spec.ports;
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        port_number(format!("{at}.port"), port.port.into(), &mut p);
        match port.name.as_deref().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => p.add(
                format!("{at}.name"),
                "required value when the Service has more than one port",
            ),
            None => {}
            Some(name) => {
                p.check(format!("{at}.name"), names::dns1123_label(name));
                if !seen.insert(name) {
                    p.add(
                        format!("{at}.name"),
                        format!("duplicate port name {name:?}"),
                    );
                }
            }
        }
        protocol(format!("{at}.protocol"), port.protocol.as_deref(), &mut p);
        match &port.target_port {
            None => {}
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(n) => port_number(format!("{at}.targetPort"), n, &mut p),
                None => p.add(
                    format!("{at}.targetPort"),
                    format!("must be an integer (got {n})"),
                ),
            },
            Some(serde_json::Value::String(name)) => {
                p.check(format!("{at}.targetPort"), names::iana_port_name(name))
            }
            Some(other) => p.add(
                format!("{at}.targetPort"),
                format!("must be a port number or name (got {other})"),
            ),
        }
    }
    p
}
