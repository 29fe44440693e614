//! One task per watch stream: kube's `watcher` with its default backoff, applied to the cache with
//! reflector semantics (a list is buffered and replaces the stream's objects at `InitDone`).
//!
//! Objects are decoded straight into the model ([`crate::wire`]). If that decoder cannot read an
//! object (the whole list or watch line fails), the stream relists with `DynamicObject`s, which skip
//! just the unreadable object, and stays on that slower, larger path.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

use crate::cache::{Cache, Key, Object};
use crate::kinds::Kind;
use crate::secrets::{SecretKey, TLS_FIELD_SELECTOR};
use crate::wire::{IngressWire, Model, Wire};

/// Spawn one task per stream of `cache`.
pub fn spawn_all(client: &kube::Client, cache: &Arc<Cache>, tasks: &mut JoinSet<()>) {
    for (index, spec) in cache.specs.iter().enumerate() {
        let client = client.clone();
        let namespace = spec.namespace.clone();
        let cache = cache.clone();
        match spec.kind {
            Kind::Ingress => tasks.spawn(run::<IngressWire>(client, namespace, index, cache)),
            Kind::IngressClass => tasks.spawn(run::<rauta_routes::model::IngressClass>(
                client, namespace, index, cache,
            )),
            Kind::Service => tasks.spawn(run::<rauta_routes::model::Service>(
                client, namespace, index, cache,
            )),
            Kind::EndpointSlice => tasks.spawn(run::<rauta_routes::model::EndpointSlice>(
                client, namespace, index, cache,
            )),
            Kind::Secret => tasks.spawn(run::<rauta_routes::model::Secret>(
                client, namespace, index, cache,
            )),
        };
    }
}

fn dynamic_key(object: &DynamicObject) -> Key {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// Decode through JSON, logging objects the model cannot read (they are left out, as if absent).
fn decode_dynamic(kind: Kind, object: &DynamicObject) -> Option<Object> {
    let json = match serde_json::to_value(object) {
        Ok(json) => json,
        Err(error) => {
            tracing::warn!(kind = kind.plural(), %error, "cannot re-encode an object");
            return None;
        }
    };
    match Object::decode(kind, json) {
        Ok(object) => Some(object),
        Err(error) => {
            let (namespace, name) = dynamic_key(object);
            tracing::warn!(kind = kind.plural(), %namespace, %name, %error, "ignoring an object that does not decode");
            None
        }
    }
}

/// Why [`follow`] returned.
enum Ended {
    /// The cache's owner is gone, or the stream ended.
    Stop,
    /// Secret references grew: relist.
    Relist,
    /// The direct decoder failed on an object: relist with `DynamicObject`s.
    Undecodable,
}

/// Watch one stream until the cache's owner goes away. Secret streams restart (relist) when the
/// Ingresses come to reference a Secret they did not list for.
async fn run<T: Model>(
    client: kube::Client,
    namespace: Option<String>,
    stream: usize,
    cache: Arc<Cache>,
) {
    let kind = T::KIND;
    let typed: Api<Wire<T>> = match &namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &()),
        None => Api::all_with(client.clone(), &()),
    };
    let resource = crate::kinds::api_resource(kind);
    let dynamic: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    let mut fallback = false;
    loop {
        let ended = if fallback {
            follow(
                dynamic.clone(),
                false,
                stream,
                kind,
                &cache,
                |o: DynamicObject| {
                    let key = dynamic_key(&o);
                    (key, decode_dynamic(kind, &o))
                },
            )
            .await
        } else {
            follow(typed.clone(), true, stream, kind, &cache, |o: Wire<T>| {
                (o.key(), Some(o.object.into_object()))
            })
            .await
        };
        match ended {
            Ended::Stop => return,
            Ended::Relist => {}
            Ended::Undecodable => {
                tracing::warn!(
                    kind = kind.plural(),
                    "an object does not decode into the model; relisting through the generic decoder, which skips it"
                );
                fallback = true;
            }
        }
    }
}

/// Whether a watcher error is a decode failure of the response (as opposed to the API or the network).
fn is_decode_error(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchFailed(e) => {
            matches!(e, kube::Error::SerdeError(_))
        }
        _ => false,
    }
}

/// One run of a watch: until the cache's owner goes away, Secret references grow, or (`direct`: with
/// the direct decoder) an object does not decode.
async fn follow<K>(
    api: Api<K>,
    direct: bool,
    stream: usize,
    kind: Kind,
    cache: &Arc<Cache>,
    convert: impl Fn(K) -> (Key, Option<Object>),
) -> Ended
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut refs_rx = cache.secret_refs.subscribe();
    let mut config = watcher::Config::default();
    if kind == Kind::Secret {
        config = config.fields(TLS_FIELD_SELECTOR);
    }
    // For Secrets: the references this list keeps.
    let mut refs: BTreeSet<SecretKey> = refs_rx.borrow_and_update().clone();
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut buffer: Option<HashMap<Key, Object>> = None;
    let keep = |refs: &BTreeSet<SecretKey>, key: &Key| kind != Kind::Secret || refs.contains(key);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(watcher::Event::Init)) => {
                    tracing::debug!(kind = kind.plural(), "listing");
                    buffer = Some(HashMap::new());
                }
                Some(Ok(watcher::Event::InitApply(object))) => {
                    let (key, object) = convert(object);
                    if keep(&refs, &key) {
                        if let (Some(buffer), Some(object)) = (buffer.as_mut(), object) {
                            buffer.insert(key, object);
                        }
                    }
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    let objects = buffer.take().unwrap_or_default();
                    tracing::debug!(kind = kind.plural(), objects = objects.len(), "listed");
                    let secrets_for = (kind == Kind::Secret).then(|| refs.clone());
                    cache.replace(stream, objects, secrets_for);
                }
                Some(Ok(watcher::Event::Apply(object))) => {
                    let (key, object) = convert(object);
                    if keep(&refs, &key) {
                        if let Some(object) = object {
                            cache.apply(stream, key, object);
                        }
                    }
                }
                Some(Ok(watcher::Event::Delete(object))) => cache.delete(stream, &convert(object).0),
                Some(Err(error)) if direct && is_decode_error(&error) => {
                    tracing::debug!(kind = kind.plural(), %error, "direct decode failed");
                    return Ended::Undecodable;
                }
                Some(Err(error)) => {
                    // The watcher recovers on the next poll (after the backoff); the cache keeps
                    // serving what it has.
                    tracing::warn!(kind = kind.plural(), %error, "watch failed; retrying with backoff, serving the last known objects");
                }
                None => return Ended::Stop,
            },
            changed = refs_rx.changed(), if kind == Kind::Secret => {
                if changed.is_err() {
                    return Ended::Stop;
                }
                let new = refs_rx.borrow_and_update().clone();
                if new.is_subset(&refs) {
                    refs = new;
                } else {
                    tracing::debug!("secret references grew; relisting TLS secrets");
                    return Ended::Relist;
                }
            }
        }
    }
}
