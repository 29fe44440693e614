//! The immutable route table and its per-request lookup.
//!
//! Layout (built by `compile`): exact hosts and wildcard suffixes in two hash maps keyed by lowercase
//! host, each giving a [`HostRoutes`]; a separate `HostRoutes` for rules without a host. Inside a host:
//! a hash map of exact paths, a hash map of normalised prefixes probed at the request path's element
//! boundaries from longest to shortest, and a list of regexes sorted by decreasing pattern length. A
//! lookup allocates nothing: the Host header is lowercased into a stack buffer.

use std::sync::Arc;

use regex::Regex;

use crate::backend::Backend;
use crate::diagnostic::ObjectRef;
use crate::host::{lowercase_into, strip_port, wildcard_suffix, MAX_HOST_LEN};
use crate::path::{prefix_candidates, prefix_len};
use crate::route::{PathType, Route};

/// Hash map with a fast non-cryptographic hasher. Keys are Ingress hosts and paths: chosen by cluster
/// users, not by clients, so hash flooding by clients is not a concern (lookups do not insert).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The result of matching a request.
#[derive(Debug)]
pub enum Match<'a> {
    /// A path rule matched.
    Route(&'a Route),
    /// No path matched; an Ingress or controller-wide default backend applies.
    DefaultBackend(&'a Arc<Backend>),
    /// Nothing applies: the proxy answers 404.
    NotFound,
}

/// Where a default backend applies (for `/routes` and tests).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum DefaultScope {
    /// Requests for this host (`None`: for the hostless rules) that match no path.
    Host(Option<String>),
    /// Requests for hosts no rule names (an Ingress with a defaultBackend and no host rules).
    CatchAll,
    /// The controller-wide `--default-backend`, used when nothing else applies.
    Controller,
}

/// A default backend and where it applies.
#[derive(Debug, Clone)]
pub struct DefaultBackend {
    /// Where it applies.
    pub scope: DefaultScope,
    /// The Ingress whose `spec.defaultBackend` it is (`None` for the controller-wide one).
    pub ingress: Option<ObjectRef>,
    /// The upstream.
    pub backend: Arc<Backend>,
}

/// A regex route of one host.
#[derive(Debug)]
pub(crate) struct RegexRoute {
    /// Anchored: `^(?:pattern)$`.
    pub regex: Regex,
    /// Length of the pattern as written: its precedence.
    pub len: usize,
    pub route: u32,
}

/// The set of key lengths present in a map, so that a lookup can skip hashing a path whose length no
/// key has (most prefix candidates and most misses). Exact for lengths below 128; longer lengths are
/// lumped together (always probed if any long key exists).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LenSet {
    short: u128,
    any_long: bool,
}

impl LenSet {
    pub fn insert(&mut self, len: usize) {
        match u32::try_from(len) {
            Ok(l) if l < 128 => self.short |= 1u128 << l,
            _ => self.any_long = true,
        }
    }

    #[inline]
    pub fn may_contain(&self, len: usize) -> bool {
        if len < 128 {
            self.short & (1u128 << len) != 0
        } else {
            self.any_long
        }
    }
}

/// The routes of one host (or of the hostless rules).
#[derive(Debug, Default)]
pub(crate) struct HostRoutes {
    pub exact: FastMap<Box<str>, u32>,
    pub exact_lens: LenSet,
    /// Keyed by normalised prefix (no trailing slash; `/` is the empty key).
    pub prefix: FastMap<Box<str>, u32>,
    pub prefix_lens: LenSet,
    /// Sorted by decreasing `len`, then by route index (older Ingress first).
    pub regexes: Vec<RegexRoute>,
    /// The `spec.defaultBackend` of the oldest Ingress with rules for this host.
    pub default_backend: Option<Arc<Backend>>,
}

impl HostRoutes {
    /// The index of the best route for `path`: longest wins, then Exact > Prefix > Regex.
    #[inline]
    fn match_path(&self, path: &str) -> Option<u32> {
        // (precedence length, rank, route). Exact has length path.len(), which no Prefix match can
        // exceed (a matching prefix key is at most the path), so the prefix probe is skipped on a hit.
        let mut best: Option<(usize, u32)> = None;
        if let Some(&i) = self
            .exact_lens
            .may_contain(path.len())
            .then(|| self.exact.get(path))
            .flatten()
        {
            best = Some((path.len(), i));
        } else if !self.prefix.is_empty() {
            for candidate in prefix_candidates(path) {
                if !self.prefix_lens.may_contain(candidate.len()) {
                    continue;
                }
                if let Some(&i) = self.prefix.get(candidate) {
                    best = Some((prefix_len(candidate), i));
                    break;
                }
            }
        }
        // A regex wins only if strictly longer: at equal length Exact and Prefix beat Regex.
        for r in &self.regexes {
            if best.is_some_and(|(len, _)| r.len <= len) {
                break;
            }
            if r.regex.is_match(path) {
                return Some(r.route);
            }
        }
        best.map(|(_, i)| i)
    }
}

/// The immutable compiled table. Cheap to share (`Arc`), swapped whole on reload.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub(crate) routes: Vec<Route>,
    pub(crate) exact_hosts: FastMap<Box<str>, HostRoutes>,
    /// Keyed by the suffix after `*.`.
    pub(crate) wildcard_hosts: FastMap<Box<str>, HostRoutes>,
    pub(crate) hostless: Option<HostRoutes>,
    /// The Ingress catch-all, else the controller-wide default backend.
    pub(crate) fallback: Option<Arc<Backend>>,
    pub(crate) default_backends: Vec<DefaultBackend>,
}

impl RouteTable {
    /// Match a request. `host` is the Host header (or `:authority`) as received: any case, may carry
    /// `:port`. `path` is the origin-form path, undecoded; anything from `?` on is ignored.
    ///
    /// The host selects one set of rules (exact host, else wildcard, else the hostless rules); a path
    /// that matches none of them goes to that host's default backend, else the catch-all, else
    /// [`Match::NotFound`]. It never falls through to the hostless rules (see `docs/routing.md`).
    #[inline]
    pub fn lookup(&self, host: &str, path: &str) -> Match<'_> {
        let path = match path.find('?') {
            Some(q) => &path[..q],
            None => path,
        };
        if let Some(group) = self.select_host(host) {
            if let Some(i) = group.match_path(path) {
                if let Some(route) = self.routes.get(i as usize) {
                    return Match::Route(route);
                }
            }
            if let Some(backend) = &group.default_backend {
                return Match::DefaultBackend(backend);
            }
        }
        match &self.fallback {
            Some(backend) => Match::DefaultBackend(backend),
            None => Match::NotFound,
        }
    }

    /// The rules for a Host header: exact host, else one-label wildcard, else the hostless rules.
    #[inline]
    fn select_host(&self, host: &str) -> Option<&HostRoutes> {
        let bare = strip_port(host);
        let mut buf = [0u8; MAX_HOST_LEN];
        // Most clients send the host in lowercase already: skip the copy then.
        let lowered = if bare.bytes().any(|b| b.is_ascii_uppercase()) {
            lowercase_into(bare, &mut buf)
        } else {
            (bare.len() <= MAX_HOST_LEN).then_some(bare)
        };
        if let Some(host) = lowered {
            if let Some(group) = self.exact_hosts.get(host) {
                return Some(group);
            }
            if !self.wildcard_hosts.is_empty() {
                if let Some(group) = wildcard_suffix(host).and_then(|s| self.wildcard_hosts.get(s))
                {
                    return Some(group);
                }
            }
        }
        self.hostless.as_ref()
    }

    /// Every route, for `/routes` and the BPF map writer. Sorted by host (hostless last), then by
    /// precedence within the host.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every default backend and where it applies.
    pub fn default_backends(&self) -> &[DefaultBackend] {
        &self.default_backends
    }

    /// Routes of one path type, e.g. the Exact ones for the XDP map.
    pub fn routes_of(&self, path_type: PathType) -> impl Iterator<Item = &Route> {
        self.routes.iter().filter(move |r| r.path_type == path_type)
    }
}
