//! `labelSelector` and `fieldSelector`, the equality-based forms controllers use.

use serde_json::Value;

/// One requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Parse `a=b,c!=d,e,!f` (`==` too). Set-based forms (`in`, `notin`) are rejected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.contains(" in ") || part.contains(" notin ") || part.contains('(') {
                return Err(format!("unsupported selector {part:?}"));
            }
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else {
                Requirement::Exists(part.into())
            };
            requirements.push(req);
        }
        Ok(Self { requirements })
    }

    /// Whether the labels of `object` match.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.matches(|key| labels.get(key).and_then(Value::as_str).map(str::to_string))
    }

    /// Whether the fields of `object` match (`metadata.name`, `type`, any dotted path to a scalar).
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches(|path| {
            let mut v = object;
            for part in path.split('.') {
                v = v.get(part)?;
            }
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        })
    }

    fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k).as_deref() != Some(v.as_str()),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_selectors() {
        let obj =
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "type": "kubernetes.io/tls"});
        assert!(Selector::parse("app=x").unwrap().matches_labels(&obj));
        assert!(!Selector::parse("app!=x").unwrap().matches_labels(&obj));
        assert!(Selector::parse("app,!other").unwrap().matches_labels(&obj));
        assert!(Selector::parse("type=kubernetes.io/tls,metadata.name==a")
            .unwrap()
            .matches_fields(&obj));
        assert!(Selector::parse("app in (x)").is_err());
    }
}
