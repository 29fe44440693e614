//! Objects decoded straight from the API's JSON into the compiler's model.
//!
//! Why: a list response holds every object of a kind at once (kube's watcher buffers a whole page, and a
//! server may answer a list in one page). Decoded as `DynamicObject`s, 5,000 Ingresses were 43 MiB of
//! `serde_json::Value` trees at the peak, and the allocator kept most of that resident after they were
//! freed. [`Wire`] decodes each object into the model types instead: fields the model does not read
//! (`managedFields`, `status` of other kinds, ...) are skipped by the parser without being stored, so a
//! listed object costs what the cache keeps of it, and nothing is converted twice.
//!
//! Annotations that RAUTA never reads but that can be large are dropped on the way in:
//! [`UNREAD_ANNOTATIONS`] (kubectl's copy of the whole object). The status writer, which must send an
//! Ingress's metadata back unchanged, keeps it in [`StatusView`]'s compact JSON text.
//!
//! A decode failure of one object fails the whole list here (serde cannot resume inside a document);
//! [`crate::reflect`] then falls back to `DynamicObject` for that stream, which skips just that object.

use std::borrow::Cow;
use std::fmt;

use kube::core::{DynamicResourceScope, ObjectMeta};
use rauta_routes::model;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cache::{Key, Object};
use crate::kinds::Kind;
use crate::status::StatusView;

/// Annotations that the model drops: not read by RAUTA, and potentially as large as the object.
pub const UNREAD_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// A model type the watch decodes directly.
pub trait Model: Sized + Clone + fmt::Debug + Send + Sync + 'static {
    /// Its kind.
    const KIND: Kind;
    /// Decode one object.
    fn decode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
    /// Its model metadata.
    fn metadata(&self) -> &model::ObjectMeta;
    /// Into the cache's form.
    fn into_object(self) -> Object;
}

/// One object as listed or watched: the model form plus the little of kube's metadata that kube's
/// watcher reads (the resource version to resume from).
#[derive(Debug, Clone)]
pub struct Wire<T> {
    meta: ObjectMeta,
    /// The decoded object.
    pub object: T,
}

impl<T: Model> Wire<T> {
    /// The cache key: (namespace, name).
    pub fn key(&self) -> Key {
        let meta = self.object.metadata();
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone(),
        )
    }
}

impl<'de, T: Model> Deserialize<'de> for Wire<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = T::decode(deserializer)?;
        let m = object.metadata();
        let meta = ObjectMeta {
            name: Some(m.name.clone()),
            namespace: m.namespace.clone(),
            resource_version: m.resource_version.clone(),
            ..ObjectMeta::default()
        };
        Ok(Self { meta, object })
    }
}

impl<T: Model> kube::Resource for Wire<T> {
    type DynamicType = ();
    type Scope = DynamicResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(T::KIND.name())
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(T::KIND.group())
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(T::KIND.version())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(T::KIND.plural())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// Remove [`UNREAD_ANNOTATIONS`] from the model's metadata.
pub fn drop_unread(meta: &mut model::ObjectMeta) {
    for key in UNREAD_ANNOTATIONS {
        meta.annotations.remove(*key);
    }
}

/// An Ingress with what the status writer needs of it.
#[derive(Debug, Clone)]
pub struct IngressWire {
    /// The model.
    pub ingress: model::Ingress,
    /// For the status writer.
    pub status: StatusView,
}

/// `metadata` as a JSON map without `managedFields` (skipped by the parser, never stored).
struct MetaMap(Map<String, Value>);

impl<'de> Deserialize<'de> for MetaMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetaMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("object metadata")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaMap, A::Error> {
                let mut out = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "managedFields" {
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        out.insert(key, map.next_value()?);
                    }
                }
                Ok(MetaMap(out))
            }
            fn visit_unit<E>(self) -> Result<MetaMap, E> {
                Ok(MetaMap(Map::new()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Deserialize, Default)]
struct RawStatus {
    #[serde(default, rename = "loadBalancer")]
    load_balancer: RawLoadBalancer,
}

#[derive(Deserialize, Default)]
struct RawLoadBalancer {
    #[serde(default)]
    ingress: Value,
}

#[derive(Deserialize)]
struct RawIngress {
    #[serde(default)]
    metadata: Option<MetaMap>,
    #[serde(default)]
    spec: model::IngressSpec,
    #[serde(default)]
    status: Option<RawStatus>,
}

impl IngressWire {
    /// Build from the parts of an Ingress's JSON: its metadata (without `managedFields`), spec and
    /// `status.loadBalancer.ingress`.
    pub fn from_parts(
        metadata: Map<String, Value>,
        spec: model::IngressSpec,
        load_balancer: Value,
    ) -> Result<Self, serde_json::Error> {
        let metadata = Value::Object(metadata);
        let mut meta = model::ObjectMeta::deserialize(&metadata)?;
        drop_unread(&mut meta);
        let status = StatusView::new(load_balancer, &metadata);
        Ok(Self {
            ingress: model::Ingress {
                metadata: meta,
                spec,
            },
            status,
        })
    }
}

impl Model for IngressWire {
    const KIND: Kind = Kind::Ingress;

    fn decode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawIngress::deserialize(deserializer)?;
        Self::from_parts(
            raw.metadata.map(|m| m.0).unwrap_or_default(),
            raw.spec,
            raw.status
                .map(|s| s.load_balancer.ingress)
                .unwrap_or_default(),
        )
        .map_err(serde::de::Error::custom)
    }
    fn metadata(&self) -> &model::ObjectMeta {
        &self.ingress.metadata
    }
    fn into_object(self) -> Object {
        Object::Ingress(
            std::sync::Arc::new(self.ingress),
            std::sync::Arc::new(self.status),
        )
    }
}

/// The model types read as they are (with [`UNREAD_ANNOTATIONS`] dropped).
macro_rules! plain_model {
    ($type:ty, $kind:expr, $variant:ident) => {
        impl Model for $type {
            const KIND: Kind = $kind;
            fn decode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let mut object = <$type>::deserialize(deserializer)?;
                drop_unread(&mut object.metadata);
                Ok(object)
            }
            fn metadata(&self) -> &model::ObjectMeta {
                &self.metadata
            }
            fn into_object(self) -> Object {
                Object::$variant(std::sync::Arc::new(self))
            }
        }
    };
}

plain_model!(model::IngressClass, Kind::IngressClass, IngressClass);
plain_model!(model::Service, Kind::Service, Service);
plain_model!(model::EndpointSlice, Kind::EndpointSlice, EndpointSlice);
plain_model!(model::Secret, Kind::Secret, Secret);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress_json() -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "42", "uid": "u-1",
                "finalizers": ["example.com/keep"],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}",
                    "rauta.io/ssl-redirect": "false"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"ingressClassName": "rauta", "rules": [{"host": "a.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.1"}]}}})
    }

    #[test]
    fn an_ingress_decodes_into_the_model_and_the_status_view() {
        let wire: Wire<IngressWire> = serde_json::from_value(ingress_json()).unwrap();
        let ingress = &wire.object.ingress;
        assert_eq!(ingress.metadata.name, "web");
        assert_eq!(ingress.metadata.resource_version.as_deref(), Some("42"));
        // The model keeps what RAUTA reads and drops kubectl's copy of the object.
        assert_eq!(
            ingress.metadata.annotations.keys().collect::<Vec<_>>(),
            ["rauta.io/ssl-redirect"]
        );
        assert_eq!(ingress.spec.rules[0].host.as_deref(), Some("a.example"));
        assert_eq!(wire.key(), ("shop".to_string(), "web".to_string()));
        assert_eq!(wire.meta.resource_version.as_deref(), Some("42"));
        // The status writer gets the metadata back whole, except managedFields.
        let metadata = wire.object.status.metadata();
        assert!(metadata.get("managedFields").is_none());
        assert_eq!(metadata["finalizers"], json!(["example.com/keep"]));
        assert_eq!(
            metadata["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "{\"big\": true}"
        );
        assert_eq!(
            wire.object.status.load_balancer,
            json!([{"ip": "198.18.0.1"}])
        );
    }

    #[test]
    fn the_generic_path_decodes_the_same() {
        let wire: Wire<IngressWire> = serde_json::from_value(ingress_json()).unwrap();
        let generic = crate::cache::Object::decode(Kind::Ingress, ingress_json()).unwrap();
        let Object::Ingress(ingress, status) = generic else {
            panic!("not an Ingress")
        };
        assert_eq!(*ingress, wire.object.ingress);
        assert_eq!(*status, wire.object.status);
    }

    #[test]
    fn a_list_decodes_without_a_status_and_with_other_kinds() {
        let list = json!({"kind": "IngressList", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": "bare"}, "spec": {}}]});
        let list: kube::core::ObjectList<Wire<IngressWire>> = serde_json::from_value(list).unwrap();
        assert_eq!(list.items.len(), 1);
        assert!(list.items[0].object.status.load_balancer.is_null());
        let service: Wire<model::Service> = serde_json::from_value(json!({
            "metadata": {"name": "svc", "managedFields": [{"manager": "x"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"ports": [{"port": 80}]}}))
        .unwrap();
        assert!(service.object.metadata.annotations.is_empty());
        assert_eq!(service.object.spec.ports[0].port, 80);
    }
}
