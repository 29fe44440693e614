//! Paths: the three Ingress path types and their precedence.
//!
//! * `Exact`: the whole request path, byte for byte (case-sensitive, trailing slash significant).
//! * `Prefix`: element-wise over `/`: `/foo` matches `/foo`, `/foo/` and `/foo/bar`, never `/foobar`;
//!   a trailing slash on either side is ignored; `/` matches every path.
//! * `ImplementationSpecific`: in RAUTA a regular expression that must match the whole path.
//!
//! Precedence inside a host: the longest path wins, and at equal length Exact beats Prefix beats Regex.
//! The length of a Prefix is the length of its normalised key (trailing slashes removed; `/` counts 1),
//! the length of a regex is the length of its pattern.

use regex::Regex;

use crate::route::PathType;

/// Upper bound on the compiled size of one regex, so that a hostile pattern cannot make the compile
/// (or the proxy's memory) explode; larger patterns are dropped with a diagnostic.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A validated path of an Ingress rule.
#[derive(Debug, Clone)]
pub enum PathSpec {
    /// Matches exactly this path.
    Exact(String),
    /// Matches this normalised prefix (see [`prefix_key`]); `written` is the path as in the Ingress.
    Prefix {
        /// As written, for `/routes` and diagnostics.
        written: String,
        /// Normalised: trailing slashes removed, so `/` becomes the empty string.
        key: String,
    },
    /// Matches paths the anchored regex matches in full.
    Regex {
        /// The pattern as written (unanchored).
        pattern: String,
        /// `^(?:pattern)$`, compiled.
        regex: Regex,
    },
}

impl PathSpec {
    /// Validate `path` of type `path_type` (the Kubernetes spelling). `Err` carries `(field, message)`,
    /// where field is `path` or `pathType`, for the diagnostic.
    pub fn parse(
        path: Option<&str>,
        path_type: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        let path = path.filter(|p| !p.is_empty());
        match path_type {
            Some("Exact") | Some("Prefix") => {
                let Some(p) = path else {
                    return Err((
                        "path",
                        "path is required for pathType Exact and Prefix".into(),
                    ));
                };
                if !p.starts_with('/') {
                    return Err(("path", format!("path {p:?} must start with '/'")));
                }
                if path_type == Some("Exact") {
                    Ok(PathSpec::Exact(p.to_owned()))
                } else {
                    Ok(PathSpec::Prefix {
                        written: p.to_owned(),
                        key: prefix_key(p).to_owned(),
                    })
                }
            }
            Some("ImplementationSpecific") => match path {
                // An empty ImplementationSpecific path is allowed by the API; it means "any path",
                // which is exactly Prefix `/`.
                None => Ok(PathSpec::Prefix {
                    written: "/".into(),
                    key: String::new(),
                }),
                Some(p) => compile_regex(p)
                    .map(|regex| PathSpec::Regex {
                        pattern: p.to_owned(),
                        regex,
                    })
                    .map_err(|e| {
                        (
                            "path",
                            format!("invalid ImplementationSpecific regex {p:?}: {e}"),
                        )
                    }),
            },
            Some(other) => Err((
                "pathType",
                format!(
                    "unknown pathType {other:?} (expected Exact, Prefix or ImplementationSpecific)"
                ),
            )),
            None => Err(("pathType", "pathType is required".into())),
        }
    }

    /// The path type.
    pub fn path_type(&self) -> PathType {
        match self {
            PathSpec::Exact(_) => PathType::Exact,
            PathSpec::Prefix { .. } => PathType::Prefix,
            PathSpec::Regex { .. } => PathType::Regex,
        }
    }

    /// The path as written in the Ingress.
    pub fn written(&self) -> &str {
        match self {
            PathSpec::Exact(p) => p,
            PathSpec::Prefix { written, .. } => written,
            PathSpec::Regex { pattern, .. } => pattern,
        }
    }

    /// The identity two Ingresses conflict on: Prefix `/foo` and `/foo/` are the same route.
    pub fn identity(&self) -> (PathType, &str) {
        match self {
            PathSpec::Exact(p) => (PathType::Exact, p),
            PathSpec::Prefix { key, .. } => (PathType::Prefix, key),
            PathSpec::Regex { pattern, .. } => (PathType::Regex, pattern),
        }
    }

    /// The length used for precedence (see the module documentation).
    pub fn precedence_len(&self) -> usize {
        match self {
            PathSpec::Exact(p) => p.len(),
            PathSpec::Prefix { key, .. } => prefix_len(key),
            PathSpec::Regex { pattern, .. } => pattern.len(),
        }
    }
}

/// Precedence length of a normalised prefix key: `/` (key `""`) counts 1, like the path it is written as.
#[inline]
pub fn prefix_len(key: &str) -> usize {
    key.len().max(1)
}

/// Normalise a Prefix path to its lookup key: remove trailing slashes (`/foo/` → `/foo`, `/` → ``).
pub fn prefix_key(path: &str) -> &str {
    path.trim_end_matches('/')
}

/// Anchor and compile an ImplementationSpecific pattern so that it must match the whole path.
pub fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Whether a Prefix with normalised `key` matches `path` (a direct statement of the rule, used by
/// tests; the lookup probes [`prefix_candidates`] in a hash map instead).
pub fn prefix_matches(key: &str, path: &str) -> bool {
    key.is_empty()
        || path == key
        || (path.starts_with(key) && path.as_bytes().get(key.len()) == Some(&b'/'))
}

/// The prefix keys that can match `path`, longest first: the whole path, then the path cut before each
/// `/` from the right (`/a/b/` → `/a/b/`, `/a/b`, `/a`, ``). The empty key (Prefix `/`) is always last.
/// A key never ends in `/`, so candidates ending in `/` simply miss.
#[inline]
pub fn prefix_candidates(path: &str) -> impl Iterator<Item = &str> {
    let bytes = path.as_bytes();
    let mut end = Some(path.len());
    std::iter::from_fn(move || {
        let current = end?;
        let candidate = &path[..current];
        end = if current == 0 {
            None
        } else {
            Some(
                bytes[..current]
                    .iter()
                    .rposition(|&b| b == b'/')
                    .unwrap_or(0),
            )
        };
        Some(candidate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(path: &str, ty: &str) -> PathSpec {
        PathSpec::parse(Some(path), Some(ty)).unwrap()
    }

    /// Whether a spec matches a request path, straight from the definitions.
    fn matches(spec: &PathSpec, path: &str) -> bool {
        match spec {
            PathSpec::Exact(p) => p == path,
            PathSpec::Prefix { key, .. } => prefix_matches(key, path),
            PathSpec::Regex { regex, .. } => regex.is_match(path),
        }
    }

    /// Single-path rows of the Kubernetes docs' path matching table (Ingress page, "Examples").
    #[test]
    fn kubernetes_docs_examples_single_path() {
        let table = [
            ("Prefix", "/", "/", true),
            ("Prefix", "/", "/anything/at/all", true),
            ("Exact", "/foo", "/foo", true),
            ("Exact", "/foo", "/bar", false),
            ("Exact", "/foo", "/foo/", false),
            ("Exact", "/foo/", "/foo", false),
            ("Prefix", "/foo", "/foo", true),
            ("Prefix", "/foo", "/foo/", true),
            ("Prefix", "/foo/", "/foo", true),
            ("Prefix", "/foo/", "/foo/", true),
            ("Prefix", "/aaa/bb", "/aaa/bbb", false),
            ("Prefix", "/aaa/bbb", "/aaa/bbb", true),
            ("Prefix", "/aaa/bbb/", "/aaa/bbb", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbb/", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbb/ccc", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbbxyz", false),
            ("Prefix", "/aaa", "/ccc", false),
        ];
        for (ty, p, req, want) in table {
            assert_eq!(matches(&spec(p, ty), req), want, "{ty} {p} vs {req}");
        }
    }

    #[test]
    fn exact_is_case_sensitive_and_undecoded() {
        assert!(!matches(&spec("/Foo", "Exact"), "/foo"));
        assert!(!matches(&spec("/a/b", "Exact"), "/a%2Fb"));
        assert!(!matches(&spec("/a/b", "Prefix"), "/a%2Fb"));
        assert!(matches(&spec("/a%2Fb", "Exact"), "/a%2Fb"));
    }

    #[test]
    fn regex_must_match_the_whole_path() {
        let re = spec("/api/v[0-9]+", "ImplementationSpecific");
        assert!(matches(&re, "/api/v1"));
        assert!(!matches(&re, "/api/v1/users"), "no implicit prefix match");
        assert!(!matches(&re, "/x/api/v1"), "no unanchored search");
        // An alternation must not escape the anchors.
        let alt = spec("/a|/b", "ImplementationSpecific");
        assert!(matches(&alt, "/a") && matches(&alt, "/b"));
        assert!(!matches(&alt, "/ab") && !matches(&alt, "/a/x") && !matches(&alt, "/x/b"));
        assert_eq!(re.precedence_len(), "/api/v[0-9]+".len());
    }

    #[test]
    fn parse_errors_name_the_field() {
        assert_eq!(
            PathSpec::parse(Some("/(",), Some("ImplementationSpecific"))
                .unwrap_err()
                .0,
            "path"
        );
        assert_eq!(
            PathSpec::parse(Some("foo"), Some("Prefix")).unwrap_err().0,
            "path"
        );
        assert_eq!(PathSpec::parse(None, Some("Exact")).unwrap_err().0, "path");
        assert_eq!(
            PathSpec::parse(Some("/"), Some("Regex")).unwrap_err().0,
            "pathType"
        );
        assert_eq!(PathSpec::parse(Some("/"), None).unwrap_err().0, "pathType");
        let any = PathSpec::parse(None, Some("ImplementationSpecific")).unwrap();
        assert!(matches(&any, "/whatever"));
    }

    #[test]
    fn candidates_are_element_boundaries_longest_first() {
        let got: Vec<_> = prefix_candidates("/a/bb/c/").collect();
        assert_eq!(got, ["/a/bb/c/", "/a/bb/c", "/a/bb", "/a", ""]);
        assert_eq!(prefix_candidates("/").collect::<Vec<_>>(), ["/", ""]);
        assert_eq!(prefix_candidates("").collect::<Vec<_>>(), [""]);
        assert_eq!(prefix_candidates("*").collect::<Vec<_>>(), ["*", ""]);
    }

    #[test]
    fn precedence_lengths() {
        assert_eq!(spec("/", "Prefix").precedence_len(), 1);
        assert_eq!(spec("/foo/", "Prefix").precedence_len(), 4);
        assert_eq!(spec("/foo/", "Exact").precedence_len(), 5);
        assert_eq!(
            spec("/foo/", "Prefix").identity(),
            spec("/foo", "Prefix").identity()
        );
    }

    /// The reference: split both paths by `/`; the prefix (trailing slashes removed) matches when its
    /// elements are the leading elements of the request's.
    fn reference_prefix_match(prefix: &str, path: &str) -> bool {
        let p: Vec<&str> = prefix.trim_end_matches('/').split('/').collect();
        let r: Vec<&str> = path.split('/').collect();
        r.starts_with(&p)
    }

    fn arb_path() -> impl Strategy<Value = String> {
        // Few distinct elements (including the empty one) so that prefixes collide often.
        proptest::collection::vec(prop_oneof!["", "a", "b", "ab", "a%2Fb", "A"], 0..5)
            .prop_map(|elems| format!("/{}", elems.join("/")))
    }

    proptest! {
        #[test]
        fn prefix_matches_agrees_with_reference(prefix in arb_path(), path in arb_path()) {
            prop_assert_eq!(prefix_matches(prefix_key(&prefix), &path), reference_prefix_match(&prefix, &path));
        }

        #[test]
        fn probing_candidates_agrees_with_reference(prefix in arb_path(), path in arb_path()) {
            let key = prefix_key(&prefix);
            let probed = prefix_candidates(&path).any(|c| c == key);
            prop_assert_eq!(probed, reference_prefix_match(&prefix, &path));
        }
    }
}
