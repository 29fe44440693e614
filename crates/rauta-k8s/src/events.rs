//! Kubernetes Events (`events.k8s.io/v1`) on Ingresses for configuration problems.
//!
//! One Warning Event per distinct problem (object, field, message): a problem that persists across
//! recompiles is reported once, not at every change; one that goes away and comes back is reported
//! again. The reason names the kind of problem (`BackendNotFound`, `InvalidPath`, `TLSSecret`,
//! `Conflict`, else `InvalidConfiguration`), so `kubectl get events --field-selector reason=...` works.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

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
    /// the uids. Returns how many Events were created.
    pub async fn record(&mut self, diagnostics: &[Diagnostic], ingresses: &[Ingress]) -> usize {
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
            if !self.reported.contains(&problem)
                && self
                    .create(
                        diagnostic,
                        uids.get(&(object.namespace.as_str(), object.name.as_str()))
                            .copied(),
                    )
                    .await
            {
                created += 1;
            } else if !self.reported.contains(&problem) {
                // Not recorded: try again at the next compile.
                continue;
            }
            current.insert(problem);
        }
        self.reported = current;
        created
    }

    async fn create(&self, diagnostic: &Diagnostic, uid: Option<&str>) -> bool {
        let object = &diagnostic.object;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&diagnostic.field, &diagnostic.message, &self.instance).hash(&mut hasher);
        let now = Timestamp::now();
        let name = format!(
            "{}.{:x}{:x}",
            object.name,
            hasher.finish() & 0xffff_ffff,
            now.as_nanosecond() & 0xffff_ffff
        );
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
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(%error, ingress = %object, "cannot create an Event");
                false
            }
        }
    }
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
