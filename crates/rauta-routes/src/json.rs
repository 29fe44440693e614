//! The JSON form of a table, served by the admin `/routes` endpoint.

use serde_json::{json, Value};

use crate::backend::Backend;
use crate::lookup::{DefaultScope, RouteTable};

impl RouteTable {
    /// `{"routes": [...], "defaultBackends": [...]}`. Each route is
    /// `{host, path, pathType, tier, tls, sslRedirect, ingress: "ns/name", service: "ns/name:port", endpoints:
    /// ["ip:port"], appProtocol, problem}`; each default backend is `{scope, host, ingress, service,
    /// endpoints, appProtocol, problem}` with scope `host`, `catchAll` or `controller`.
    pub fn to_json(&self) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut v = json!({
                    "host": r.host,
                    "path": r.path,
                    "pathType": r.path_type.as_k8s(),
                    "tier": r.tier as u8,
                    "tls": r.tls,
                    "sslRedirect": r.ssl_redirect,
                    "ingress": r.ingress.to_string(),
                });
                add_backend(&mut v, &r.backend);
                v
            })
            .collect();
        let defaults: Vec<Value> = self
            .default_backends
            .iter()
            .map(|d| {
                let (scope, host) = match &d.scope {
                    DefaultScope::Host(h) => ("host", h.clone()),
                    DefaultScope::CatchAll => ("catchAll", None),
                    DefaultScope::Controller => ("controller", None),
                };
                let mut v = json!({
                    "scope": scope,
                    "host": host,
                    "ingress": d.ingress.as_ref().map(ToString::to_string),
                });
                add_backend(&mut v, &d.backend);
                v
            })
            .collect();
        json!({ "routes": routes, "defaultBackends": defaults })
    }
}

fn add_backend(v: &mut Value, b: &Backend) {
    if let Value::Object(map) = v {
        map.insert("service".into(), Value::String(b.service.to_string()));
        let endpoints = b
            .endpoints
            .iter()
            .map(|e| Value::String(e.to_string()))
            .collect();
        map.insert("endpoints".into(), Value::Array(endpoints));
        map.insert("appProtocol".into(), json!(b.app_protocol));
        map.insert("problem".into(), json!(b.problem));
    }
}
