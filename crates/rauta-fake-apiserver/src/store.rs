//! The fake's state: objects, the global resourceVersion counter and the bounded history watches replay.
//!
//! Invariants: every change takes the lock, bumps the counter, stores the object with its new
//! `metadata.resourceVersion`, appends one record to the history and broadcasts it, all before the lock is
//! released; a watch subscribes under the same lock, so it sees every record after its snapshot exactly
//! once and in order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::audit::ApiRequest;
use crate::encode;
use crate::error::ApiError;
use crate::patch;
use crate::resources::{Resource, RESOURCES};
use crate::selector::Selector;
use crate::validate;

/// How many records a watcher may fall behind before it is cut off (it must then relist, as a real
/// API server does with slow watchers).
const BROADCAST_CAPACITY: usize = 4096;

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted.
    Deleted,
}

impl Change {
    /// The watch event type.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// One change, as watches replay it.
#[derive(Debug)]
pub struct Record {
    /// The version this change produced.
    pub rv: u64,
    /// Index into [`RESOURCES`].
    pub resource: usize,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub change: Change,
    /// The object after the change (the last state, for a deletion).
    pub object: Value,
}

/// Which objects a list or watch covers.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Index into [`RESOURCES`].
    pub resource: usize,
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: Selector,
    /// `fieldSelector`.
    pub fields: Selector,
}

impl Filter {
    fn matches(&self, resource: usize, namespace: &str, object: &Value) -> bool {
        resource == self.resource
            && self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.labels.matches_labels(object)
            && self.fields.matches_fields(object)
    }

    /// Whether a record is in scope.
    pub fn matches_record(&self, record: &Record) -> bool {
        self.matches(record.resource, &record.namespace, &record.object)
    }
}

/// How a patch body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (and strategic merge, approximated).
    Merge,
    /// `application/apply-patch+yaml`: creates a missing object.
    Apply,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchFrom {
    /// `resourceVersion` unset or `0`: synthetic ADDED events for the current objects, then changes.
    Current,
    /// After this version: replay the history from there (410 if it no longer covers it).
    Version(u64),
}

type Key = (usize, String, String);

/// A started watch: the records to send first, the receiver of later ones, and the version up to which
/// the first ones are complete.
pub type Subscription = (Vec<Arc<Record>>, broadcast::Receiver<Arc<Record>>, u64);

#[derive(Debug)]
struct Inner {
    rv: u64,
    uids: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Record>>,
    history_limit: usize,
    /// The newest version no longer in `history` (0: nothing dropped yet). A watch from an older
    /// version is answered 410 Gone.
    compacted: u64,
}

/// The fake's shared state. Kept across [`crate::FakeApiServer::restart`].
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    audit: Mutex<Vec<ApiRequest>>,
    events: broadcast::Sender<Arc<Record>>,
}

impl Store {
    /// An empty store keeping the last `history_limit` changes for watches.
    pub fn new(history_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                rv: 1,
                uids: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                compacted: 0,
            }),
            events: broadcast::channel(BROADCAST_CAPACITY).0,
            audit: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug in the fake; the data is still consistent per record.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Note a served resource request (see [`Store::requests`]).
    pub fn record_request(&self, request: ApiRequest) {
        self.audit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
    }

    /// Every resource request served so far, in order.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.audit.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Drop the whole history, as etcd compaction does: every watch from a version before now gets 410.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.rv;
    }

    /// The objects in scope and the list's resourceVersion.
    pub fn list(&self, filter: &Filter) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((res, ns, _), obj)| filter.matches(*res, ns, obj))
            .map(|(_, obj)| obj.clone())
            .collect();
        (items, inner.rv)
    }

    /// One object.
    pub fn get(&self, resource: usize, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let key = (resource, namespace.to_string(), name.to_string());
        self.lock()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(RESOURCES[resource].plural, name))
    }

    /// POST: create `body` in `namespace`.
    pub fn create(&self, resource: usize, namespace: &str, body: Value) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        self.create_locked(&mut inner, resource, namespace, body)
    }

    fn create_locked(
        &self,
        inner: &mut Inner,
        resource: usize,
        namespace: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        let res = &RESOURCES[resource];
        check_type(res, &body)?;
        let meta = body
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the body is not a JSON object"))?
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(ApiError::bad_request("metadata is not an object"));
        }
        check_namespace(res, namespace, meta)?;
        let name = meta["name"].as_str().unwrap_or("").to_string();
        let name = if name.is_empty() {
            match meta["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    format!("{prefix}{:05x}", inner.uids + 1)
                }
                _ => name,
            }
        } else {
            name
        };
        inner.uids += 1;
        meta["name"] = json!(name);
        if res.namespaced {
            meta["namespace"] = json!(namespace);
        }
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", inner.uids));
        meta["creationTimestamp"] = json!(encode::now_rfc3339());
        meta["generation"] = json!(1);
        set_type(res, &mut body);
        if res.has_status {
            // Status is the controllers' to write, through the subresource.
            body["status"] = json!({});
        }
        normalize(res, &mut body);
        validate::validate(res, &body)?;
        let key = (resource, namespace.to_string(), name.clone());
        if inner.objects.contains_key(&key) {
            let mut e = ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", res.plural),
            );
            e.details = Some((name, res.plural.to_string()));
            return Err(e);
        }
        Ok(self.commit(inner, key, body, Change::Added))
    }

    /// PUT on the object (`status_only`: on its `/status`).
    pub fn update(
        &self,
        resource: usize,
        namespace: &str,
        name: &str,
        body: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = (resource, namespace.to_string(), name.to_string());
        let old = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(RESOURCES[resource].plural, name))?;
        check_type(&RESOURCES[resource], &body)?;
        if let Some(body_name) = body["metadata"]["name"].as_str() {
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        check_precondition(&old, &body, name)?;
        self.update_locked(&mut inner, key, old, body, status_only)
    }

    /// PATCH on the object (`status_only`: on its `/status`). Returns the object and whether it was
    /// created (apply on a missing object).
    pub fn patch(
        &self,
        resource: usize,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: Value,
        status_only: bool,
    ) -> Result<(Value, bool), ApiError> {
        let mut inner = self.lock();
        let key = (resource, namespace.to_string(), name.to_string());
        let Some(old) = inner.objects.get(&key).cloned() else {
            if kind == PatchKind::Apply && !status_only {
                let mut body = body;
                if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("name".into(), json!(name));
                } else {
                    body["metadata"] = json!({"name": name});
                }
                return self
                    .create_locked(&mut inner, resource, namespace, body)
                    .map(|v| (v, true));
            }
            return Err(ApiError::not_found(RESOURCES[resource].plural, name));
        };
        if kind == PatchKind::Apply {
            check_type(&RESOURCES[resource], &body)?;
        }
        check_precondition(&old, &body, name)?;
        let mut new = old.clone();
        patch::merge(&mut new, &body);
        self.update_locked(&mut inner, key, old, new, status_only)
            .map(|v| (v, false))
    }

    fn update_locked(
        &self,
        inner: &mut Inner,
        key: Key,
        old: Value,
        body: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let res = &RESOURCES[key.0];
        let mut new = if status_only {
            let mut new = old.clone();
            new["status"] = body.get("status").cloned().unwrap_or(json!({}));
            new
        } else {
            let mut new = body;
            if res.has_status {
                new["status"] = old.get("status").cloned().unwrap_or(json!({}));
            }
            new
        };
        if !new.is_object() || !new["metadata"].is_object() {
            return Err(ApiError::bad_request("the object has no metadata"));
        }
        // The server owns these; a client cannot change them.
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            match old["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        set_type(res, &mut new);
        normalize(res, &mut new);
        validate::validate(res, &new)?;
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if new == old {
            // A real server does not bump the version for an update that changes nothing.
            return Ok(old);
        }
        if new.get("spec") != old.get("spec") {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        Ok(self.commit(inner, key, new, Change::Modified))
    }

    /// DELETE: returns the object as it was.
    pub fn delete(&self, resource: usize, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = (resource, namespace.to_string(), name.to_string());
        let Some(object) = inner.objects.remove(&key) else {
            return Err(ApiError::not_found(RESOURCES[resource].plural, name));
        };
        Ok(self.commit(&mut inner, key, object, Change::Deleted))
    }

    /// Bump the version, store (or, for a deletion, not), record and broadcast.
    fn commit(&self, inner: &mut Inner, key: Key, mut object: Value, change: Change) -> Value {
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if change != Change::Deleted {
            inner.objects.insert(key.clone(), object.clone());
        }
        let record = Arc::new(Record {
            rv,
            resource: key.0,
            namespace: key.1,
            change,
            object: object.clone(),
        });
        inner.history.push_back(record.clone());
        while inner.history.len() > inner.history_limit {
            if let Some(dropped) = inner.history.pop_front() {
                inner.compacted = dropped.rv;
            }
        }
        // No receiver is fine: nobody watches.
        let _ = self.events.send(record);
        object
    }

    /// Start a watch: the events to send first and a receiver for every later change.
    pub fn subscribe(&self, filter: &Filter, from: WatchFrom) -> Result<Subscription, ApiError> {
        let inner = self.lock();
        let receiver = self.events.subscribe();
        let initial = match from {
            WatchFrom::Current => inner
                .objects
                .iter()
                .filter(|((res, ns, _), obj)| filter.matches(*res, ns, obj))
                .map(|((res, ns, _), obj)| {
                    Arc::new(Record {
                        rv: obj["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0),
                        resource: *res,
                        namespace: ns.clone(),
                        change: Change::Added,
                        object: obj.clone(),
                    })
                })
                .collect(),
            WatchFrom::Version(version) => {
                if version < inner.compacted {
                    return Err(expired(version, inner.compacted));
                }
                inner
                    .history
                    .iter()
                    .filter(|r| r.rv > version && filter.matches_record(r))
                    .cloned()
                    .collect()
            }
        };
        Ok((initial, receiver, inner.rv))
    }
}

/// The 410 a watch from a compacted version gets.
pub fn expired(version: u64, compacted: u64) -> ApiError {
    ApiError::new(
        410,
        "Expired",
        format!("too old resource version: {version} ({compacted})"),
    )
}

/// `apiVersion`/`kind`, if given, must be this resource's.
fn check_type(res: &Resource, body: &Value) -> Result<(), ApiError> {
    let api_version = res.api_version();
    if let Some(v) = body.get("apiVersion").and_then(Value::as_str) {
        if v != api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str) {
        if k != res.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )));
        }
    }
    Ok(())
}

fn check_namespace(res: &Resource, namespace: &str, meta: &Value) -> Result<(), ApiError> {
    if let Some(ns) = meta.get("namespace").and_then(Value::as_str) {
        if res.namespaced && !ns.is_empty() && ns != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    Ok(())
}

/// `metadata.resourceVersion` in a body is a precondition.
fn check_precondition(old: &Value, body: &Value, name: &str) -> Result<(), ApiError> {
    match body["metadata"]["resourceVersion"].as_str() {
        Some(v) if !v.is_empty() && Some(v) != old["metadata"]["resourceVersion"].as_str() => {
            Err(ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on object \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
            ))
        }
        _ => Ok(()),
    }
}

fn set_type(res: &Resource, body: &mut Value) {
    body["apiVersion"] = json!(res.api_version());
    body["kind"] = json!(res.kind);
}

/// What the API server does to every write: Secret `stringData` is merged into `data`, base64-encoded.
fn normalize(res: &Resource, body: &mut Value) {
    if res.kind == "Secret" {
        if let Some(Value::Object(plain)) =
            body.as_object_mut().and_then(|o| o.remove("stringData"))
        {
            if !body["data"].is_object() {
                body["data"] = json!({});
            }
            for (key, value) in plain {
                let text = value.as_str().unwrap_or_default();
                body["data"][key] = json!(encode::base64(text.as_bytes()));
            }
        }
    }
}
