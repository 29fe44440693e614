//! Secret rules.

use super::{metadata, Problems};
use rauta_routes::model::Secret;
use rauta_routes::Kind;

/// Validates a Secret: key names, base64 `data` values, and the two keys a `kubernetes.io/tls`
/// Secret must have (in `data` or `stringData`).
pub(crate) fn secret(secret: &Secret) -> Problems {
    let mut p = Problems::default();
    metadata(Kind::Secret, &secret.metadata, &mut p);
    for (key, value) in &secret.data {
        check_key(&format!("data[{key}]"), key, &mut p);
        if !is_base64(value) {
            p.add(
                format!("data[{key}]"),
                "must be base64-encoded (use stringData for plain text)",
            );
        }
    }
    for key in secret.string_data.keys() {
        check_key(&format!("stringData[{key}]"), key, &mut p);
    }
    if secret.type_.as_deref() == Some("kubernetes.io/tls") {
        for key in ["tls.crt", "tls.key"] {
            if !secret.data.contains_key(key) && !secret.string_data.contains_key(key) {
                p.add(
                    format!("data[{key}]"),
                    "required for type kubernetes.io/tls",
                );
            }
        }
    }
    p
}

/// A key must be non-empty, at most 253 characters of `[-._a-zA-Z0-9]`, and not `.` or `..`.
fn check_key(field: &str, key: &str, p: &mut Problems) {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        p.add(
            field,
            format!("a key must consist of alphanumeric characters, '-', '_' or '.' (got {key:?})"),
        );
    }
}

/// Standard base64 with padding, as the API decodes `data` (line breaks are skipped, as Go does).
fn is_base64(value: &str) -> bool {
    let bytes: Vec<u8> = value
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    if bytes.len() & 3 != 0 {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return false;
    }
    bytes[..bytes.len() - padding]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        for ok in ["", "YQ==", "YWI=", "YWJj", "LS0t\nLS0t", "a+b/"] {
            assert!(is_base64(ok), "{ok}");
        }
        for bad in ["Y", "YQ=", "Y===", "YQ=a", "not base64!", "YW Jj"] {
            assert!(!is_base64(bad), "{bad}");
        }
    }
}
