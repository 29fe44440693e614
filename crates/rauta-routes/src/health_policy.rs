//! Health policy of a backend: active HTTP checks and passive outlier ejection, from `rauta.io/`
//! annotations on the Service or the Ingress.
//!
//! Pure: this only reads and validates the settings; `rauta-health` runs them. Every key is looked up on
//! the Service first and then on the Ingress that first (oldest) references the Service port, so a Service
//! owner can set a policy for every Ingress and an Ingress owner can set one for Services that have none.
//! A value that does not parse keeps the default, with a diagnostic naming the object and annotation.

use std::collections::BTreeMap;
use std::time::Duration;

/// `rauta.io/health-check-path`: the path of the active HTTP check (`GET`); setting it turns checks on.
pub const HEALTH_CHECK_PATH: &str = "rauta.io/health-check-path";
/// `rauta.io/health-check-interval`: time between checks of one endpoint (default 5s).
pub const HEALTH_CHECK_INTERVAL: &str = "rauta.io/health-check-interval";
/// `rauta.io/health-check-timeout`: time allowed for one check, connect to status line (default 1s).
pub const HEALTH_CHECK_TIMEOUT: &str = "rauta.io/health-check-timeout";
/// `rauta.io/health-check-healthy-threshold`: consecutive passes that make an unhealthy endpoint healthy
/// (default 2).
pub const HEALTH_CHECK_HEALTHY_THRESHOLD: &str = "rauta.io/health-check-healthy-threshold";
/// `rauta.io/health-check-unhealthy-threshold`: consecutive failures that make a healthy endpoint
/// unhealthy (default 3).
pub const HEALTH_CHECK_UNHEALTHY_THRESHOLD: &str = "rauta.io/health-check-unhealthy-threshold";
/// `rauta.io/outlier-consecutive-failures`: consecutive connect failures or 5xx answers that eject an
/// endpoint (default 5; `0` turns passive ejection off).
pub const OUTLIER_CONSECUTIVE_FAILURES: &str = "rauta.io/outlier-consecutive-failures";
/// `rauta.io/outlier-base-ejection-time`: the first ejection's length; the n-th ejection in a row lasts n
/// times this (default 10s).
pub const OUTLIER_BASE_EJECTION_TIME: &str = "rauta.io/outlier-base-ejection-time";
/// `rauta.io/outlier-max-ejection-time`: the longest ejection (default 300s).
pub const OUTLIER_MAX_EJECTION_TIME: &str = "rauta.io/outlier-max-ejection-time";

/// Every annotation read here, in documentation order.
pub const ANNOTATIONS: [&str; 8] = [
    HEALTH_CHECK_PATH,
    HEALTH_CHECK_INTERVAL,
    HEALTH_CHECK_TIMEOUT,
    HEALTH_CHECK_HEALTHY_THRESHOLD,
    HEALTH_CHECK_UNHEALTHY_THRESHOLD,
    OUTLIER_CONSECUTIVE_FAILURES,
    OUTLIER_BASE_EJECTION_TIME,
    OUTLIER_MAX_EJECTION_TIME,
];

/// Shortest accepted check interval: faster checks would load the backends more than the requests.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest accepted check timeout and ejection time.
const MIN_SHORT: Duration = Duration::from_millis(10);

/// Active HTTP health checks of every endpoint of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActiveCheck {
    /// Path (and query) requested with `GET`; an answer 200-399 passes.
    pub path: String,
    /// Time between two checks of one endpoint.
    pub interval: Duration,
    /// Time allowed for one check (connect, request, status line).
    pub timeout: Duration,
    /// Consecutive passes that make an unhealthy endpoint healthy again.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
}

/// Passive outlier ejection: endpoints failing real requests are taken out for a while.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutlierDetection {
    /// Consecutive connect failures or 5xx answers that eject; 0 turns ejection off.
    pub consecutive_failures: u32,
    /// Length of a first ejection; the n-th ejection in a row lasts n times this.
    pub base_ejection_time: Duration,
    /// Longest ejection.
    pub max_ejection_time: Duration,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
        }
    }
}

/// The health policy of one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HealthPolicy {
    /// Active checks, if `rauta.io/health-check-path` is set.
    pub active: Option<ActiveCheck>,
    /// Passive ejection (on by default).
    pub outlier: OutlierDetection,
}

/// Where an annotation value came from, for the diagnostic of a bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationSource {
    /// The Service's annotations.
    Service,
    /// The referencing Ingress's annotations.
    Ingress,
}

/// A bad annotation value (the default is used instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationProblem {
    /// The object carrying it.
    pub source: AnnotationSource,
    /// The annotation key.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl HealthPolicy {
    /// The policy from the Service's and the Ingress's annotations (Service first, per key), with the
    /// problems of values that do not parse.
    pub fn from_annotations(
        service: Option<&BTreeMap<String, String>>,
        ingress: Option<&BTreeMap<String, String>>,
    ) -> (HealthPolicy, Vec<AnnotationProblem>) {
        let mut problems = Vec::new();
        let get = |key: &'static str| lookup(key, service, ingress);
        let read = |key: &'static str,
                    default: Duration,
                    min: Duration,
                    problems: &mut Vec<AnnotationProblem>| {
            match get(key) {
                None => default,
                Some((source, value)) => match parse_duration(value) {
                    Some(d) if d >= min => d,
                    _ => {
                        problems.push(AnnotationProblem {
                            source,
                            key,
                            message: format!(
                                "{value:?} is not a duration of at least {min:?} (e.g. \"5s\", \"500ms\", \"1m\"); using {default:?}"
                            ),
                        });
                        default
                    }
                },
            }
        };
        let interval = read(
            HEALTH_CHECK_INTERVAL,
            Duration::from_secs(5),
            MIN_INTERVAL,
            &mut problems,
        );
        let timeout = read(
            HEALTH_CHECK_TIMEOUT,
            Duration::from_secs(1),
            MIN_SHORT,
            &mut problems,
        );
        let defaults = OutlierDetection::default();
        let base = read(
            OUTLIER_BASE_EJECTION_TIME,
            defaults.base_ejection_time,
            MIN_SHORT,
            &mut problems,
        );
        let max = read(
            OUTLIER_MAX_EJECTION_TIME,
            defaults.max_ejection_time,
            MIN_SHORT,
            &mut problems,
        )
        .max(base);
        let mut count = |key: &'static str, default: u32, min: u32| match get(key) {
            None => default,
            Some((source, value)) => match value.parse::<u32>() {
                Ok(n) if n >= min => n,
                _ => {
                    problems.push(AnnotationProblem {
                        source,
                        key,
                        message: format!(
                            "{value:?} is not a whole number of at least {min}; using {default}"
                        ),
                    });
                    default
                }
            },
        };
        let healthy_threshold = count(HEALTH_CHECK_HEALTHY_THRESHOLD, 2, 1);
        let unhealthy_threshold = count(HEALTH_CHECK_UNHEALTHY_THRESHOLD, 3, 1);
        let consecutive_failures = count(
            OUTLIER_CONSECUTIVE_FAILURES,
            defaults.consecutive_failures,
            0,
        );
        let active = match get(HEALTH_CHECK_PATH) {
            None => None,
            Some((_, path)) if path.starts_with('/') && !path.contains(char::is_whitespace) => {
                Some(ActiveCheck {
                    path: path.to_owned(),
                    interval,
                    timeout: timeout.min(interval),
                    healthy_threshold,
                    unhealthy_threshold,
                })
            }
            Some((source, path)) => {
                problems.push(AnnotationProblem {
                    source,
                    key: HEALTH_CHECK_PATH,
                    message: format!(
                        "{path:?} is not a path starting with \"/\" without spaces; active checks stay off"
                    ),
                });
                None
            }
        };
        let policy = HealthPolicy {
            active,
            outlier: OutlierDetection {
                consecutive_failures,
                base_ejection_time: base,
                max_ejection_time: max,
            },
        };
        (policy, problems)
    }
}

/// The value of `key` (trimmed) on the Service, else on the Ingress.
fn lookup<'m>(
    key: &str,
    service: Option<&'m BTreeMap<String, String>>,
    ingress: Option<&'m BTreeMap<String, String>>,
) -> Option<(AnnotationSource, &'m str)> {
    let from = |source, map: Option<&'m BTreeMap<String, String>>| {
        map.and_then(|m| m.get(key)).map(|v| (source, v.trim()))
    };
    from(AnnotationSource::Service, service).or_else(|| from(AnnotationSource::Ingress, ingress))
}

/// `500ms`, `5s`, `2m`, or a bare number of seconds.
fn parse_duration(value: &str) -> Option<Duration> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_annotations() {
        let (policy, problems) = HealthPolicy::from_annotations(None, None);
        assert_eq!(policy, HealthPolicy::default());
        assert!(policy.active.is_none());
        assert_eq!(policy.outlier.consecutive_failures, 5);
        assert!(problems.is_empty());
    }

    #[test]
    fn service_wins_per_key_over_ingress() {
        let service = map(&[
            (HEALTH_CHECK_PATH, "/healthz"),
            (HEALTH_CHECK_INTERVAL, "500ms"),
        ]);
        let ingress = map(&[
            (HEALTH_CHECK_PATH, "/ignored"),
            (HEALTH_CHECK_INTERVAL, "9s"),
            (HEALTH_CHECK_TIMEOUT, "200ms"),
            (HEALTH_CHECK_UNHEALTHY_THRESHOLD, "1"),
            (OUTLIER_BASE_EJECTION_TIME, "2s"),
        ]);
        let (policy, problems) = HealthPolicy::from_annotations(Some(&service), Some(&ingress));
        assert!(problems.is_empty(), "{problems:?}");
        let active = policy.active.unwrap();
        assert_eq!(active.path, "/healthz");
        assert_eq!(active.interval, Duration::from_millis(500));
        assert_eq!(active.timeout, Duration::from_millis(200));
        assert_eq!(active.healthy_threshold, 2);
        assert_eq!(active.unhealthy_threshold, 1);
        assert_eq!(policy.outlier.base_ejection_time, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let ingress = map(&[
            (HEALTH_CHECK_PATH, "healthz"),
            (HEALTH_CHECK_INTERVAL, "fast"),
            (HEALTH_CHECK_HEALTHY_THRESHOLD, "0"),
            (OUTLIER_CONSECUTIVE_FAILURES, "-1"),
        ]);
        let (policy, problems) = HealthPolicy::from_annotations(None, Some(&ingress));
        assert_eq!(policy, HealthPolicy::default());
        let keys: Vec<_> = problems.iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                HEALTH_CHECK_INTERVAL,
                HEALTH_CHECK_HEALTHY_THRESHOLD,
                OUTLIER_CONSECUTIVE_FAILURES,
                HEALTH_CHECK_PATH
            ]
        );
        assert!(problems
            .iter()
            .all(|p| p.source == AnnotationSource::Ingress));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn timeout_never_exceeds_interval_and_zero_failures_turns_ejection_off() {
        let service = map(&[
            (HEALTH_CHECK_PATH, "/h"),
            (HEALTH_CHECK_INTERVAL, "1s"),
            (HEALTH_CHECK_TIMEOUT, "5s"),
            (OUTLIER_CONSECUTIVE_FAILURES, "0"),
        ]);
        let (policy, problems) = HealthPolicy::from_annotations(Some(&service), None);
        assert!(problems.is_empty());
        assert_eq!(policy.active.unwrap().timeout, Duration::from_secs(1));
        assert_eq!(policy.outlier.consecutive_failures, 0);
    }
}
