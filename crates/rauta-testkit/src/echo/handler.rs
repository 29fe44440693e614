//! Request dispatch of the echo backend.
//!
//! Special paths are recognised by their *last* segments, so they keep working behind a path prefix that a
//! proxy forwards unchanged: `/echo` and `/shop/echo` both echo. A numeric action whose argument is not a
//! valid number (`/status/x`) is an ordinary path and gets the default answer: routing tests and the demo
//! use paths like `/status/x` and must see the backend's plain answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::pattern::PatternBody;

/// Body of every echo answer; errors can only come from a streamed request body (`/echo`).
pub type EchoBody = BoxBody<Bytes, hyper::Error>;

/// Name of the header that carries the backend name on every answer.
pub const BACKEND_HEADER: &str = "x-backend";

/// What a request asks for, decided from its path alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// `200` with `NAME METHOD PATH\n`.
    Default,
    /// Stream the request body back.
    Echo,
    /// Stream this many pattern bytes.
    Bytes(u64),
    /// Wait this long, then answer as [`Action::Default`].
    Delay(Duration),
    /// Answer the request headers as JSON.
    Headers,
    /// Answer as [`Action::Default`] with this status.
    Status(StatusCode),
}

/// Decides the action for `path` from its last one or two segments.
pub fn classify(path: &str) -> Action {
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let last = segments.next().unwrap_or("");
    let before = segments.next().unwrap_or("");
    match (before, last) {
        (_, "echo") => Action::Echo,
        (_, "headers") => Action::Headers,
        ("bytes", n) => n.parse().map_or(Action::Default, Action::Bytes),
        ("delay", ms) => ms.parse().map_or(Action::Default, |ms| {
            Action::Delay(Duration::from_millis(ms))
        }),
        ("status", code) => code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .map_or(Action::Default, Action::Status),
        _ => Action::Default,
    }
}

/// Serves one request for the backend `name`. Never fails: every problem becomes an HTTP answer.
pub async fn handle(
    name: Arc<str>,
    req: Request<Incoming>,
) -> Result<Response<EchoBody>, Infallible> {
    let action = classify(req.uri().path());
    let mut response = match action {
        Action::Default => default_answer(&name, &req, StatusCode::OK),
        Action::Status(code) => default_answer(&name, &req, code),
        Action::Delay(wait) => {
            tokio::time::sleep(wait).await;
            default_answer(&name, &req, StatusCode::OK)
        }
        Action::Echo => Response::new(req.into_body().boxed()),
        Action::Bytes(n) => Response::new(PatternBody::new(n).map_err(never).boxed()),
        Action::Headers => {
            let mut json = serde_json::Map::new();
            for key in req.headers().keys() {
                let values: Vec<String> = req
                    .headers()
                    .get_all(key)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                json.insert(key.as_str().to_owned(), values.join(", ").into());
            }
            let body = serde_json::Value::Object(json).to_string() + "\n";
            let mut r = full(body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    };
    // Names come from the command line; one that is not a valid header value is simply not advertised.
    if let Ok(value) = HeaderValue::from_str(&name) {
        response.headers_mut().insert(BACKEND_HEADER, value);
    }
    Ok(response)
}

fn default_answer<B>(name: &str, req: &Request<B>, status: StatusCode) -> Response<EchoBody> {
    let mut r = if req.method() == Method::HEAD {
        full(String::new())
    } else {
        full(format!("{name} {} {}\n", req.method(), req.uri().path()))
    };
    *r.status_mut() = status;
    r
}

fn full(body: String) -> Response<EchoBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(never).boxed());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn never(e: Infallible) -> hyper::Error {
    match e {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_paths_match_on_last_segments() {
        assert_eq!(classify("/"), Action::Default);
        assert_eq!(classify("/shop/cart"), Action::Default);
        assert_eq!(classify("/echo"), Action::Echo);
        assert_eq!(classify("/api/echo/"), Action::Echo);
        assert_eq!(classify("/headers"), Action::Headers);
        assert_eq!(classify("/bytes/1024"), Action::Bytes(1024));
        assert_eq!(
            classify("/x/delay/5"),
            Action::Delay(Duration::from_millis(5))
        );
        assert_eq!(
            classify("/status/503"),
            Action::Status(StatusCode::SERVICE_UNAVAILABLE)
        );
        // Unusable arguments make an ordinary path.
        assert_eq!(classify("/bytes/lots"), Action::Default);
        assert_eq!(classify("/status/x"), Action::Default);
        assert_eq!(classify("/status/99"), Action::Default);
        // "bytes" as the last segment is an ordinary path.
        assert_eq!(classify("/bytes"), Action::Default);
    }
}
