//! A tiny HTTP client for tests to create, change and delete objects through the fake's real API, as
//! `kubectl` would. Not a Kubernetes client: paths and bodies are the caller's.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A request that did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or exchanging the request failed.
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    /// The request could not be built (bad path).
    #[error("bad request: {0}")]
    Build(#[from] http::Error),
    /// The body could not be read.
    #[error("reading the body failed: {0}")]
    Body(#[from] hyper::Error),
}

/// An answer: status code and JSON body (`Null` if not JSON).
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body as JSON.
    pub body: Value,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Talks to one fake (or real, plain-HTTP) API server.
#[derive(Clone)]
pub struct Client {
    base: String,
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// One request.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Response, ClientError> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = self.inner.request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(Response {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::GET, path, "application/json", Vec::new())
            .await
    }

    /// POST a JSON object to a collection path.
    pub async fn create(&self, path: &str, object: &Value) -> Result<Response, ClientError> {
        self.request(
            Method::POST,
            path,
            "application/json",
            object.to_string().into_bytes(),
        )
        .await
    }

    /// PUT a JSON object to an object path.
    pub async fn put(&self, path: &str, object: &Value) -> Result<Response, ClientError> {
        self.request(
            Method::PUT,
            path,
            "application/json",
            object.to_string().into_bytes(),
        )
        .await
    }

    /// PATCH with a JSON merge patch.
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Response, ClientError> {
        self.request(
            Method::PATCH,
            path,
            "application/merge-patch+json",
            patch.to_string().into_bytes(),
        )
        .await
    }

    /// Server-side apply of a YAML (or JSON) object, as `kubectl apply --server-side` does.
    pub async fn apply(
        &self,
        path: &str,
        yaml: &str,
        manager: &str,
    ) -> Result<Response, ClientError> {
        self.request(
            Method::PATCH,
            &format!("{path}?fieldManager={manager}"),
            "application/apply-patch+yaml",
            yaml.as_bytes().to_vec(),
        )
        .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::DELETE, path, "application/json", Vec::new())
            .await
    }
}
