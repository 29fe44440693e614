//! What went wrong with a document, and what was skipped.

use std::fmt;

/// A document or object that could not be used. The object (if any) was dropped; everything else in
/// the file was kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The file (or other source) as named by the caller of [`crate::parse_manifest`].
    pub source_name: String,
    /// 0-based index of the YAML document in the source.
    pub document: usize,
    /// The object's kind, when it could be read.
    pub kind: Option<String>,
    /// `namespace/name` for namespaced kinds, `name` for cluster-scoped ones, when it could be read.
    pub name: Option<String>,
    /// Path of the offending field from the document root, e.g. `spec.rules[0].http.paths[0].pathType`
    /// (prefixed with `items[N].` inside a List). `None` for problems of the whole document.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    /// `examples/app.yaml: document 2 (Ingress default/web): field spec.rules[0].http.paths[0].pathType: unknown variant `Exect``
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source_name, self.document)?;
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => write!(f, " ({kind} {name})")?,
            (Some(kind), None) => write!(f, " ({kind})")?,
            (None, Some(name)) => write!(f, " ({name})")?,
            (None, None) => {}
        }
        if let Some(field) = &self.field {
            write!(f, ": field {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A document (or List item) of a kind RAUTA does not read. Not an error: a manifest directory usually
/// holds Deployments and ConfigMaps too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDocument {
    /// The source as named by the caller.
    pub source_name: String,
    /// 0-based index of the YAML document in the source.
    pub document: usize,
    /// `items[N]` when the object is an item of a List.
    pub item: Option<usize>,
    /// The document's `apiVersion`, if it has one.
    pub api_version: Option<String>,
    /// The document's `kind`, if it has one.
    pub kind: Option<String>,
    /// The document's `metadata.name`, if it has one.
    pub name: Option<String>,
}

impl fmt::Display for SkippedDocument {
    /// `document 3 item 1 (apps/v1 Deployment web)`; the source name is left to the caller, which
    /// usually logs it already.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        let parts: Vec<&str> = [&self.api_version, &self.kind, &self.name]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .collect();
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(" "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_names_everything() {
        let e = ManifestError {
            source_name: "examples/app.yaml".into(),
            document: 2,
            kind: Some("Ingress".into()),
            name: Some("default/web".into()),
            field: Some("spec.rules[0].http.paths[0].pathType".into()),
            message: "unknown variant `Exect`".into(),
        };
        assert_eq!(
            e.to_string(),
            "examples/app.yaml: document 2 (Ingress default/web): field spec.rules[0].http.paths[0].pathType: unknown variant `Exect`"
        );
    }

    #[test]
    fn error_display_without_object_or_field() {
        let e = ManifestError {
            source_name: "a.yaml".into(),
            document: 0,
            kind: None,
            name: None,
            field: None,
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "a.yaml: document 0: bad");
    }

    #[test]
    fn skipped_display() {
        let s = SkippedDocument {
            source_name: "a.yaml".into(),
            document: 3,
            item: Some(1),
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some("web".into()),
        };
        assert_eq!(s.to_string(), "document 3 item 1 (apps/v1 Deployment web)");
    }
}
