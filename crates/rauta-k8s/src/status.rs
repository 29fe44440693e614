//! Ingress status: the leader writes `status.loadBalancer.ingress` of the Ingresses of its class.
//!
//! The address comes from `--publish-address` (an IP, or else a host name) or from the
//! `status.loadBalancer.ingress` of the `--publish-service`. Ingresses of other classes are never
//! written, except to remove the address we published from one that left our class (see [`run`]); an
//! Ingress whose status already says the right thing is not written either.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use rauta_routes::class::ClassFilter;
use rauta_routes::model::Ingress;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::kinds::{api_resource, Kind};
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
                Api::namespaced_with(client.clone(), namespace, &api_resource(Kind::Service));
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

/// What the status writer needs of one Ingress besides the compiler's model of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusView {
    /// `status.loadBalancer.ingress` as last seen (`Null` if unset).
    pub load_balancer: Value,
    /// `metadata` as the API server sent it, without `managedFields`, as compact JSON text (one
    /// allocation per Ingress rather than a tree of values): a status update sends it back unchanged
    /// (with its `resourceVersion` as the precondition), so no metadata field the model does not keep
    /// (finalizers, owner references, annotations it drops) can be lost whatever the server does with
    /// metadata there.
    metadata: Box<str>,
}

impl StatusView {
    /// The view of an Ingress in the API's JSON.
    pub fn of(json: &Value) -> Self {
        let mut metadata = json["metadata"].clone();
        if let Some(m) = metadata.as_object_mut() {
            m.remove("managedFields");
        }
        Self::new(json["status"]["loadBalancer"]["ingress"].clone(), &metadata)
    }

    /// From `status.loadBalancer.ingress` and the metadata (already without `managedFields`).
    pub fn new(load_balancer: Value, metadata: &Value) -> Self {
        Self {
            load_balancer,
            metadata: metadata.to_string().into_boxed_str(),
        }
    }

    /// The metadata to send back with a status update (`Null` if the object had none).
    pub fn metadata(&self) -> Value {
        serde_json::from_str(&self.metadata).unwrap_or(Value::Null)
    }

    /// The published addresses, `[]` when unset.
    fn addresses(&self) -> Value {
        if self.load_balancer.is_null() {
            json!([])
        } else {
            self.load_balancer.clone()
        }
    }
}

/// An Ingress by namespace and name.
type Key = (String, String);

/// Write status while leading, until the snapshots end.
///
/// Every replica follows the snapshots, leading or not, to remember which Ingresses were of our class:
/// one that leaves the class (its `ingressClassName` changes, or our IngressClass stops being the
/// default) has the address we published removed from its status (by whichever replica leads), unless
/// it already shows another one (then its new controller wrote it). An Ingress that left the class while
/// no replica was running is not recognised and keeps the old address.
pub async fn run(
    client: kube::Client,
    publish: Publish,
    class: String,
    mut snapshots: watch::Receiver<Option<Snapshot>>,
    mut leader: watch::Receiver<bool>,
) {
    let mut poll = tokio::time::interval(SERVICE_POLL);
    let mut ours = HashSet::new();
    let mut leaving = HashSet::new();
    loop {
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
            _ = poll.tick() => {}
        }
        let Some(snapshot) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        follow_class(&class, &snapshot, &mut ours, &mut leaving);
        if !*leader.borrow_and_update() {
            continue;
        }
        let Some(desired) = desired(&client, &publish).await else {
            continue;
        };
        write_all(&client, &class, &snapshot, &desired, &mut leaving).await;
    }
}

/// Update `ours` to the Ingresses of our class in `snapshot`; those that left it (and still exist) join
/// `leaving`; those back in the class or deleted leave `leaving`.
fn follow_class(
    class: &str,
    snapshot: &Snapshot,
    ours: &mut HashSet<Key>,
    leaving: &mut HashSet<Key>,
) {
    let inputs = &snapshot.inputs;
    let filter = ClassFilter::from_classes(class, inputs.ingress_classes.iter().map(|c| &**c));
    let mut now = HashSet::new();
    let mut present = HashSet::new();
    for ingress in &inputs.ingresses {
        let key = (
            ingress.metadata.namespace().to_string(),
            ingress.metadata.name.clone(),
        );
        if filter.owns(ingress) {
            now.insert(key.clone());
        }
        present.insert(key);
    }
    for key in ours.iter() {
        if !now.contains(key) && present.contains(key) {
            leaving.insert(key.clone());
        }
    }
    leaving.retain(|key| present.contains(key) && !now.contains(key));
    *ours = now;
}

async fn write_all(
    client: &kube::Client,
    class: &str,
    snapshot: &Snapshot,
    desired: &Value,
    leaving: &mut HashSet<Key>,
) {
    let inputs = &snapshot.inputs;
    let filter = ClassFilter::from_classes(class, inputs.ingress_classes.iter().map(|c| &**c));
    let empty = json!([]);
    for (ingress, view) in inputs.ingresses.iter().zip(snapshot.ingress_status.iter()) {
        let current = view.addresses();
        let want = if filter.owns(ingress) {
            desired
        } else {
            let key = (
                ingress.metadata.namespace().to_string(),
                ingress.metadata.name.clone(),
            );
            if !leaving.contains(&key) {
                continue;
            }
            if current != *desired {
                // Already cleared, or written by the Ingress's new controller: not ours to touch.
                leaving.remove(&key);
                continue;
            }
            &empty
        };
        if current == *want {
            continue;
        }
        write(client, ingress, view, want).await;
    }
}

/// Replace the status of one Ingress (`update` on `ingresses/status`, the verb the ClusterRole grants),
/// conditional on the `resourceVersion` seen: a 409 means a newer version is on its way through the
/// watch, whose snapshot triggers the next attempt.
async fn write(client: &kube::Client, ingress: &Ingress, view: &StatusView, addresses: &Value) {
    let namespace = ingress.metadata.namespace();
    let name = &ingress.metadata.name;
    let mut body = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": view.metadata(),
        "spec": ingress.spec,
        "status": {"loadBalancer": {"ingress": addresses}},
    });
    if !body["metadata"].is_object() {
        body["metadata"] = json!({"name": name, "namespace": namespace});
    }
    let object: DynamicObject = match serde_json::from_value(body) {
        Ok(object) => object,
        Err(error) => {
            tracing::warn!(%namespace, %name, %error, "cannot encode an Ingress status update");
            return;
        }
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &api_resource(Kind::Ingress));
    match api
        .replace_status(name, &PostParams::default(), &object)
        .await
    {
        Ok(_) if addresses.as_array().is_some_and(Vec::is_empty) => {
            tracing::info!(%namespace, %name, "cleared the status of an Ingress that left our class")
        }
        Ok(_) => tracing::debug!(%namespace, %name, "wrote Ingress status"),
        Err(kube::Error::Api(status)) if status.is_conflict() => {
            tracing::debug!(%namespace, %name, "Ingress changed meanwhile; its status follows with the next snapshot")
        }
        Err(error) => {
            tracing::warn!(%namespace, %name, %error, "cannot write Ingress status")
        }
    }
}

/// The statuses carried by a snapshot: one per Ingress, in the order of the snapshot's
/// `inputs.ingresses`.
pub type IngressStatus = Arc<Vec<Arc<StatusView>>>;
