//! The Lease on a real Kubernetes API server.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::watch_backoff::{Cycle, WatchBackoff};
use super::{BackendError, Change, ElectionEvent, LeaseBackend};

/// How long one watch request may stay open before the server closes it:
/// the longest healthy silence on a connection (the read timeout of
/// [`super::connection::Connections`] is above it).
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(240);

/// A Lease in a namespace of a real cluster.
#[derive(Clone)]
pub struct KubeBackend {
    leases: Api<Lease>,
    events: Api<Event>,
    name: String,
    namespace: String,
    watch_backoff_limit: Duration,
}

impl KubeBackend {
    /// Uses `client` for the Lease `name` in `namespace`.
    pub fn new(client: Client, name: &str, namespace: &str) -> Self {
        KubeBackend {
            leases: Api::namespaced(client.clone(), namespace),
            events: Api::namespaced(client, namespace),
            name: name.to_string(),
            namespace: namespace.to_string(),
            watch_backoff_limit: WatchBackoff::DEFAULT_LIMIT,
        }
    }

    /// Caps the pause between two attempts to re-establish the watch (default
    /// 5 s). The daemon sets it to `retry_period`: a follower then finds a
    /// recovered API server as soon as a client-go follower polling every
    /// retry_period would, and never loads a down one more than that.
    pub fn with_watch_backoff_limit(mut self, limit: Duration) -> Self {
        self.watch_backoff_limit = limit;
        self
    }
}

/// Sorts a kube error into the few kinds the election acts on.
pub fn classify(err: kube::Error) -> BackendError {
    match err {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            match status.code {
                401 | 403 => BackendError::Forbidden(message),
                404 => BackendError::NotFound,
                409 if status.reason == "AlreadyExists" => BackendError::AlreadyExists,
                409 => BackendError::Conflict(message),
                400 | 422 => BackendError::Invalid(message),
                code => BackendError::Server { code, message },
            }
        }
        kube::Error::SerdeError(e) => BackendError::Invalid(format!("unreadable Lease: {e}")),
        other => BackendError::Network(other.to_string()),
    }
}

impl LeaseBackend for KubeBackend {
    async fn get(&self) -> Result<Option<Lease>, BackendError> {
        self.leases.get_opt(&self.name).await.map_err(classify)
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, BackendError> {
        let mut lease = lease.clone();
        lease.metadata.name = Some(self.name.clone());
        lease.metadata.namespace = Some(self.namespace.clone());
        lease.metadata.resource_version = None;
        self.leases
            .create(&PostParams::default(), &lease)
            .await
            .map_err(classify)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, BackendError> {
        if lease.metadata.resource_version.is_none() {
            // An update without a resourceVersion would overwrite blindly.
            return Err(BackendError::Invalid(
                "refusing to replace a Lease without resourceVersion".into(),
            ));
        }
        self.leases
            .replace(&self.name, &PostParams::default(), lease)
            .await
            .map_err(classify)
    }

    fn watch(&self) -> mpsc::UnboundedReceiver<Change> {
        let (tx, rx) = mpsc::unbounded_channel();
        let backoff = WatchBackoff::new(self.watch_backoff_limit);
        tokio::spawn(follow(self.leases.clone(), self.name.clone(), backoff, tx));
        rx
    }

    async fn record_event(&self, event: ElectionEvent, identity: &str) -> Result<(), BackendError> {
        let now = jiff::Timestamp::now();
        let ev = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", self.name)),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("coordination.k8s.io/v1".into()),
                kind: Some("Lease".into()),
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectReference::default()
            },
            reason: Some("LeaderElection".into()),
            message: Some(event.message(identity)),
            type_: Some("Normal".into()),
            source: Some(EventSource {
                component: Some(format!("lease-elector/{identity}")),
                ..EventSource::default()
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            reporting_component: Some("lease-elector".into()),
            reporting_instance: Some(identity.to_string()),
            action: Some("LeaderElection".into()),
            count: Some(1),
            ..Event::default()
        };
        self.events
            .create(&PostParams::default(), &ev)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// Lists then watches the one Lease for as long as anyone listens, forwarding
/// what it sees. Any failure falls back to a fresh list after a backoff, so a
/// lost watch only delays news; the election's own timers never depend on it.
/// Ends as soon as the receiver is dropped, even with a request hanging on a
/// connection that died silently (the elector then watches anew).
async fn follow(
    leases: Api<Lease>,
    name: String,
    mut backoff: WatchBackoff,
    tx: mpsc::UnboundedSender<Change>,
) {
    let selector = format!("metadata.name={name}");
    while !tx.is_closed() {
        if tx.send(Change::WatchStarted).is_err() {
            return;
        }
        let (cycle, outcome) = tokio::select! {
            cycle = watch_once(&leases, &selector, &tx) => cycle,
            _ = tx.closed() => return,
        };
        let pause = backoff.after(cycle);
        match outcome {
            Ok(()) => tracing::debug!(?cycle, "lease watch closed; re-listing after {pause:?}"),
            Err(e) => {
                tracing::debug!(error = %e, ?cycle, "lease watch interrupted; re-listing after {pause:?}")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = tx.closed() => return,
        }
    }
}

/// One list + watch cycle: how it ended, and the error if it failed.
async fn watch_once(
    leases: &Api<Lease>,
    selector: &str,
    tx: &mpsc::UnboundedSender<Change>,
) -> (Cycle, Result<(), BackendError>) {
    let list = match leases.list(&ListParams::default().fields(selector)).await {
        Ok(list) => list,
        Err(e) => return (Cycle::ListFailed, Err(classify(e))),
    };
    let started = tokio::time::Instant::now();
    let outcome = forward(leases, selector, list, tx).await;
    let lasted = started.elapsed();
    (Cycle::WatchEnded { lasted }, outcome)
}

/// Sends what the list found, then every watch event from its version on.
/// `Ok` when the server closed the watch normally or nobody listens any more.
async fn forward(
    leases: &Api<Lease>,
    selector: &str,
    list: kube::core::ObjectList<Lease>,
    tx: &mpsc::UnboundedSender<Change>,
) -> Result<(), BackendError> {
    let version = list.metadata.resource_version.clone().unwrap_or_default();
    let current = match list.items.into_iter().next() {
        Some(lease) => Change::Applied(Box::new(lease)),
        None => Change::Deleted(Some(version.clone())),
    };
    if tx.send(current).is_err() {
        return Ok(());
    }
    let params = WatchParams::default()
        .fields(selector)
        .timeout(WATCH_TIMEOUT.as_secs() as u32);
    let mut stream = leases
        .watch(&params, &version)
        .await
        .map_err(classify)?
        .boxed();
    while let Some(event) = stream.try_next().await.map_err(classify)? {
        let change = match event {
            WatchEvent::Added(l) | WatchEvent::Modified(l) => Change::Applied(Box::new(l)),
            WatchEvent::Deleted(l) => Change::Deleted(l.metadata.resource_version),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(status) => {
                // 410 Gone: our resourceVersion is too old; re-list.
                return Err(classify(kube::Error::Api(status)));
            }
        };
        if tx.send(change).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
