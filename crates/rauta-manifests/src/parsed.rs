//! Documents to objects: dispatch on kind, Lists, duplicates, and the merged result.

use crate::decode::{decode, join_path, parse_value, strip_nulls};
use crate::error::{ManifestError, SkippedDocument};
use crate::split::split_documents;
use crate::validate::{self, Problems};
use rauta_routes::model::{
    EndpointSlice, Ingress, IngressClass, Inputs, ObjectMeta, Secret, Service,
};
use rauta_routes::Kind;
use serde_yaml::Value;
use std::collections::HashMap;
use std::fmt;

/// At most this many validation errors are reported per object; a slice with a thousand bad addresses
/// should not bury every other message.
const MAX_PROBLEMS_PER_OBJECT: usize = 10;

/// Where an object was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The source as named by the caller of [`parse_manifest`].
    pub source_name: String,
    /// 0-based index of the YAML document in the source.
    pub document: usize,
    /// Index in the `items` of a List, if the object came from one.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} document {}", self.source_name, self.document)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        Ok(())
    }
}

/// Identity of an object: kind, namespace ("" for cluster-scoped kinds) and name.
type ObjectKey = (Kind, String, String);

/// The objects, errors and skipped documents of one or more sources.
#[derive(Debug, Default)]
pub struct ParsedManifests {
    /// Every valid object, one per (kind, namespace, name).
    pub inputs: Inputs,
    /// Everything that could not be used, in source order.
    pub errors: Vec<ManifestError>,
    /// Documents of kinds RAUTA does not read.
    pub skipped: Vec<SkippedDocument>,
    /// Where each object in `inputs` came from, and its position in its list there.
    origins: HashMap<ObjectKey, (Origin, usize)>,
}

/// One decoded, validated object.
enum Object {
    Ingress(Ingress),
    IngressClass(IngressClass),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Secret(Secret),
}

impl Object {
    fn kind(&self) -> Kind {
        match self {
            Object::Ingress(_) => Kind::Ingress,
            Object::IngressClass(_) => Kind::IngressClass,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Secret(_) => Kind::Secret,
        }
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    fn key(&self) -> ObjectKey {
        key_of(self.kind(), self.meta())
    }
}

fn key_of(kind: Kind, meta: &ObjectMeta) -> ObjectKey {
    let ns = if kind.is_namespaced() {
        meta.namespace()
    } else {
        ""
    };
    (kind, ns.to_string(), meta.name.clone())
}

/// `namespace/name` or `name`, as errors show objects.
fn display_name(key: &ObjectKey) -> String {
    if key.1.is_empty() {
        key.2.clone()
    } else {
        format!("{}/{}", key.1, key.2)
    }
}

/// Parses one source (a file's text): every document, every List item. Never fails as a whole: see
/// [`ParsedManifests::errors`].
pub fn parse_manifest(source: &str, text: &str) -> ParsedManifests {
    let mut out = ParsedManifests::default();
    for (document, chunk) in split_documents(text).into_iter().enumerate() {
        let mut value = match parse_value(chunk.text, chunk.first_line) {
            Ok(value) => value,
            Err(message) => {
                out.errors.push(ManifestError {
                    source_name: source.to_string(),
                    document,
                    kind: None,
                    name: None,
                    field: None,
                    message,
                });
                continue;
            }
        };
        strip_nulls(&mut value);
        if value.is_null() {
            continue; // An empty document (only comments, or nothing between two `---`).
        }
        let at = Origin {
            source_name: source.to_string(),
            document,
            item: None,
        };
        out.add_value(value, &at, "", None);
    }
    out
}

/// A string field of a mapping, if present and a string.
fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

impl ParsedManifests {
    /// Adds the objects, errors and skipped documents of `other` (usually the next file). An object
    /// already present is replaced by `other`'s definition, with an error naming both places.
    pub fn merge(&mut self, other: ParsedManifests) {
        let ParsedManifests {
            inputs,
            errors,
            skipped,
            origins,
        } = other;
        self.errors.extend(errors);
        self.skipped.extend(skipped);
        // Recover each object's origin by its position (the key could have been edited by a caller).
        let by_position: HashMap<(Kind, usize), Origin> = origins
            .into_iter()
            .map(|((kind, _, _), (origin, index))| ((kind, index), origin))
            .collect();
        let origin = |kind: Kind, index: usize| {
            by_position.get(&(kind, index)).cloned().unwrap_or(Origin {
                source_name: "<unknown>".to_string(),
                document: 0,
                item: None,
            })
        };
        let Inputs {
            ingresses,
            ingress_classes,
            services,
            endpoint_slices,
            secrets,
        } = inputs;
        for (i, o) in ingresses.into_iter().enumerate() {
            self.insert(Object::Ingress(o), origin(Kind::Ingress, i));
        }
        for (i, o) in ingress_classes.into_iter().enumerate() {
            self.insert(Object::IngressClass(o), origin(Kind::IngressClass, i));
        }
        for (i, o) in services.into_iter().enumerate() {
            self.insert(Object::Service(o), origin(Kind::Service, i));
        }
        for (i, o) in endpoint_slices.into_iter().enumerate() {
            self.insert(Object::EndpointSlice(o), origin(Kind::EndpointSlice, i));
        }
        for (i, o) in secrets.into_iter().enumerate() {
            self.insert(Object::Secret(o), origin(Kind::Secret, i));
        }
    }

    /// Where the object of `kind` named `namespace`/`name` was defined (namespace ignored for
    /// cluster-scoped kinds; empty means `default`).
    pub fn origin(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Origin> {
        let meta = ObjectMeta {
            name: name.to_string(),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        };
        self.origins.get(&key_of(kind, &meta)).map(|(o, _)| o)
    }

    /// One mapping: a List, an object of a kind we read, or something skipped. `prefix` is the field
    /// path of `value` in its document; `implied` is the element kind of a typed list.
    fn add_value(&mut self, value: Value, at: &Origin, prefix: &str, implied: Option<Kind>) {
        let error = |kind: Option<String>, name: Option<String>, field: String, message: String| {
            ManifestError {
                source_name: at.source_name.clone(),
                document: at.document,
                kind,
                name,
                field: (!field.is_empty()).then_some(field),
                message,
            }
        };
        if !value.is_mapping() {
            let message =
                "expected an object (a YAML mapping) with apiVersion and kind".to_string();
            self.errors
                .push(error(None, None, prefix.to_string(), message));
            return;
        }
        let implied_pair = implied.map(|k| (k.api_version(), k.name()));
        let api_version = str_field(&value, "apiVersion").or(implied_pair.map(|p| p.0));
        let kind = str_field(&value, "kind").or(implied_pair.map(|p| p.1));
        let meta = value.get("metadata");
        let raw_name = meta
            .and_then(|m| str_field(m, "name"))
            .filter(|n| !n.is_empty());
        let raw_ns = meta
            .and_then(|m| str_field(m, "namespace"))
            .filter(|n| !n.is_empty());

        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            let missing = if kind.is_none() { "kind" } else { "apiVersion" };
            let message = "required value (every document needs apiVersion and kind)".to_string();
            self.errors.push(error(
                kind.map(str::to_string),
                raw_name.map(str::to_string),
                join_path(prefix, missing),
                message,
            ));
            return;
        };

        if kind == "List" && api_version == "v1" {
            return self.add_items(&value, at, prefix, None);
        }
        if let Some(element) = Kind::of_typed_list(api_version, kind) {
            return self.add_items(&value, at, prefix, Some(element));
        }
        let Some(known) = Kind::recognise(api_version, kind) else {
            self.skipped.push(SkippedDocument {
                source_name: at.source_name.clone(),
                document: at.document,
                item: at.item,
                api_version: Some(api_version.to_string()),
                kind: Some(kind.to_string()),
                name: raw_name.map(str::to_string),
            });
            return;
        };

        let shown_name = raw_name.map(|n| match (known.is_namespaced(), raw_ns) {
            (false, _) => n.to_string(),
            (true, ns) => format!("{}/{n}", ns.unwrap_or("default")),
        });
        match decode_object(known, value, prefix) {
            Ok(object) => self.insert(object, at.clone()),
            Err(problems) => {
                let total = problems.len();
                for problem in problems.into_iter().take(MAX_PROBLEMS_PER_OBJECT) {
                    self.errors.push(error(
                        Some(known.to_string()),
                        shown_name.clone(),
                        problem.0.unwrap_or_default(),
                        problem.1,
                    ));
                }
                if total > MAX_PROBLEMS_PER_OBJECT {
                    let message = format!(
                        "{} more problems not shown; the object was dropped",
                        total - MAX_PROBLEMS_PER_OBJECT
                    );
                    self.errors.push(error(
                        Some(known.to_string()),
                        shown_name,
                        String::new(),
                        message,
                    ));
                }
            }
        }
    }

    /// The `items` of a List (or typed list, whose items may omit apiVersion and kind).
    fn add_items(&mut self, list: &Value, at: &Origin, prefix: &str, implied: Option<Kind>) {
        match list.get("items") {
            None => {} // An empty list.
            Some(Value::Sequence(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let item_at = Origin {
                        item: Some(i),
                        ..at.clone()
                    };
                    let item_prefix = join_path(prefix, &format!("items[{i}]"));
                    self.add_value(item.clone(), &item_at, &item_prefix, implied);
                }
            }
            Some(_) => self.errors.push(ManifestError {
                source_name: at.source_name.clone(),
                document: at.document,
                kind: str_field(list, "kind").map(str::to_string),
                name: None,
                field: Some(join_path(prefix, "items")),
                message: "expected a sequence of objects".to_string(),
            }),
        }
    }

    /// Adds `object`, replacing an earlier definition of the same object with an error naming it.
    fn insert(&mut self, object: Object, origin: Origin) {
        let key = object.key();
        let existing = self.origins.get(&key).map(|(o, i)| (o.clone(), *i));
        // The recorded position is trusted only if it still holds this object (callers may edit
        // `inputs`); otherwise the object is looked for, and appended if it is gone.
        let slot = existing.as_ref().and_then(|(_, i)| {
            if self.key_at(key.0, *i).as_ref() == Some(&key) {
                Some(*i)
            } else {
                (0..self.len(key.0)).find(|&j| self.key_at(key.0, j).as_ref() == Some(&key))
            }
        });
        if let Some((first, _)) = &existing {
            self.errors.push(ManifestError {
                source_name: origin.source_name.clone(),
                document: origin.document,
                kind: Some(key.0.to_string()),
                name: Some(display_name(&key)),
                field: None,
                message: format!(
                    "duplicate {} {}: also defined in {first}; keeping the later one",
                    key.0,
                    display_name(&key)
                ),
            });
        }
        let index = self.put(object, slot);
        self.origins.insert(key, (origin, index));
    }

    /// How many objects of `kind` there are.
    fn len(&self, kind: Kind) -> usize {
        let i = &self.inputs;
        match kind {
            Kind::Ingress => i.ingresses.len(),
            Kind::IngressClass => i.ingress_classes.len(),
            Kind::Service => i.services.len(),
            Kind::EndpointSlice => i.endpoint_slices.len(),
            Kind::Secret => i.secrets.len(),
        }
    }

    /// The key of the object at `index` of the `kind` list, if there is one.
    fn key_at(&self, kind: Kind, index: usize) -> Option<ObjectKey> {
        let i = &self.inputs;
        let meta = match kind {
            Kind::Ingress => &i.ingresses.get(index)?.metadata,
            Kind::IngressClass => &i.ingress_classes.get(index)?.metadata,
            Kind::Service => &i.services.get(index)?.metadata,
            Kind::EndpointSlice => &i.endpoint_slices.get(index)?.metadata,
            Kind::Secret => &i.secrets.get(index)?.metadata,
        };
        Some(key_of(kind, meta))
    }

    /// Stores `object` at `slot` (replacing) or at the end; returns its index.
    fn put(&mut self, object: Object, slot: Option<usize>) -> usize {
        fn place<T>(list: &mut Vec<T>, item: T, slot: Option<usize>) -> usize {
            match slot {
                Some(i) if i < list.len() => {
                    list[i] = item;
                    i
                }
                _ => {
                    list.push(item);
                    list.len() - 1
                }
            }
        }
        let i = &mut self.inputs;
        match object {
            Object::Ingress(o) => place(&mut i.ingresses, o, slot),
            Object::IngressClass(o) => place(&mut i.ingress_classes, o, slot),
            Object::Service(o) => place(&mut i.services, o, slot),
            Object::EndpointSlice(o) => place(&mut i.endpoint_slices, o, slot),
            Object::Secret(o) => place(&mut i.secrets, o, slot),
        }
    }
}

/// A problem with an object: field path (from the document root) and message.
type FieldProblem = (Option<String>, String);

/// Decodes and validates one object of a known kind.
fn decode_object(kind: Kind, value: Value, prefix: &str) -> Result<Object, Vec<FieldProblem>> {
    fn typed<T: serde::de::DeserializeOwned>(
        value: Value,
        prefix: &str,
        check: fn(&T) -> Problems,
    ) -> Result<T, Vec<FieldProblem>> {
        let object: T = decode(value, prefix).map_err(|e| vec![(e.field, e.message)])?;
        let problems = check(&object).0;
        if problems.is_empty() {
            Ok(object)
        } else {
            Err(problems
                .into_iter()
                .map(|p| (Some(join_path(prefix, &p.field)), p.message))
                .collect())
        }
    }
    Ok(match kind {
        Kind::Ingress => Object::Ingress(typed(value, prefix, validate::ingress)?),
        Kind::IngressClass => Object::IngressClass(typed(value, prefix, validate::ingress_class)?),
        Kind::Service => Object::Service(typed(value, prefix, validate::service)?),
        Kind::EndpointSlice => {
            Object::EndpointSlice(typed(value, prefix, validate::endpoint_slice)?)
        }
        Kind::Secret => Object::Secret(typed(value, prefix, validate::secret)?),
    })
}
