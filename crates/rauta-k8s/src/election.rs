//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.
//!
//! Every replica serves traffic; only the leader writes Ingress status. A replica takes the Lease when
//! it does not exist, is held by nobody, or has not changed for its `leaseDurationSeconds` as observed
//! on this replica's own clock (so clock skew between nodes does not matter: the record's times are
//! never compared with the local clock). Every write carries the Lease's `resourceVersion`, so when
//! two replicas race, the API server's 409 Conflict picks one. A leader that cannot renew for two thirds
//! of the lease duration steps down before anyone can take over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the Lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// `--election-namespace`.
    pub namespace: String,
    /// The Lease's name (one per IngressClass).
    pub name: String,
    /// This replica's identity (pod name, or host name and pid).
    pub identity: String,
    /// `leaseDurationSeconds` (whole seconds, at least 1).
    pub lease_duration: Duration,
}

impl ElectionConfig {
    /// How often to try: a quarter of the lease, between 200 ms and 2 s.
    fn retry_period(&self) -> Duration {
        (self.lease_duration / 4).clamp(Duration::from_millis(200), Duration::from_secs(2))
    }

    /// A leader that could not renew for this long steps down.
    fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// Run the election until the receiver side is gone; the channel says whether this replica leads.
pub async fn run(client: kube::Client, config: ElectionConfig, leader: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed: Option<(String, Instant)> = None;
    let mut last_renewed: Option<Instant> = None;
    loop {
        let leading = *leader.borrow();
        match try_acquire_or_renew(&api, &config, &mut observed).await {
            Ok(true) => {
                last_renewed = Some(Instant::now());
                if !leading {
                    tracing::info!(lease = %config.name, identity = %config.identity, "became the leader: writing Ingress status");
                    leader.send_replace(true);
                }
            }
            Ok(false) => {
                if leading {
                    tracing::warn!(lease = %config.name, "lost the leadership to another replica");
                    leader.send_replace(false);
                }
            }
            Err(error) => {
                tracing::warn!(lease = %config.name, %error, "leader election: cannot read or write the Lease");
                if leading && last_renewed.is_none_or(|t| t.elapsed() > config.renew_deadline()) {
                    tracing::warn!(lease = %config.name, "could not renew in time; stepping down");
                    leader.send_replace(false);
                }
            }
        }
        if leader.is_closed() {
            return;
        }
        tokio::time::sleep(config.retry_period()).await;
    }
}

/// Give the Lease up, if this replica holds it, so that another replica takes over at once rather than
/// after the lease duration (client-go's `ReleaseOnCancel`): the holder is cleared, and
/// `leaseDurationSeconds` set to 1 for clients that only look at expiry. Call it after the election task
/// has stopped, when shutting down. Returns whether a Lease was released.
pub async fn release(client: kube::Client, config: &ElectionConfig) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    // A renewal still in flight from the stopped task can make the first write conflict.
    for _ in 0..3 {
        let Some(mut lease) = api.get_opt(&config.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
            return Ok(false);
        }
        let now = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..spec
        });
        match api
            .replace(&config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => return Ok(true),
            Err(error) if is_conflict(&error) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_conflict() || status.is_already_exists())
}

/// One round: returns whether this replica holds the Lease afterwards.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &ElectionConfig,
    observed: &mut Option<(String, Instant)>,
) -> Result<bool, kube::Error> {
    let now = MicroTime(Timestamp::now());
    let Some(lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(config.lease_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(error),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == config.identity;
    if !ours && !holder.is_empty() {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let since = match observed {
            Some((seen, since)) if *seen == version => *since,
            _ => {
                let since = Instant::now();
                *observed = Some((version, since));
                since
            }
        };
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(config.lease_duration, Duration::from_secs);
        if since.elapsed() <= duration {
            return Ok(false);
        }
        tracing::info!(lease = %config.name, previous = %holder, "the Lease expired; taking over");
    }
    let transitions = spec.lease_transitions.unwrap_or(0);
    let mut renewed = lease;
    renewed.spec = Some(LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.lease_seconds()),
        acquire_time: if ours {
            spec.acquire_time
        } else {
            Some(now.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
        ..spec
    });
    match api
        .replace(&config.name, &PostParams::default(), &renewed)
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if is_conflict(&error) => Ok(false),
        Err(error) => Err(error),
    }
}
