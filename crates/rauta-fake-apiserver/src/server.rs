//! The HTTP side: bind, accept, route each request to the store, stop and restart on the same address.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::audit::ApiRequest;
use crate::encode::percent_decode;
use crate::error::ApiError;
use crate::resources::{self, RESOURCES};
use crate::selector::Selector;
use crate::store::{Filter, PatchKind, Store, WatchFrom};
use crate::watch::{self, WatchOptions};

/// Largest request body accepted (a real API server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Settings of a fake API server.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How many changes the history keeps for watches; a watch from an older version gets 410 Gone.
    /// Small values let tests force expiry.
    pub history: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history: 10_000,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// A running fake API server. Dropping it stops it.
pub struct FakeApiServer {
    addr: SocketAddr,
    store: Arc<Store>,
    config: Config,
    task: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Listen on `addr` (port 0 picks one) with an empty store.
    pub async fn start(addr: SocketAddr, config: Config) -> io::Result<Self> {
        let store = Store::new(config.history);
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = Some(tokio::spawn(serve(listener, store.clone(), config)));
        Ok(Self {
            addr,
            store,
            config,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the `server` of a kubeconfig.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The state (for tests: force expiry with [`Store::compact`], read the version counter).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stop listening and cut every open connection, watches included.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// [`stop`](Self::stop), then listen again on the same address with the same state. Retries the bind
    /// for up to two seconds (the old socket may linger briefly).
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error) if attempts < 40 => {
                    attempts += 1;
                    tracing::debug!(%error, "rebinding the fake API server");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error),
            }
        };
        self.task = Some(tokio::spawn(serve(
            listener,
            self.store.clone(),
            self.config,
        )));
        Ok(())
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accept until aborted. Connections live in the JoinSet, so aborting this task drops them all.
async fn serve(listener: TcpListener, store: Arc<Store>, config: Config) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "fake API server: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let store = store.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let store = store.clone();
                async move { Ok::<_, Infallible>(handle(store, config, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn respond(code: u16, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn fail(error: &ApiError) -> Response<Body> {
    respond(error.code, &error.to_status())
}

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    Collection {
        resource: usize,
        namespace: Option<String>,
    },
    Object {
        resource: usize,
        namespace: String,
        name: String,
        status: bool,
    },
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["version"] => return Some(Target::Version),
        ["api"] => return Some(Target::CoreVersions),
        ["apis"] => return Some(Target::Groups),
        ["apis", group] => return Some(Target::Group((*group).to_string())),
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural, rest) = match rest {
        [] => return Some(Target::ResourceList(group.into(), version.into())),
        ["namespaces", ns, plural, rest @ ..] => (Some(*ns), *plural, rest),
        [plural, rest @ ..] => (None, *plural, rest),
    };
    let resource = resources::find(group, version, plural)?;
    let namespaced = RESOURCES[resource].namespaced;
    if namespace.is_some() != namespaced && !(namespaced && rest.is_empty()) {
        return None;
    }
    let object = |name: &str, status| Target::Object {
        resource,
        namespace: namespace.unwrap_or("").to_string(),
        name: name.to_string(),
        status,
    };
    match rest {
        [] => Some(Target::Collection {
            resource,
            namespace: namespace.map(str::to_string),
        }),
        [name] => Some(object(name, false)),
        [name, "status"] if RESOURCES[resource].has_status => Some(object(name, true)),
        _ => None,
    }
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn truthy(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true" | "True"))
}

async fn handle(store: Arc<Store>, config: Config, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = query(&req);
    tracing::debug!(%method, %path, ?query, "fake API server request");
    let Some(target) = parse_path(&path) else {
        return fail(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if let Some(request) = audit(&target, &method, &query) {
        store.record_request(request);
    }
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return fail(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                error.to_string(),
            ))
        }
    };
    let result = match (target, &method) {
        (Target::Version, &Method::GET) => Ok((200, resources::version())),
        (Target::CoreVersions, &Method::GET) => Ok((200, resources::core_versions())),
        (Target::Groups, &Method::GET) => Ok((200, resources::group_list())),
        (Target::Group(g), &Method::GET) => {
            resources::group(&g).map(|v| (200, v)).ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            })
        }
        (Target::ResourceList(g, v), &Method::GET) => resources::resource_list(&g, &v)
            .map(|v| (200, v))
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            }),
        (
            Target::Collection {
                resource,
                namespace,
            },
            &Method::GET,
        ) => {
            let filter = match filter(resource, namespace, &query) {
                Ok(filter) => filter,
                Err(error) => return fail(&error),
            };
            if truthy(param(&query, "watch")) {
                return watch_response(store, config, filter, &query);
            }
            let (items, rv) = store.list(&filter);
            let res = &RESOURCES[resource];
            Ok((
                200,
                json!({
                    "kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()}, "items": items,
                }),
            ))
        }
        (
            Target::Collection {
                resource,
                namespace,
            },
            &Method::POST,
        ) => {
            let namespace = match (RESOURCES[resource].namespaced, namespace) {
                (true, Some(ns)) => ns,
                (false, _) => String::new(),
                (true, None) => {
                    return fail(&ApiError::new(
                        405,
                        "MethodNotAllowed",
                        "create needs a namespace in the path",
                    ))
                }
            };
            decode(&content_type, &body)
                .and_then(|body| store.create(resource, &namespace, body))
                .map(|v| (201, v))
        }
        (
            Target::Object {
                resource,
                namespace,
                name,
                status,
            },
            m,
        ) => object(
            &store,
            m,
            resource,
            &namespace,
            &name,
            status,
            &content_type,
            &body,
            &query,
        ),
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {path}"),
        )),
    };
    match result {
        Ok((code, value)) => respond(code, &value),
        Err(error) => fail(&error),
    }
}

/// The request in RBAC terms, if it is a resource request.
fn audit(target: &Target, method: &Method, query: &[(String, String)]) -> Option<ApiRequest> {
    let (resource, namespace, status, collection) = match target {
        Target::Collection {
            resource,
            namespace,
        } => (*resource, namespace.clone(), false, true),
        Target::Object {
            resource,
            namespace,
            status,
            ..
        } => (
            *resource,
            (!namespace.is_empty()).then(|| namespace.clone()),
            *status,
            false,
        ),
        _ => return None,
    };
    let verb = match (method, collection) {
        (&Method::GET, true) if truthy(param(query, "watch")) => "watch",
        (&Method::GET, true) => "list",
        (&Method::GET, false) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "deletecollection",
        (&Method::DELETE, false) => "delete",
        _ => return None,
    };
    let res = &RESOURCES[resource];
    Some(ApiRequest {
        verb,
        group: res.group,
        resource: res.plural,
        subresource: if status { "status" } else { "" },
        namespace,
    })
}

#[allow(clippy::too_many_arguments)] // one request's parts, only passed on
fn object(
    store: &Store,
    method: &Method,
    resource: usize,
    namespace: &str,
    name: &str,
    status: bool,
    content_type: &str,
    body: &Bytes,
    query: &[(String, String)],
) -> Result<(u16, Value), ApiError> {
    match *method {
        Method::GET => store.get(resource, namespace, name).map(|v| (200, v)),
        Method::DELETE => store.delete(resource, namespace, name).map(|v| (200, v)),
        Method::PUT => decode(content_type, body)
            .and_then(|body| store.update(resource, namespace, name, body, status))
            .map(|v| (200, v)),
        Method::PATCH => {
            let kind = match content_type {
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    PatchKind::Merge
                }
                "application/apply-patch+yaml" => {
                    if param(query, "fieldManager").is_none_or(str::is_empty) {
                        return Err(ApiError::bad_request(
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        ));
                    }
                    PatchKind::Apply
                }
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {other:?})"),
                    ))
                }
            };
            let patch = decode(content_type, body)?;
            let (value, created) = store.patch(resource, namespace, name, kind, patch, status)?;
            Ok((if created { 201 } else { 200 }, value))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported"),
        )),
    }
}

/// JSON, or YAML for apply patches and `application/yaml` bodies.
fn decode(content_type: &str, body: &Bytes) -> Result<Value, ApiError> {
    let value: Value = if content_type.ends_with("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the body is not an object"));
    }
    Ok(value)
}

fn filter(
    resource: usize,
    namespace: Option<String>,
    query: &[(String, String)],
) -> Result<Filter, ApiError> {
    let selector = |key| {
        Selector::parse(param(query, key).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
    };
    Ok(Filter {
        resource,
        namespace,
        labels: selector("labelSelector")?,
        fields: selector("fieldSelector")?,
    })
}

fn watch_response(
    store: Arc<Store>,
    config: Config,
    filter: Filter,
    query: &[(String, String)],
) -> Response<Body> {
    let from = match param(query, "resourceVersion") {
        None | Some("" | "0") => WatchFrom::Current,
        Some(text) => match text.parse() {
            Ok(version) => WatchFrom::Version(version),
            Err(_) => {
                return fail(&ApiError::bad_request(format!(
                    "invalid resourceVersion {text:?}"
                )))
            }
        },
    };
    let options = WatchOptions {
        bookmarks: truthy(param(query, "allowWatchBookmarks")),
        bookmark_interval: config.bookmark_interval,
        timeout: param(query, "timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(Duration::from_secs),
    };
    let lines = watch::start(store, filter, from, options);
    let stream = futures_util::stream::unfold(lines, |mut lines| async move {
        let line = lines.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(line)), lines))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections_and_objects() {
        let ing = resources::find("networking.k8s.io", "v1", "ingresses").unwrap();
        let class = resources::find("networking.k8s.io", "v1", "ingressclasses").unwrap();
        assert_eq!(
            parse_path("/apis/networking.k8s.io/v1/ingresses"),
            Some(Target::Collection {
                resource: ing,
                namespace: None
            })
        );
        assert_eq!(
            parse_path("/apis/networking.k8s.io/v1/namespaces/a/ingresses/b/status"),
            Some(Target::Object {
                resource: ing,
                namespace: "a".into(),
                name: "b".into(),
                status: true
            })
        );
        assert_eq!(
            parse_path("/apis/networking.k8s.io/v1/ingressclasses/rauta"),
            Some(Target::Object {
                resource: class,
                namespace: String::new(),
                name: "rauta".into(),
                status: false
            })
        );
        assert_eq!(parse_path("/apis/networking.k8s.io/v1/ingresses/x"), None);
        assert_eq!(parse_path("/api/v1/namespaces/a/secrets/s/status"), None);
        assert_eq!(parse_path("/api/v1/namespaces/a/pods"), None);
    }
}
