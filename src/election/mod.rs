//! Lease leader election with client-go's semantics.
//!
//! # Why the clock rules are safe
//!
//! Candidates never compare the Lease's renewTime with their own clock: a
//! candidate notes, on its own monotonic clock, the instant it *saw* the record
//! change, and considers the Lease expired only when it has seen no change for
//! leaseDurationSeconds after that. The holder wrote the record before anyone
//! could see it, so every other candidate's expiry instant lies at least
//! lease_duration after the moment the holder *sent* that renew.
//!
//! The holder, in turn, stops acting as leader when no renew has succeeded
//! within renew_deadline of the moment the last successful renew was *sent*
//! (not answered: a slow reply cannot stretch the bound). Since
//! renew_deadline < lease_duration, the old leader has stopped before any
//! other candidate may take over, provided clocks run at similar rates (only
//! rate skew matters, never offsets). Every write carries the resourceVersion
//! it read, so two candidates racing for an expired Lease cannot both win.
//!
//! # Shape
//!
//! [`Elector`] owns the loop: it alternates between a follower phase (wait for
//! the Lease to become takeable, woken by watch events and by a timer armed for
//! the exact local expiry instant: no polling) and a leader phase (renew every
//! retry_period with one PUT from the cached object, falling back to GET+PUT on
//! conflict). All I/O goes through a [`LeaseBackend`].

pub mod record;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::backend::{BackendError, Change, ElectionEvent, LeaseBackend};
use crate::metrics::Metrics;
use record::{Observation, Verdict};

/// The timing of an election, validated as client-go validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a record stays valid after a candidate saw it change.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renew.
    pub renew_deadline: Duration,
    /// The leader's renew interval and the followers' retry interval after errors.
    pub retry_period: Duration,
}

impl Timings {
    /// client-go's defaults: 15s / 10s / 2s.
    pub const DEFAULT: Timings = Timings {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };

    /// The bound on one API request: max(1s, renew_deadline / 2), as client-go.
    pub fn request_timeout(&self) -> Duration {
        (self.renew_deadline / 2).max(Duration::from_secs(1))
    }
}

/// Everything an [`Elector`] needs besides its backend.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Lease name (for logs and metrics).
    pub lease: String,
    /// Lease namespace (for logs and metrics).
    pub namespace: String,
    /// This candidate's identity, written as holderIdentity.
    pub identity: String,
    /// Timing of the election.
    pub timings: Timings,
    /// Write an empty holder on shutdown so another candidate takes over at once.
    pub release_on_cancel: bool,
}

impl ElectionConfig {
    /// A candidate `identity` for the Lease `lease` in `namespace`, with
    /// client-go's default timings and release on cancel. The same values come
    /// from the daemon's settings through `Settings::election`.
    pub fn new(lease: &str, namespace: &str, identity: &str) -> Self {
        ElectionConfig {
            lease: lease.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            timings: Timings::DEFAULT,
            release_on_cancel: true,
        }
    }

    /// Sets the timings.
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// Sets whether the Lease is released on shutdown.
    pub fn with_release_on_cancel(mut self, release: bool) -> Self {
        self.release_on_cancel = release;
        self
    }
}

/// What a leader may do while it leads.
///
/// `token` is cancelled the moment this candidate stops acting as leader, which
/// happens before any other candidate can take the Lease. Drop the value once
/// the leader's work has really stopped: a release on shutdown waits for it.
#[derive(Debug)]
pub struct Leadership {
    /// Cancelled when leadership ends (deadline missed, Lease taken, shutdown).
    pub token: CancellationToken,
    /// The Lease's leaseTransitions at acquisition; grows with every new holder.
    pub fencing_token: i32,
    _work: mpsc::Sender<()>,
}

impl Leadership {
    /// A leadership not tied to any elector: nothing waits for it to be
    /// dropped. For tests and for driving a supervisor by hand.
    pub fn detached(token: CancellationToken, fencing_token: i32) -> Self {
        let (work, _) = mpsc::channel(1);
        Leadership {
            token,
            fencing_token,
            _work: work,
        }
    }
}

/// Notifications from an [`Elector`], in order.
#[derive(Debug)]
pub enum LeaderEvent {
    /// This candidate became leader.
    StartedLeading(Leadership),
    /// This candidate stopped acting as leader.
    StoppedLeading,
    /// The observed holder changed (`""` when the Lease was released or deleted).
    NewLeader(String),
}

/// A snapshot of a candidate, for `/leader`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// This candidate's identity.
    pub identity: String,
    /// Lease name.
    pub lease: String,
    /// Lease namespace.
    pub namespace: String,
    /// The holder observed now (`None` before the first read or when released).
    pub holder: Option<String>,
    /// Whether this candidate acts as leader.
    pub is_leader: bool,
    /// The Lease's leaseTransitions as last observed.
    pub lease_transitions: i32,
    /// Wall-clock time of this candidate's last successful renew (RFC 3339).
    pub last_renew: Option<String>,
    /// Whether the Lease has been read at least once.
    pub observed: bool,
    /// Monotonic instant of the last successful renew (for the liveness check).
    #[serde(skip)]
    pub last_renew_at: Option<Instant>,
}

/// Asks a leading [`Elector`] to give the Lease up and sit out for a while
/// (`lease-elector run` uses it when its child exits by itself).
#[derive(Debug, Clone)]
pub struct Resigner(mpsc::UnboundedSender<Duration>);

impl Resigner {
    /// Stop leading, release the Lease, and make no attempt to take it for
    /// `sit_out`, giving the other candidates the first chance. Ignored when
    /// not leading.
    pub fn resign(&self, sit_out: Duration) {
        let _ = self.0.send(sit_out);
    }
}

/// Why the leader phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeadEnd {
    Lost,
    Resigned(Duration),
    Shutdown,
}

/// What wakes a candidate besides its timers.
struct Inbox {
    changes: mpsc::UnboundedReceiver<Change>,
    resign: mpsc::UnboundedReceiver<Duration>,
}

/// One election candidate. Build it with [`Elector::new`], take the
/// [`Elector::events`] and [`Elector::status`] receivers you need, then
/// [`Elector::run`] it until a shutdown token is cancelled.
pub struct Elector<B: LeaseBackend> {
    backend: Arc<B>,
    config: ElectionConfig,
    metrics: Arc<Metrics>,
    status: watch::Sender<Status>,
    events: Option<mpsc::UnboundedSender<LeaderEvent>>,
    observation: Option<Observation>,
    reported_holder: Option<String>,
    work_done: Option<mpsc::Receiver<()>>,
    resign_tx: mpsc::UnboundedSender<Duration>,
    resign_rx: mpsc::UnboundedReceiver<Duration>,
    sit_out_until: Option<Instant>,
}

impl<B: LeaseBackend> Elector<B> {
    /// A candidate that competes for the Lease behind `backend`.
    pub fn new(backend: B, config: ElectionConfig, metrics: Arc<Metrics>) -> Self {
        metrics
            .lease_duration
            .set(config.timings.lease_duration.as_secs_f64());
        let status = watch::Sender::new(Status {
            identity: config.identity.clone(),
            lease: config.lease.clone(),
            namespace: config.namespace.clone(),
            holder: None,
            is_leader: false,
            lease_transitions: 0,
            last_renew: None,
            observed: false,
            last_renew_at: None,
        });
        let (resign_tx, resign_rx) = mpsc::unbounded_channel();
        Elector {
            backend: Arc::new(backend),
            config,
            metrics,
            status,
            events: None,
            observation: None,
            reported_holder: None,
            work_done: None,
            resign_tx,
            resign_rx,
            sit_out_until: None,
        }
    }

    /// Subscribes to leadership events. Take it before [`Elector::run`];
    /// events are only produced once someone subscribed.
    pub fn events(&mut self) -> mpsc::UnboundedReceiver<LeaderEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.events = Some(tx);
        rx
    }

    /// A handle to make this candidate resign while leading.
    pub fn resigner(&self) -> Resigner {
        Resigner(self.resign_tx.clone())
    }

    /// A live view of this candidate's status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Runs the election until `shutdown` is cancelled; then, if leading, stops
    /// leader work, releases the Lease (when configured) and returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (_, placeholder) = mpsc::unbounded_channel();
        let mut inbox = Inbox {
            changes: self.backend.watch(),
            // Moved out so the loop can borrow `self` and the inbox apart.
            resign: std::mem::replace(&mut self.resign_rx, placeholder),
        };
        loop {
            if !self.follow(&mut inbox, &shutdown).await {
                return;
            }
            match self.lead(&mut inbox, &shutdown).await {
                LeadEnd::Lost => {}
                LeadEnd::Resigned(sit_out) => {
                    self.release(true).await;
                    self.sit_out_until = Some(Instant::now() + sit_out);
                }
                LeadEnd::Shutdown => {
                    self.release(self.config.release_on_cancel).await;
                    return;
                }
            }
        }
    }

    // ---- follower -------------------------------------------------------

    /// Waits until this candidate holds the Lease (`true`) or shutdown (`false`).
    async fn follow(&mut self, inbox: &mut Inbox, shutdown: &CancellationToken) -> bool {
        let retry = self.config.timings.retry_period;
        // After a resignation: let the others have the first go.
        let sit_out = self.sit_out_until.take();
        // After a failed request: do not hammer the server.
        let mut backoff_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let pause = [sit_out, backoff_until]
                .into_iter()
                .flatten()
                .filter(|t| *t > now)
                .max();
            let wake_at = match pause {
                Some(t) => t,
                None => match self.try_acquire().await {
                    Ok(None) => return true,
                    Ok(Some(expiry)) => expiry,
                    Err(e) => {
                        self.log_failure("acquire", &e);
                        let t = Instant::now() + jittered(retry);
                        backoff_until = Some(t);
                        t
                    }
                },
            };
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = sleep_until(wake_at) => {}
                Some(_) = inbox.resign.recv() => {}
                Some(change) = inbox.changes.recv() => {
                    if self.apply(change) {
                        // News from the server means it is reachable again.
                        backoff_until = None;
                    }
                }
            }
        }
    }

    /// One attempt to take the Lease: `Ok(None)` when it is ours now,
    /// `Ok(Some(t))` when someone else holds it until the local instant `t`.
    async fn try_acquire(&mut self) -> Result<Option<Instant>, BackendError> {
        // Most wake-ups are a watched renew of the current leader: decided
        // without a request, and without a span.
        if let Some(obs) = &self.observation
            && let Verdict::HeldUntil(t) = record::judge(
                obs,
                &self.config.identity,
                Instant::now(),
                self.config.timings.lease_duration,
            )
        {
            return Ok(Some(t));
        }
        let span = info_span!("acquire", lease = %self.config.lease, identity = %self.config.identity, outcome = tracing::field::Empty);
        let result = async {
            if self.observation.is_none() {
                self.refresh().await?;
            }
            // Bounded: each pass follows a conflict that brought fresh news.
            for _ in 0..3 {
                let obs = self.observation.clone().expect("refreshed above");
                let verdict = record::judge(
                    &obs,
                    &self.config.identity,
                    Instant::now(),
                    self.config.timings.lease_duration,
                );
                if let Verdict::HeldUntil(t) = verdict {
                    return Ok(Some(t));
                }
                let spec = record::acquired(
                    obs.spec.as_ref(),
                    &self.config.identity,
                    self.config.timings.lease_duration,
                );
                let sent = Instant::now();
                let written = match &obs.lease {
                    Some(current) => self.replace(current, spec).await,
                    None => self.create(spec).await,
                };
                match written {
                    Ok(lease) => {
                        self.observe(Some(lease));
                        self.renewed_at(sent);
                        return Ok(None);
                    }
                    Err(
                        BackendError::Conflict(_)
                        | BackendError::AlreadyExists
                        | BackendError::NotFound,
                    ) => {
                        debug!("lost a race for the Lease; re-reading");
                        self.refresh().await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(BackendError::Conflict("the Lease keeps changing".into()))
        }
        .instrument(span.clone())
        .await;
        span.record(
            "outcome",
            match &result {
                Ok(None) => "acquired",
                Ok(Some(_)) => "held",
                Err(e) => e.reason(),
            },
        );
        result
    }

    // ---- leader ---------------------------------------------------------

    async fn lead(&mut self, inbox: &mut Inbox, shutdown: &CancellationToken) -> LeadEnd {
        let t = self.config.timings;
        let token = self.start_leading();
        let mut last_ok = self
            .status
            .borrow()
            .last_renew_at
            .unwrap_or_else(Instant::now);
        let mut next_renew = last_ok + t.retry_period;
        loop {
            let deadline = last_ok + t.renew_deadline;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.stop_leading(&token, "shutting down", false);
                    return LeadEnd::Shutdown;
                }
                _ = sleep_until(deadline) => {
                    self.stop_leading(&token, "no successful renew within renew_deadline", true);
                    return LeadEnd::Lost;
                }
                Some(sit_out) = inbox.resign.recv() => {
                    self.stop_leading(&token, "resigned", false);
                    return LeadEnd::Resigned(sit_out);
                }
                Some(change) = inbox.changes.recv() => {
                    self.apply(change);
                    if self.observed_holder() != self.config.identity {
                        // Possibly stale news; a renew settles it either way.
                        next_renew = Instant::now();
                    }
                }
                _ = sleep_until(next_renew) => {
                    let outcome = tokio::select! {
                        r = self.renew() => r,
                        _ = sleep_until(deadline) => Err(None),
                    };
                    match outcome {
                        Ok(sent) => last_ok = sent,
                        Err(Some(taken_by)) => {
                            self.stop_leading(&token, &format!("the Lease is now held by {taken_by:?}"), true);
                            return LeadEnd::Lost;
                        }
                        Err(None) => {}
                    }
                    next_renew = Instant::now() + t.retry_period;
                }
            }
        }
    }

    /// One renew: a PUT from the cached object, and GET+PUT after a conflict.
    /// `Ok(sent)` on success; `Err(Some(holder))` when someone else holds the
    /// Lease now; `Err(None)` on a failure worth retrying.
    async fn renew(&mut self) -> Result<Instant, Option<String>> {
        let span = info_span!("renew", lease = %self.config.lease, identity = %self.config.identity, outcome = tracing::field::Empty);
        let result = self.renew_inner().instrument(span.clone()).await;
        span.record(
            "outcome",
            match &result {
                Ok(_) => "renewed",
                Err(Some(_)) => "lost",
                Err(None) => "failed",
            },
        );
        result
    }

    async fn renew_inner(&mut self) -> Result<Instant, Option<String>> {
        let lease_duration = self.config.timings.lease_duration;
        for attempt in 0..2 {
            let obs = self
                .observation
                .clone()
                .expect("a leader has observed the Lease");
            if record::holder(obs.spec.as_ref()) != self.config.identity {
                return Err(Some(record::holder(obs.spec.as_ref()).to_string()));
            }
            let spec = obs.spec.clone().unwrap_or_default();
            let sent = Instant::now();
            let result = match &obs.lease {
                Some(current) => {
                    self.replace(current, record::renewed(&spec, lease_duration))
                        .await
                }
                // Deleted while we held it: recreate, keeping the record's
                // transitions so the fencing token never goes back.
                None => self.create(record::renewed(&spec, lease_duration)).await,
            };
            self.metrics
                .renew_duration
                .observe(sent.elapsed().as_secs_f64());
            match result {
                Ok(lease) => {
                    self.observe(Some(lease));
                    self.renewed_at(sent);
                    return Ok(sent);
                }
                Err(e) => {
                    self.log_failure("renew", &e);
                    let recoverable = matches!(
                        e,
                        BackendError::Conflict(_)
                            | BackendError::NotFound
                            | BackendError::AlreadyExists
                    );
                    if !recoverable || attempt == 1 {
                        return Err(None);
                    }
                    // The slow path: read what is there and decide again.
                    if let Err(e) = self.refresh().await {
                        self.log_failure("renew", &e);
                        return Err(None);
                    }
                }
            }
        }
        Err(None)
    }

    fn start_leading(&mut self) -> CancellationToken {
        let token = CancellationToken::new();
        let fencing_token =
            record::transitions(self.observation.as_ref().and_then(|o| o.spec.as_ref()));
        info!(lease = %self.config.lease, identity = %self.config.identity, fencing_token, "became leader");
        self.metrics.set_leader(true);
        self.metrics
            .transitions
            .with_label_values(&["acquired"])
            .inc();
        self.status.send_modify(|s| s.is_leader = true);
        let (work_tx, work_rx) = mpsc::channel(1);
        self.work_done = Some(work_rx);
        self.emit(LeaderEvent::StartedLeading(Leadership {
            token: token.clone(),
            fencing_token,
            _work: work_tx,
        }));
        self.record_event(ElectionEvent::BecameLeader);
        token
    }

    /// Stops acting as leader. The Kubernetes Event is recorded now, or, when
    /// a release follows (`event_now` false), after it: the release is what
    /// the next leader waits for and should not queue behind the Event.
    fn stop_leading(&mut self, token: &CancellationToken, why: &str, event_now: bool) {
        token.cancel();
        warn!(lease = %self.config.lease, identity = %self.config.identity, reason = why, "stopped leading");
        self.metrics.set_leader(false);
        self.metrics.transitions.with_label_values(&["lost"]).inc();
        self.status.send_modify(|s| s.is_leader = false);
        self.emit(LeaderEvent::StoppedLeading);
        if event_now {
            self.record_event(ElectionEvent::StoppedLeading);
        }
    }

    /// Gives the Lease up (when `write` is set) after the leader's work has stopped.
    async fn release(&mut self, write: bool) {
        if let Some(mut work) = self.work_done.take() {
            // Resolves once every Leadership handed out has been dropped.
            let _ = work.recv().await;
        }
        if write {
            self.write_release().await;
        }
        // Awaited, since the process may exit right after a shutdown.
        let _ = self.record_event(ElectionEvent::StoppedLeading).await;
    }

    async fn write_release(&mut self) {
        let span = info_span!("release", lease = %self.config.lease, identity = %self.config.identity, outcome = tracing::field::Empty);
        let bound = self.config.timings.renew_deadline;
        let outcome = match timeout(bound, self.release_inner())
            .instrument(span.clone())
            .await
        {
            Ok(Ok(())) => "released",
            Ok(Err(e)) => {
                warn!(error = %e, "could not release the Lease; it will expire");
                e.reason()
            }
            Err(_) => {
                warn!("could not release the Lease within renew_deadline; it will expire");
                "timeout"
            }
        };
        span.record("outcome", outcome);
    }

    async fn release_inner(&mut self) -> Result<(), BackendError> {
        loop {
            let Some(obs) = self.observation.clone() else {
                return Ok(());
            };
            let (Some(current), Some(spec)) = (obs.lease.as_ref(), obs.spec.as_ref()) else {
                return Ok(());
            };
            if record::holder(Some(spec)) != self.config.identity {
                return Ok(());
            }
            match self.replace(current, record::released(spec)).await {
                Ok(lease) => {
                    info!(lease = %self.config.lease, identity = %self.config.identity, "released the Lease");
                    self.observe(Some(lease));
                    return Ok(());
                }
                // A renew may still have been in flight: re-read and retry.
                Err(BackendError::Conflict(_)) => self.refresh().await?,
                Err(BackendError::NotFound) => return Ok(()),
                Err(e) => {
                    self.log_failure("release", &e);
                    tokio::time::sleep(self.config.timings.retry_period / 4).await;
                }
            }
        }
    }

    // ---- observations and requests --------------------------------------

    /// Applies news from the watch; `true` when it carried a Lease state.
    fn apply(&mut self, change: Change) -> bool {
        match change {
            Change::WatchStarted => {
                self.metrics.api_request("watch");
                false
            }
            Change::Applied(lease) => {
                let version = lease.metadata.resource_version.as_deref();
                debug!(?version, "watch: Lease applied");
                if !self.is_stale(version) {
                    self.observe(Some(*lease));
                }
                true
            }
            Change::Deleted(version) => {
                debug!(?version, "watch: Lease absent");
                if !self.is_stale(version.as_deref()) {
                    self.observe(None);
                }
                true
            }
        }
    }

    /// Whether watch news at `version` is older than what we hold already
    /// (an event queued before our own write's answer arrived).
    fn is_stale(&self, version: Option<&str>) -> bool {
        let current = self
            .observation
            .as_ref()
            .and_then(|o| o.lease.as_ref())
            .and_then(|l| l.metadata.resource_version.as_deref());
        current.is_some() && !record::is_newer(version, current)
    }

    /// Records what the server holds now; restarts the expiry clock only when
    /// the record itself changed.
    fn observe(&mut self, lease: Option<Lease>) {
        let now = Instant::now();
        let previous = self.observation.take();
        let obs = match (lease, previous) {
            (Some(lease), prev) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let seen_at = match &prev {
                    Some(p) if p.spec.as_ref() == Some(&spec) => p.seen_at,
                    _ => now,
                };
                Observation {
                    lease: Some(lease),
                    spec: Some(spec),
                    seen_at,
                }
            }
            // Deleted: the last holder's term still runs out on its own clock.
            (None, Some(prev)) => Observation {
                lease: None,
                ..prev
            },
            (None, None) => Observation {
                lease: None,
                spec: None,
                seen_at: now,
            },
        };
        let holder = record::holder(obs.spec.as_ref()).to_string();
        let transitions = record::transitions(obs.spec.as_ref());
        let present = obs.lease.is_some();
        self.observation = Some(obs);
        let shown = if present {
            holder.clone()
        } else {
            String::new()
        };
        self.status.send_modify(|s| {
            s.observed = true;
            s.holder = (!shown.is_empty()).then(|| shown.clone());
            s.lease_transitions = transitions;
        });
        if self.reported_holder.as_deref() != Some(shown.as_str()) {
            if !shown.is_empty() {
                info!(lease = %self.config.lease, identity = %self.config.identity, leader = %shown, "new leader observed");
                self.metrics.observed_leader_changes.inc();
            }
            self.metrics.set_holder(&shown);
            self.reported_holder = Some(shown.clone());
            self.emit(LeaderEvent::NewLeader(shown));
        }
    }

    fn observed_holder(&self) -> &str {
        record::holder(self.observation.as_ref().and_then(|o| o.spec.as_ref()))
    }

    fn renewed_at(&mut self, sent: Instant) {
        let wall = jiff::Timestamp::now();
        self.metrics
            .last_renew_timestamp
            .set(wall.as_millisecond() as f64 / 1000.0);
        self.status.send_modify(|s| {
            s.last_renew = Some(wall.to_string());
            s.last_renew_at = Some(sent);
        });
    }

    /// GET, then record what is there (or that nothing is).
    async fn refresh(&mut self) -> Result<(), BackendError> {
        self.metrics.api_request("get");
        let lease = self.bounded(self.backend.get()).await?;
        self.observe(lease);
        Ok(())
    }

    async fn replace(&self, current: &Lease, spec: LeaseSpec) -> Result<Lease, BackendError> {
        let mut lease = current.clone();
        lease.spec = Some(spec);
        self.metrics.api_request("update");
        self.bounded(self.backend.replace(&lease)).await
    }

    async fn create(&self, spec: LeaseSpec) -> Result<Lease, BackendError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.lease.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        self.metrics.api_request("create");
        self.bounded(self.backend.create(&lease)).await
    }

    async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let limit = self.config.timings.request_timeout();
        timeout(limit, request)
            .await
            .unwrap_or(Err(BackendError::Timeout(limit)))
    }

    fn log_failure(&self, action: &str, e: &BackendError) {
        self.metrics
            .renew_failures
            .with_label_values(&[e.reason()])
            .inc();
        match e {
            BackendError::Forbidden(msg) => warn!(
                lease = %self.config.lease, identity = %self.config.identity, action,
                "permission missing: {msg} (grant get, list, watch, update on this Lease and create on leases; right after an API server start this can also mean its authorizer is not ready yet)"
            ),
            BackendError::Conflict(_) | BackendError::AlreadyExists => debug!(
                lease = %self.config.lease, identity = %self.config.identity, action, error = %e, "write conflict"
            ),
            _ => {
                warn!(lease = %self.config.lease, identity = %self.config.identity, action, error = %e, "request failed")
            }
        }
    }

    fn emit(&self, event: LeaderEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    fn record_event(&self, event: ElectionEvent) -> tokio::task::JoinHandle<()> {
        let backend = self.backend.clone();
        let identity = self.config.identity.clone();
        let metrics = self.metrics.clone();
        let limit = self.config.timings.request_timeout();
        tokio::spawn(async move {
            metrics.api_request("event");
            match timeout(limit, backend.record_event(event, &identity)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "could not record a Kubernetes Event"),
                Err(_) => debug!("recording a Kubernetes Event timed out"),
            }
        })
    }
}

/// `d` stretched by a random factor in [1, 1.2), so candidates that failed
/// together do not retry in lockstep.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(1.0 + rand::random::<f64>() * 0.2)
}

#[cfg(test)]
mod tests;
