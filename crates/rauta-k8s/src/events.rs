//! Kubernetes Events (`events.k8s.io/v1`) on Ingresses for configuration problems.
//!
//! One Warning Event per distinct problem (object, field, message): a problem that persists across
//! recompiles is reported once, not at every change; one that goes away and comes back is reported
//! again (once the first Event has expired from the API server, see below).
//!
//! Across replicas: with leader election only the leader records; without it (no address to publish),
//! or during a leadership change, several replicas may try to record the same problem. The Event's name
//! is therefore derived from the problem alone (object uid, field, message), not from the replica, so the
//! API server accepts the first replica's Event and answers the others `409 AlreadyExists`, which counts
//! as recorded: one Event per problem, however many replicas see it. The reason names the kind of problem (`BackendNotFound`, `InvalidPath`, `TLSSecret`,
//! `Conflict`, else `InvalidConfiguration`), so `kubectl get events --field-selector reason=...` works.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use rauta_routes::model::Ingress;
use rauta_routes::Diagnostic;

/// `reportingController` of every Event.
pub const CONTROLLER: &str = "rauta.io/ingress-controller";

/// One problem, as deduplicated.
type Problem = (String, String, String, String);

/// Records Events for new problems.
pub struct EventRecorder {
    client: kube::Client,
    instance: String,
    reported: BTreeSet<Problem>,
}

/// A stable, bounded reason for a diagnostic.
pub fn reason(diagnostic: &Diagnostic) -> &'static str {
    let field = diagnostic.field.as_str();
    let message = diagnostic.message.as_str();
    if message.starts_with("conflict lost") {
        "Conflict"
    } else if field.starts_with("spec.tls") {
        "TLSSecret"
    } else if message.contains("not found") || message.contains("has no port") {
        "BackendNotFound"
    } else if message.contains("no EndpointSlices") {
        "NoEndpoints"
    } else if field.ends_with(".path") || field.ends_with(".pathType") || message.contains("regex")
    {
        "InvalidPath"
    } else {
        "InvalidConfiguration"
    }
}

impl EventRecorder {
    /// A recorder writing as `instance` (this replica's identity).
    pub fn new(client: kube::Client, instance: String) -> Self {
        Self {
            client,
            instance,
            reported: BTreeSet::new(),
        }
    }

    /// Report the Ingress problems among `diagnostics` that were not reported yet. `ingresses` supplies
    /// the uids. Returns how many Events were created (not counting those another replica had created).
    pub async fn record(
        &mut self,
        diagnostics: &[Diagnostic],
        ingresses: &[std::sync::Arc<Ingress>],
    ) -> usize {
        let uids: HashMap<(&str, &str), &str> = ingresses
            .iter()
            .filter_map(|i| {
                let uid = i.metadata.uid.as_deref()?;
                Some(((i.metadata.namespace(), i.metadata.name.as_str()), uid))
            })
            .collect();
        let mut current = BTreeSet::new();
        let mut created = 0;
        for diagnostic in diagnostics.iter().filter(|d| d.object.kind == "Ingress") {
            let object = &diagnostic.object;
            let problem = (
                object.namespace.clone(),
                object.name.clone(),
                diagnostic.field.clone(),
                diagnostic.message.clone(),
            );
            if !self.reported.contains(&problem) {
                let uid = uids
                    .get(&(object.namespace.as_str(), object.name.as_str()))
                    .copied();
                match self.create(diagnostic, uid).await {
                    Created::New => created += 1,
                    Created::Existing => {}
                    // Not recorded: try again at the next compile.
                    Created::Failed => continue,
                }
            }
            current.insert(problem);
        }
        self.reported = current;
        created
    }

    async fn create(&self, diagnostic: &Diagnostic, uid: Option<&str>) -> Created {
        let object = &diagnostic.object;
        let now = Timestamp::now();
        let name = event_name(diagnostic, uid);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(object.namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some("Compile".into()),
            reason: Some(reason(diagnostic).into()),
            note: Some(format!("{}: {}", diagnostic.field, diagnostic.message)),
            type_: Some("Warning".into()),
            reporting_controller: Some(CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            regarding: Some(ObjectReference {
                api_version: Some("networking.k8s.io/v1".into()),
                kind: Some("Ingress".into()),
                namespace: Some(object.namespace.clone()),
                name: Some(object.name.clone()),
                uid: uid.map(str::to_string),
                ..ObjectReference::default()
            }),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &object.namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => Created::New,
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                tracing::debug!(ingress = %object, event = %event_name(diagnostic, uid), "another replica recorded this problem");
                Created::Existing
            }
            Err(error) => {
                tracing::warn!(%error, ingress = %object, "cannot create an Event");
                Created::Failed
            }
        }
    }
}

/// What became of one Event.
enum Created {
    New,
    /// Another replica (or this one, before a restart) created it already.
    Existing,
    Failed,
}

/// The Event's name: the Ingress's name and a hash of the problem, the same on every replica. The hash
/// is FNV-1a, fixed by its definition (unlike `DefaultHasher`, whose algorithm may change between Rust
/// releases, which would make two replicas built differently disagree).
fn event_name(diagnostic: &Diagnostic, uid: Option<&str>) -> String {
    let object = &diagnostic.object;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        object.namespace.as_str(),
        object.name.as_str(),
        uid.unwrap_or(""),
        diagnostic.field.as_str(),
        diagnostic.message.as_str(),
    ] {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // Object names are at most 253 characters; keep room for the suffix.
    let prefix: String = object.name.chars().take(200).collect();
    format!("{prefix}.{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rauta_routes::ObjectRef;

    fn diag(field: &str, message: &str) -> Diagnostic {
        Diagnostic {
            object: ObjectRef {
                kind: "Ingress",
                namespace: "default".into(),
                name: "x".into(),
            },
            field: field.into(),
            message: message.into(),
        }
    }

    #[test]
    fn event_names_depend_on_the_problem_only() {
        let a = diag("spec.rules[0].host", "bad");
        assert_eq!(
            event_name(&a, Some("u1")),
            event_name(&a.clone(), Some("u1"))
        );
        assert_ne!(event_name(&a, Some("u1")), event_name(&a, Some("u2")));
        let b = diag("spec.rules[0].host", "worse");
        assert_ne!(event_name(&a, None), event_name(&b, None));
        assert!(event_name(&a, None).starts_with("x."));
    }

    #[test]
    fn reasons_are_bounded_and_meaningful() {
        assert_eq!(
            reason(&diag(
                "spec.rules[0].http.paths[0].backend.service",
                "service default/x not found"
            )),
            "BackendNotFound"
        );
        assert_eq!(
            reason(&diag(
                "spec.rules[0].http.paths[0].path",
                "invalid ImplementationSpecific regex \"(\""
            )),
            "InvalidPath"
        );
        assert_eq!(
            reason(&diag(
                "spec.tls[0].secretName",
                "TLS Secret default/c not found"
            )),
            "TLSSecret"
        );
    }
}
