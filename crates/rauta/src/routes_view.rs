//! Presenting a route table to people: the `rauta check` table and the `/routes` JSON.

use rauta_routes::{Backend, DefaultScope, RouteTable, Tier};
use serde_json::Value;

use crate::kernel::KernelState;

/// The tier as shown to people: number and name.
pub fn tier_label(tier: Tier) -> &'static str {
    match tier {
        Tier::Xdp => "1 (XDP)",
        Tier::Tc => "2 (TC)",
        Tier::Userspace => "3 (userspace)",
    }
}

/// The `/routes` document: [`RouteTable::to_json`], which names the tier each route is eligible for.
pub fn to_json(table: &RouteTable) -> Value {
    table.to_json()
}

/// The `/routes` document of a running proxy: [`to_json`] plus, per route, `inKernel`: whether the
/// kernel tiers' route maps hold it (always false when they are off).
pub fn to_json_with_kernel(table: &RouteTable, kernel: Option<&KernelState>) -> Value {
    let mut document = to_json(table);
    if let Some(Value::Array(routes)) = document.get_mut("routes") {
        // `RouteTable::to_json` lists routes in `table.routes()` order.
        for (json, route) in routes.iter_mut().zip(table.routes()) {
            let live = kernel.is_some_and(|k| k.is_live(route.host.as_deref(), &route.path));
            if let Value::Object(map) = json {
                map.insert("inKernel".into(), Value::Bool(live));
            }
        }
    }
    document
}

/// A readable table of every route and default backend, one per line, columns aligned.
pub fn render_text(table: &RouteTable) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "HOST".into(),
        "PATH".into(),
        "TYPE".into(),
        "TIER".into(),
        "SERVICE".into(),
        "ENDPOINTS".into(),
    ]];
    for route in table.routes() {
        rows.push([
            route.host.clone().unwrap_or_else(|| "*".into()),
            route.path.clone(),
            route.path_type.as_k8s().into(),
            tier_label(route.tier).into(),
            route.backend.service.to_string(),
            endpoints(&route.backend),
        ]);
    }
    for default in table.default_backends() {
        let host = match &default.scope {
            DefaultScope::Host(Some(host)) => host.clone(),
            DefaultScope::Host(None) => "*".into(),
            DefaultScope::CatchAll => "(any other host)".into(),
            DefaultScope::Controller => "(controller default)".into(),
        };
        rows.push([
            host,
            "(default backend)".into(),
            "-".into(),
            tier_label(Tier::Userspace).into(),
            default.backend.service.to_string(),
            endpoints(&default.backend),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.len() == 1 {
        out.push_str("(no routes)\n");
    }
    out
}

fn endpoints(backend: &Backend) -> String {
    if backend.endpoints.is_empty() {
        return match &backend.problem {
            Some(problem) => format!("none ({problem})"),
            None => "none (no ready endpoints: 503)".into(),
        };
    }
    backend
        .endpoints
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
