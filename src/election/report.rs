//! Everything the outside learns from an elector, in one place: per
//! transition, the log line, the [`Reporter`] call (metrics), the [`Status`]
//! update, the [`LeaderEvent`] and the Kubernetes Event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::api::{LeaderEvent, Leadership, Status};
use super::observe::Seen;
use super::settings::{ElectionConfig, Timings};
use crate::backend::{BackendError, ElectionEvent, LeaseBackend};

/// An API request the elector sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Read the Lease.
    Get,
    /// Create the Lease.
    Create,
    /// Replace the Lease.
    Update,
    /// (Re)start the watch.
    Watch,
    /// Record a Kubernetes Event.
    Event,
}

impl Verb {
    /// Every verb, for pre-registering metrics.
    pub const ALL: [Verb; 5] = [
        Verb::Get,
        Verb::Create,
        Verb::Update,
        Verb::Watch,
        Verb::Event,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Watch => "watch",
            Verb::Event => "event",
        }
    }
}

/// The seam through which an elector reports what it does, for metrics.
/// Every method defaults to doing nothing; `()` reports nothing at all.
pub trait Reporter: Send + Sync + 'static {
    /// The configured timings, once, when the elector is built.
    fn configured(&self, _timings: &Timings) {}
    /// A request is about to be sent.
    fn request(&self, _verb: Verb) {}
    /// A request to acquire, renew or release failed.
    fn request_failed(&self, _error: &BackendError) {}
    /// One renew request took this long, successful or not.
    fn renew_took(&self, _elapsed: Duration) {}
    /// This candidate started acting as leader.
    fn became_leader(&self) {}
    /// This candidate stopped acting as leader.
    fn stopped_leading(&self) {}
    /// The observed holder changed (`""`: released, never held or deleted).
    fn holder_changed(&self, _holder: &str) {}
    /// An acquire or renew succeeded, at this Unix time in seconds.
    fn renewed(&self, _unix_seconds: f64) {}
    /// Another process was seen renewing the Lease under our identity.
    fn identity_conflict(&self) {}
}

impl Reporter for () {}

/// The elector's reporting side.
pub(super) struct Report<B> {
    reporter: Arc<dyn Reporter>,
    status: watch::Sender<Status>,
    events: mpsc::UnboundedSender<LeaderEvent>,
    backend: Arc<B>,
    lease: String,
    namespace: String,
    identity: String,
    request_timeout: Duration,
    /// The last get, create or update sent: the one a failure is about.
    last_request: std::sync::Mutex<Option<Verb>>,
}

impl<B: LeaseBackend> Report<B> {
    pub fn new(
        config: &ElectionConfig,
        reporter: Arc<dyn Reporter>,
        backend: Arc<B>,
        status: watch::Sender<Status>,
        events: mpsc::UnboundedSender<LeaderEvent>,
    ) -> Self {
        reporter.configured(&config.timings);
        Report {
            reporter,
            status,
            events,
            backend,
            lease: config.lease.clone(),
            namespace: config.namespace.clone(),
            identity: config.identity.clone(),
            request_timeout: config.timings.request_timeout(),
            last_request: std::sync::Mutex::new(None),
        }
    }

    /// Hands `leadership` to the application: this candidate leads now.
    pub fn became_leader(&self, leadership: Leadership) {
        let fencing_token = leadership.fencing_token;
        info!(lease = %self.lease, identity = %self.identity, fencing_token, "became leader");
        self.reporter.became_leader();
        self.status.send_modify(|s| {
            s.is_leader = true;
            s.fencing_token = Some(fencing_token);
        });
        self.emit(LeaderEvent::StartedLeading(leadership));
        self.kube_event(ElectionEvent::BecameLeader);
    }

    /// This candidate no longer acts as leader: the status says so first,
    /// then the term's `token` is cancelled, so whoever sees the cancellation
    /// (the workload, the supervisor, a `/leader/stream` client) also sees
    /// `is_leader = false`. The Kubernetes Event is recorded by the caller:
    /// after a release, when one follows, so the handover does not queue
    /// behind it.
    pub fn stopped_leading(&self, why: &str, token: &CancellationToken) {
        self.status.send_modify(|s| {
            s.is_leader = false;
            s.fencing_token = None;
        });
        token.cancel();
        warn!(lease = %self.lease, identity = %self.identity, reason = why, "stopped leading");
        self.reporter.stopped_leading();
        self.emit(LeaderEvent::StoppedLeading);
    }

    /// What an observation changed.
    pub fn observed(&self, seen: &Seen) {
        self.status.send_modify(|s| {
            s.observed = true;
            s.holder = (!seen.holder.is_empty()).then(|| seen.holder.clone());
            s.lease_transitions = seen.transitions;
        });
        if seen.twin_renewed {
            error!(
                lease = %self.lease, identity = %self.identity,
                "another process renews this Lease under our identity: identities must be unique \
                 (two Pods with one name, e.g. a force-deleted StatefulSet Pod still running). \
                 This candidate will not lead while the other renews"
            );
            self.reporter.identity_conflict();
        }
        if seen.holder_changed {
            if !seen.holder.is_empty() {
                info!(lease = %self.lease, identity = %self.identity, leader = %seen.holder, "new leader observed");
            }
            self.reporter.holder_changed(&seen.holder);
            self.emit(LeaderEvent::NewLeader(seen.holder.clone()));
        }
    }

    /// An acquire or renew sent at `sent` succeeded.
    pub fn renewed(&self, sent: Instant) {
        let wall = jiff::Timestamp::now();
        self.reporter.renewed(wall.as_millisecond() as f64 / 1000.0);
        self.status.send_modify(|s| {
            s.last_renew = Some(wall.to_string());
            s.last_renew_at = Some(sent);
        });
    }

    /// When the last successful acquire or renew was sent.
    pub fn last_renew_at(&self) -> Option<Instant> {
        self.status.borrow().last_renew_at
    }

    pub fn request(&self, verb: Verb) {
        if !matches!(verb, Verb::Watch | Verb::Event) {
            *self.last_request.lock().expect("not poisoned") = Some(verb);
        }
        self.reporter.request(verb);
    }

    pub fn renew_took(&self, elapsed: Duration) {
        self.reporter.renew_took(elapsed);
    }

    /// A failed request (the last get, create or update sent), counted and
    /// logged in words an operator can act on: which request, the error
    /// class, and `next`, what the elector does now.
    pub fn failure(&self, action: &str, e: &BackendError, next: &str) {
        self.reporter.request_failed(e);
        let (lease, identity) = (&self.lease, &self.identity);
        let verb = self
            .last_request
            .lock()
            .expect("not poisoned")
            .unwrap_or(Verb::Get);
        let request = format!("{} Lease {}/{}", verb.as_str(), self.namespace, lease);
        let (class, detail) = (error_class(e), error_detail(e));
        if matches!(e, BackendError::Conflict(_) | BackendError::AlreadyExists) {
            debug!(%lease, %identity, action, %request, class, next, "{action} failed: {request}: {class}: {detail}; {next}");
        } else {
            warn!(%lease, %identity, action, %request, class, next, "{action} failed: {request}: {class}: {detail}; {next}");
        }
    }

    /// What a failed renew leads to: the next try, and when this leader
    /// stops unless one succeeds.
    pub fn renew_next(&self, retry: Duration, renew_deadline: Duration) -> String {
        let now = Instant::now();
        let stop = self.last_renew_at().map(|t| t + renew_deadline);
        match stop.map(|t| t.saturating_duration_since(now)) {
            Some(left) if !left.is_zero() => format!(
                "retrying in {}; will stop leading in {} unless a renew succeeds",
                secs(retry),
                secs(left)
            ),
            _ => "will stop leading now (renew_deadline passed)".to_string(),
        }
    }

    fn emit(&self, event: LeaderEvent) {
        // Nobody listening is fine: the event (and any Leadership) is dropped.
        let _ = self.events.send(event);
    }

    /// Records a Kubernetes Event on the Lease in the background (best effort).
    pub fn kube_event(&self, event: ElectionEvent) -> tokio::task::JoinHandle<()> {
        let backend = self.backend.clone();
        let identity = self.identity.clone();
        let reporter = self.reporter.clone();
        let limit = self.request_timeout;
        tokio::spawn(async move {
            reporter.request(Verb::Event);
            match timeout(limit, backend.record_event(event, &identity)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "could not record a Kubernetes Event"),
                Err(_) => debug!("recording a Kubernetes Event timed out"),
            }
        })
    }
}

/// A duration in log words: `2s`, `1.3s`.
pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// The error class an operator reads first.
fn error_class(e: &BackendError) -> &'static str {
    match e {
        BackendError::Forbidden(_) => "forbidden",
        BackendError::Network(_) => "unreachable",
        BackendError::Timeout(_) => "timeout",
        BackendError::Conflict(_) | BackendError::AlreadyExists => "conflict",
        BackendError::Server { .. } => "server error",
        BackendError::Invalid(_) => "malformed record",
        BackendError::NotFound => "not found",
    }
}

/// The rest of the story, with what to check where it helps.
fn error_detail(e: &BackendError) -> String {
    match e {
        BackendError::Forbidden(msg) => format!(
            "permission missing: {msg} (grant get, list, watch, update on this Lease and create on leases; right after an API server start this can also mean its authorizer is not ready yet)"
        ),
        BackendError::Network(msg) => format!(
            "{msg} (check the API server address in the kubeconfig or KUBERNETES_SERVICE_HOST, DNS and NetworkPolicies)"
        ),
        BackendError::Timeout(d) => format!("no answer within {} (request_timeout)", secs(*d)),
        BackendError::Server { code, message } => format!("HTTP {code}: {message}"),
        BackendError::Conflict(msg) | BackendError::Invalid(msg) => msg.clone(),
        BackendError::AlreadyExists => "the Lease already exists".to_string(),
        BackendError::NotFound => "the Lease does not exist".to_string(),
    }
}
