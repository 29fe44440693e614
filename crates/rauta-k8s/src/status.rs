//! Ingress status: the leader writes `status.loadBalancer.ingress` of the Ingresses of its class.
//!
//! The address comes from `--publish-address` (an IP, or else a host name) or from the
//! `status.loadBalancer.ingress` of the `--publish-service`. Ingresses of other classes are never
//! written; an Ingress whose status already says the right thing is not written either (and a write that
//! changes nothing would not change its `resourceVersion` anyway).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use rauta_routes::class::ClassFilter;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::kinds::Kind;
use crate::Snapshot;

/// Where the published address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// `--publish-address`: an IP or a host name.
    Address(String),
    /// `--publish-service NS/NAME`: copy that Service's load-balancer status.
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// How often the `--publish-service` status is re-read, so that a load balancer assigned later shows up.
const SERVICE_POLL: Duration = Duration::from_secs(10);

/// The `loadBalancer.ingress` list to publish, or `None` if not known yet.
async fn desired(client: &kube::Client, publish: &Publish) -> Option<Value> {
    match publish {
        Publish::Address(address) => Some(if address.parse::<IpAddr>().is_ok() {
            json!([{"ip": address}])
        } else {
            json!([{"hostname": address}])
        }),
        Publish::Service { namespace, name } => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &Kind::Service.api_resource());
            match api.get_opt(name).await {
                Ok(Some(service)) => Some(
                    service.data["status"]["loadBalancer"]["ingress"]
                        .as_array()
                        .map_or_else(|| json!([]), |list| Value::Array(list.clone())),
                ),
                Ok(None) => {
                    tracing::warn!(%namespace, %name, "--publish-service: the Service does not exist");
                    None
                }
                Err(error) => {
                    tracing::warn!(%namespace, %name, %error, "--publish-service: cannot read the Service");
                    None
                }
            }
        }
    }
}

/// Write status while leading, until the snapshots end.
pub async fn run(
    client: kube::Client,
    publish: Publish,
    class: String,
    mut snapshots: watch::Receiver<Option<Snapshot>>,
    mut leader: watch::Receiver<bool>,
) {
    let mut poll = tokio::time::interval(SERVICE_POLL);
    loop {
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
            _ = poll.tick() => {}
        }
        if !*leader.borrow_and_update() {
            continue;
        }
        let Some(snapshot) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        let Some(desired) = desired(&client, &publish).await else {
            continue;
        };
        write_all(&client, &class, &snapshot, &desired).await;
    }
}

async fn write_all(client: &kube::Client, class: &str, snapshot: &Snapshot, desired: &Value) {
    let inputs = &snapshot.inputs;
    let filter = ClassFilter::new(class, &inputs.ingress_classes);
    let resource = Kind::Ingress.api_resource();
    for ingress in inputs.ingresses.iter().filter(|i| filter.owns(i)) {
        let namespace = ingress.metadata.namespace();
        let name = &ingress.metadata.name;
        let current = snapshot
            .ingress_status
            .get(&(namespace.to_string(), name.clone()))
            .cloned()
            .unwrap_or(Value::Null);
        let current = if current.is_null() {
            json!([])
        } else {
            current
        };
        if current == *desired {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let patch = json!({"status": {"loadBalancer": {"ingress": desired}}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::debug!(%namespace, %name, "wrote Ingress status"),
            Err(error) => {
                tracing::warn!(%namespace, %name, %error, "cannot write Ingress status")
            }
        }
    }
}

/// The statuses carried by a snapshot: `status.loadBalancer.ingress` by (namespace, name).
pub type IngressStatus = Arc<std::collections::BTreeMap<(String, String), Value>>;
