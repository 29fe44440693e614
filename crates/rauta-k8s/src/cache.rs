//! The watched objects, one map per watch stream, decoded into the compiler's model.
//!
//! Invariant: a stream's map only changes by single applies and deletes, or by a whole replacement at the
//! end of a (re)list; a snapshot is only taken when every stream has completed at least one list and the
//! Secret stream has listed with every Secret the Ingresses reference (see [`crate::secrets`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use rauta_routes::model::{EndpointSlice, Ingress, IngressClass, Secret, Service, SharedInputs};
use tokio::sync::{watch, Notify};

use crate::kinds::Kind;
use crate::secrets::{self, SecretKey};
use crate::status::StatusView;
use crate::wire::{IngressWire, Model};
use crate::WatchConfig;

/// An object by namespace ("" when cluster-scoped) and name.
pub type Key = (String, String);

/// One decoded object. Each sits in an `Arc` that every snapshot shares until the object changes: a
/// snapshot copies pointers, not objects, and the incremental compiler recognises unchanged objects by it.
#[derive(Debug, Clone)]
pub enum Object {
    /// An Ingress, and what the status writer needs of it besides the model.
    Ingress(Arc<Ingress>, Arc<StatusView>),
    /// An IngressClass.
    IngressClass(Arc<IngressClass>),
    /// A Service.
    Service(Arc<Service>),
    /// An EndpointSlice.
    EndpointSlice(Arc<EndpointSlice>),
    /// A TLS Secret.
    Secret(Arc<Secret>),
}

impl Object {
    /// Decode the API's JSON for `kind` into the model, as [`crate::wire`] decodes listed and watched
    /// objects (this is the path of the `DynamicObject` fallback).
    pub fn decode(kind: Kind, json: serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            Kind::Ingress => IngressWire::decode(json)?.into_object(),
            Kind::IngressClass => IngressClass::decode(json)?.into_object(),
            Kind::Service => Service::decode(json)?.into_object(),
            Kind::EndpointSlice => EndpointSlice::decode(json)?.into_object(),
            Kind::Secret => Secret::decode(json)?.into_object(),
        })
    }
}

/// One watch stream: a kind in one namespace (or all).
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The kind.
    pub kind: Kind,
    /// `None`: every namespace (or cluster-scoped).
    pub namespace: Option<String>,
}

#[derive(Debug, Default)]
struct StreamState {
    /// Completed a list since it started (or restarted, for Secrets).
    synced: bool,
    objects: HashMap<Key, Object>,
}

#[derive(Debug)]
struct State {
    streams: Vec<StreamState>,
    /// The references the current Secret lists were made with.
    secrets_listed_for: BTreeSet<SecretKey>,
}

/// Shared between the watch tasks and the debouncer.
#[derive(Debug)]
pub struct Cache {
    /// The streams, by index.
    pub specs: Vec<StreamSpec>,
    state: Mutex<State>,
    /// Woken on every change.
    pub changed: Notify,
    /// The Secrets the Ingresses reference; the Secret streams follow it.
    pub secret_refs: watch::Sender<BTreeSet<SecretKey>>,
}

impl Cache {
    /// Streams for every kind in every namespace of `config` (IngressClasses cluster-wide).
    pub fn new(config: &WatchConfig) -> Self {
        let mut specs = Vec::new();
        for kind in Kind::ALL {
            if !kind.is_namespaced() || config.namespaces.is_empty() {
                specs.push(StreamSpec {
                    kind,
                    namespace: None,
                });
            } else {
                for ns in &config.namespaces {
                    specs.push(StreamSpec {
                        kind,
                        namespace: Some(ns.clone()),
                    });
                }
            }
        }
        let streams = specs.iter().map(|_| StreamState::default()).collect();
        Self {
            specs,
            state: Mutex::new(State {
                streams,
                secrets_listed_for: BTreeSet::new(),
            }),
            changed: Notify::new(),
            secret_refs: watch::Sender::new(BTreeSet::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An object was added or changed.
    pub fn apply(&self, stream: usize, key: Key, object: Object) {
        if let Some(s) = self.lock().streams.get_mut(stream) {
            s.objects.insert(key, object);
        }
        self.changed.notify_one();
    }

    /// An object was deleted.
    pub fn delete(&self, stream: usize, key: &Key) {
        if let Some(s) = self.lock().streams.get_mut(stream) {
            s.objects.remove(key);
        }
        self.changed.notify_one();
    }

    /// A (re)list completed: its objects replace the stream's. `secrets_for`: for a Secret stream, the
    /// references it listed with.
    pub fn replace(
        &self,
        stream: usize,
        objects: HashMap<Key, Object>,
        secrets_for: Option<BTreeSet<SecretKey>>,
    ) {
        {
            let mut state = self.lock();
            if let Some(refs) = secrets_for {
                state.secrets_listed_for = refs;
            }
            if let Some(s) = state.streams.get_mut(stream) {
                s.objects = objects;
                s.synced = true;
            }
        }
        self.changed.notify_one();
    }

    /// The current objects, or `None` while a list is incomplete. Also brings the Secret streams'
    /// references up to date (see [`crate::secrets`]). Objects are shared, not copied; the statuses are
    /// in the order of `inputs.ingresses`.
    pub fn snapshot(&self, class: &str) -> Option<(SharedInputs, Vec<Arc<StatusView>>)> {
        let mut state = self.lock();
        if !state.streams.iter().all(|s| s.synced) {
            return None;
        }
        let mut inputs = SharedInputs::default();
        let mut status = Vec::new();
        for s in &state.streams {
            for object in s.objects.values() {
                match object {
                    Object::Ingress(o, lb) => {
                        status.push(Arc::clone(lb));
                        inputs.ingresses.push(Arc::clone(o));
                    }
                    Object::IngressClass(o) => inputs.ingress_classes.push(Arc::clone(o)),
                    Object::Service(o) => inputs.services.push(Arc::clone(o)),
                    Object::EndpointSlice(o) => inputs.endpoint_slices.push(Arc::clone(o)),
                    Object::Secret(_) => {}
                }
            }
        }
        let refs = secrets::referenced(class, &inputs.ingress_classes, &inputs.ingresses);
        if !refs.is_subset(&state.secrets_listed_for) {
            // A newly referenced Secret: relist the Secrets before publishing.
            for (spec, s) in self.specs.iter().zip(state.streams.iter_mut()) {
                if spec.kind == Kind::Secret {
                    s.synced = false;
                }
            }
            drop(state);
            self.secret_refs.send_replace(refs);
            return None;
        }
        // Drop what is no longer referenced.
        for (spec, s) in self.specs.iter().zip(state.streams.iter_mut()) {
            if spec.kind == Kind::Secret {
                s.objects.retain(|key, _| refs.contains(key));
                inputs
                    .secrets
                    .extend(s.objects.values().filter_map(|o| match o {
                        Object::Secret(secret) => Some(Arc::clone(secret)),
                        _ => None,
                    }));
            }
        }
        state.secrets_listed_for.clone_from(&refs);
        drop(state);
        self.secret_refs.send_if_modified(|current| {
            if *current == refs {
                false
            } else {
                *current = refs;
                true
            }
        });
        Some((inputs, status))
    }
}
