//! YAML text to a generic value, and a generic value to a typed object with the path of a bad field.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// A decoding failure: the field path (`None` for the document root) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub field: Option<String>,
    pub message: String,
}

/// Parses one document's text. On a syntax error the message carries the line and column in the
/// whole source (`first_line` is where the document starts), not in the document.
pub(crate) fn parse_value(text: &str, first_line: usize) -> Result<Value, String> {
    serde_yaml::from_str::<Value>(text).map_err(|e| {
        format!(
            "invalid YAML: {}",
            shift_lines(&e.to_string(), first_line - 1)
        )
    })
}

/// Adds `by` to every `line N` in a parser message (libyaml names several positions, e.g. "did not
/// find expected key at line 6 column 2, while parsing a block mapping at line 2 column 1").
fn shift_lines(message: &str, by: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Removes mapping entries whose value is null, recursively. The API server decodes `field: null` (and
/// `field:` with nothing after it) as an absent field; the typed model only accepts absence.
pub(crate) fn strip_nulls(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            map.retain(|_, v| !v.is_null());
            for (_, v) in map.iter_mut() {
                strip_nulls(v);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(strip_nulls),
        Value::Tagged(tagged) => strip_nulls(&mut tagged.value),
        _ => {}
    }
}

/// Decodes `value` as `T`, naming the offending field on failure (`prefix` is prepended, e.g.
/// `items[3]` inside a List).
pub(crate) fn decode<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = join_path(prefix, if path == "." { "" } else { &path });
        DecodeError {
            field: (!field.is_empty()).then_some(field),
            message: e.into_inner().to_string(),
        }
    })
}

/// `prefix` and `path` joined with a dot when both are non-empty.
pub(crate) fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rauta_routes::model::Service;

    #[test]
    fn syntax_error_line_is_relative_to_the_source() {
        let err = parse_value("---\na: [1, 2\nb: 3\n", 10).unwrap_err();
        assert!(err.starts_with("invalid YAML: "), "{err}");
        // The document starts at line 10; the error is on its 3rd or 4th line.
        assert!(
            err.contains("at line 12") || err.contains("at line 13"),
            "{err}"
        );
    }

    #[test]
    fn every_line_number_is_shifted() {
        assert_eq!(
            shift_lines("x at line 6 column 2, while parsing at line 2 column 1", 7),
            "x at line 13 column 2, while parsing at line 9 column 1"
        );
        assert_eq!(
            shift_lines("no lines; line x; line", 3),
            "no lines; line x; line"
        );
    }

    #[test]
    fn nulls_are_absent() {
        let mut v: Value = serde_yaml::from_str(
            "metadata:\n  name: a\n  labels:\nspec:\n  ports: [{port: 80, name: ~}]\n",
        )
        .unwrap();
        strip_nulls(&mut v);
        let s: Service = decode(v, "").unwrap();
        assert_eq!(s.metadata.name, "a");
        assert_eq!(s.spec.ports[0].port, 80);
        assert_eq!(s.spec.ports[0].name, None);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let v: Value = serde_yaml::from_str("spec:\n  ports:\n  - port: abc\n").unwrap();
        let err = decode::<Service>(v.clone(), "").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.ports[0].port"));
        assert!(
            err.message.contains("invalid type: string \"abc\""),
            "{}",
            err.message
        );
        let err = decode::<Service>(v, "items[2]").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("items[2].spec.ports[0].port"));
    }

    #[test]
    fn root_error_has_no_field() {
        let err = decode::<Service>(Value::String("x".into()), "").unwrap_err();
        assert_eq!(err.field, None);
    }
}
