//! API errors as the `Status` objects a real API server answers with.

use serde_json::{json, Value};

/// A failed request: HTTP code, `reason` and message, rendered as a `v1` `Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code (also `code` in the Status).
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details.causes` for 422 Invalid: (field, message).
    pub causes: Vec<(String, String)>,
    /// `details.name` / `details.kind` (plural), where known.
    pub details: Option<(String, String)>,
}

impl ApiError {
    /// A new error without details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            causes: Vec::new(),
            details: None,
        }
    }

    /// 404 for `plural` `name`.
    pub fn not_found(plural: &str, name: &str) -> Self {
        let mut e = Self::new(404, "NotFound", format!("{plural} \"{name}\" not found"));
        e.details = Some((name.to_string(), plural.to_string()));
        e
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if self.details.is_some() || !self.causes.is_empty() {
            let mut details = json!({});
            if let Some((name, kind)) = &self.details {
                details["name"] = json!(name);
                details["kind"] = json!(kind);
            }
            if !self.causes.is_empty() {
                details["causes"] = self
                    .causes
                    .iter()
                    .map(|(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field}))
                    .collect();
            }
            status["details"] = details;
        }
        status
    }
}
