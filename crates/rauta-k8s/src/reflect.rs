//! One task per watch stream: kube's `watcher` with its default backoff, applied to the cache with
//! reflector semantics (a list is buffered and replaces the stream's objects at `InitDone`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::task::JoinSet;

use crate::cache::{Cache, Key, Object};
use crate::kinds::Kind;
use crate::secrets::{SecretKey, TLS_FIELD_SELECTOR};

/// Spawn one task per stream of `cache`.
pub fn spawn_all(client: &kube::Client, cache: &Arc<Cache>, tasks: &mut JoinSet<()>) {
    for (index, spec) in cache.specs.iter().enumerate() {
        let resource = spec.kind.api_resource();
        let api: Api<DynamicObject> = match &spec.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        tasks.spawn(run(api, index, spec.kind, cache.clone()));
    }
}

fn key(object: &DynamicObject) -> Key {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// Decode, logging objects the model cannot read (they are left out, as if absent).
fn decode(kind: Kind, object: &DynamicObject) -> Option<Object> {
    let json = match serde_json::to_value(object) {
        Ok(json) => json,
        Err(error) => {
            tracing::warn!(kind = kind.name(), %error, "cannot re-encode an object");
            return None;
        }
    };
    match Object::decode(kind, json) {
        Ok(object) => Some(object),
        Err(error) => {
            let (namespace, name) = key(object);
            tracing::warn!(kind = kind.name(), %namespace, %name, %error, "ignoring an object that does not decode");
            None
        }
    }
}

/// Watch one stream until the cache's owner goes away. Secret streams restart (relist) when the
/// Ingresses come to reference a Secret they did not list for.
async fn run(api: Api<DynamicObject>, stream: usize, kind: Kind, cache: Arc<Cache>) {
    let mut refs_rx = cache.secret_refs.subscribe();
    let mut config = watcher::Config::default();
    if kind == Kind::Secret {
        config = config.fields(TLS_FIELD_SELECTOR);
    }
    loop {
        // For Secrets: the references this list keeps.
        let mut refs: BTreeSet<SecretKey> = refs_rx.borrow_and_update().clone();
        let mut events = std::pin::pin!(watcher(api.clone(), config.clone()).default_backoff());
        let mut buffer: Option<HashMap<Key, Object>> = None;
        let keep =
            |refs: &BTreeSet<SecretKey>, key: &Key| kind != Kind::Secret || refs.contains(key);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(watcher::Event::Init)) => {
                        tracing::debug!(kind = kind.name(), "listing");
                        buffer = Some(HashMap::new());
                    }
                    Some(Ok(watcher::Event::InitApply(object))) => {
                        let key = key(&object);
                        if keep(&refs, &key) {
                            if let (Some(buffer), Some(object)) = (buffer.as_mut(), decode(kind, &object)) {
                                buffer.insert(key, object);
                            }
                        }
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        let objects = buffer.take().unwrap_or_default();
                        tracing::debug!(kind = kind.name(), objects = objects.len(), "listed");
                        let secrets_for = (kind == Kind::Secret).then(|| refs.clone());
                        cache.replace(stream, objects, secrets_for);
                    }
                    Some(Ok(watcher::Event::Apply(object))) => {
                        let key = key(&object);
                        if keep(&refs, &key) {
                            if let Some(object) = decode(kind, &object) {
                                cache.apply(stream, key, object);
                            }
                        }
                    }
                    Some(Ok(watcher::Event::Delete(object))) => cache.delete(stream, &key(&object)),
                    Some(Err(error)) => {
                        // The watcher recovers on the next poll (after the backoff); the cache keeps
                        // serving what it has.
                        tracing::warn!(kind = kind.name(), %error, "watch failed; retrying with backoff, serving the last known objects");
                    }
                    None => return,
                },
                changed = refs_rx.changed(), if kind == Kind::Secret => {
                    if changed.is_err() {
                        return;
                    }
                    let new = refs_rx.borrow_and_update().clone();
                    if new.is_subset(&refs) {
                        refs = new;
                    } else {
                        tracing::debug!("secret references grew; relisting TLS secrets");
                        break;
                    }
                }
            }
        }
    }
}
