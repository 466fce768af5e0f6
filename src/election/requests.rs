//! The three requests of an election, each with a named outcome: acquire,
//! renew and release, and the reads and writes they are made of.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::time::{Instant, timeout};
use tracing::{Instrument, debug, info, info_span, warn};

use super::observe::Knowledge;
use super::record::{self, Observation, Verdict};
use super::report::{self, Report, Verb};
use super::settings::{ElectionConfig, Jitter, PlantedBug};
use super::spread::Spread;
use crate::backend::{BackendError, LeaseBackend};

/// The elector's state, besides its phase.
pub(super) struct Core<B> {
    pub backend: Arc<B>,
    pub config: ElectionConfig,
    pub known: Knowledge,
    pub report: Report<B>,
    pub jitter: Jitter,
    /// How widely this follower's turn at a takeable Lease is set.
    pub spread: Spread,
    /// A broken rule planted by a simulation's teeth test; `None` always
    /// outside it.
    pub planted: Option<PlantedBug>,
}

/// How an attempt to take the Lease ended (failures are `Err`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acquisition {
    /// This candidate holds the Lease now.
    Acquired,
    /// Someone else holds it until this local instant.
    HeldUntil(Instant),
    /// Another candidate wrote first (a conflict): the watch will show who.
    Beaten,
}

/// How one renew ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Renewal {
    /// Written; the request was sent at `sent`.
    Renewed { sent: Instant },
    /// Someone else holds the Lease now.
    Taken { holder: String },
    /// Another process wrote the Lease under our identity.
    Twin,
    /// A failure worth retrying (logged and counted already).
    Failed,
}

/// How a release ended.
enum Release {
    /// The Lease has no holder now, or was not ours to release.
    Done,
    /// It will expire by itself instead.
    Failed(&'static str),
}

impl<B: LeaseBackend> Core<B> {
    /// Until when the last record seen is someone else's; `None` when it is
    /// takeable or not read yet. Decided without a request.
    pub fn held_until(&self) -> Option<Instant> {
        match self.judge(self.known.latest()?) {
            Verdict::HeldUntil(t) => Some(t),
            _ => None,
        }
    }

    /// One attempt to take the Lease.
    pub async fn try_acquire(&mut self) -> Result<Acquisition, BackendError> {
        // Most wake-ups are a watched renew of the current leader: decided
        // without a request, and without a span.
        if let Some(t) = self.held_until() {
            return Ok(Acquisition::HeldUntil(t));
        }
        let span = info_span!("acquire", lease = %self.config.lease, identity = %self.config.identity, outcome = tracing::field::Empty);
        let result = self.acquire_attempts().instrument(span.clone()).await;
        span.record(
            "outcome",
            match &result {
                Ok(Acquisition::Acquired) => "acquired",
                Ok(Acquisition::HeldUntil(_)) => "held",
                Ok(Acquisition::Beaten) => "beaten",
                Err(e) => e.reason(),
            },
        );
        result
    }

    fn judge(&self, obs: &Observation) -> Verdict {
        let t = self.config.timings;
        let ours = self.known.written_by_us(obs.spec.as_ref());
        let me = &self.config.identity;
        record::judge(obs, me, ours, Instant::now(), t.lease_duration)
    }

    async fn acquire_attempts(&mut self) -> Result<Acquisition, BackendError> {
        let mut obs = match self.known.latest() {
            Some(obs) => obs.clone(),
            None => self.refresh().await?,
        };
        // Bounded: each pass follows a read that brought fresh news.
        for _ in 0..3 {
            if let Verdict::HeldUntil(t) = self.judge(&obs) {
                return Ok(Acquisition::HeldUntil(t));
            }
            let t = self.config.timings;
            let spec = record::acquired(obs.spec.as_ref(), &self.config.identity, t.lease_duration);
            self.known.sending(&spec);
            let sent = Instant::now();
            match self.write(&obs, spec).await {
                Ok(lease) => {
                    self.observe(Some(lease));
                    self.report.renewed(sent);
                    return Ok(Acquisition::Acquired);
                }
                // No read: the winner's record is on its way on the watch.
                Err(BackendError::Conflict(_) | BackendError::AlreadyExists) => {
                    debug!("lost a race for the Lease; waiting for the watch to show the winner");
                    return Ok(Acquisition::Beaten);
                }
                Err(BackendError::NotFound) => {
                    debug!("the Lease is gone; re-reading");
                    obs = self.refresh().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(BackendError::Conflict("the Lease keeps changing".into()))
    }

    /// One renew: a PUT from the cached object, and GET+PUT after a conflict.
    pub async fn renew(&mut self) -> Renewal {
        let span = info_span!("renew", lease = %self.config.lease, identity = %self.config.identity, outcome = tracing::field::Empty);
        let renewal = self.renew_attempts().instrument(span.clone()).await;
        span.record(
            "outcome",
            match &renewal {
                Renewal::Renewed { .. } => "renewed",
                Renewal::Taken { .. } | Renewal::Twin => "lost",
                Renewal::Failed => "failed",
            },
        );
        renewal
    }

    async fn renew_attempts(&mut self) -> Renewal {
        for attempt in 0..2 {
            // A leader has always observed its own write; without an
            // observation there is nothing to renew from.
            let Some(obs) = self.known.latest().cloned() else {
                return Renewal::Failed;
            };
            let holder = record::holder(obs.spec.as_ref());
            if holder != self.config.identity {
                return Renewal::Taken {
                    holder: holder.to_string(),
                };
            }
            if !self.known.written_by_us(obs.spec.as_ref()) {
                return Renewal::Twin;
            }
            let spec = record::renewed(
                &obs.spec.clone().unwrap_or_default(),
                self.config.timings.lease_duration,
            );
            self.known.sending(&spec);
            let sent = Instant::now();
            // Deleted while we held it, `write` recreates it, keeping the
            // record's transitions so the fencing token never goes back.
            let result = self.write(&obs, spec).await;
            self.report.renew_took(sent.elapsed());
            let e = match result {
                Ok(lease) => {
                    self.observe(Some(lease));
                    self.report.renewed(sent);
                    return Renewal::Renewed { sent };
                }
                Err(e) => e,
            };
            let recoverable = matches!(
                e,
                BackendError::Conflict(_) | BackendError::NotFound | BackendError::AlreadyExists
            );
            if !recoverable || attempt == 1 {
                self.report.failure("renew", &e, &self.renew_next());
                return Renewal::Failed;
            }
            self.report
                .failure("renew", &e, "re-reading the Lease, then renewing once more");
            // The slow path: read what is there and decide again.
            if let Err(e) = self.refresh().await {
                self.report.failure("renew", &e, &self.renew_next());
                return Renewal::Failed;
            }
        }
        Renewal::Failed
    }

    /// What a failed renew leads to (for its log line).
    fn renew_next(&self) -> String {
        let t = self.config.timings;
        self.report.renew_next(t.retry_period, t.renew_deadline)
    }

    /// Gives the Lease up, within renew_deadline; it expires by itself otherwise.
    pub async fn release(&mut self) {
        let span = info_span!("release", lease = %self.config.lease, identity = %self.config.identity, outcome = tracing::field::Empty);
        let bound = self.config.timings.renew_deadline;
        let release = match timeout(bound, self.release_attempts())
            .instrument(span.clone())
            .await
        {
            Ok(Ok(release)) => release,
            Ok(Err(e)) => {
                let (lease, identity) = (&self.config.lease, &self.config.identity);
                let expires = report::secs(self.config.timings.lease_duration);
                warn!(%lease, %identity, error = %e, "could not release the Lease: {e}; it will expire {expires} after the last renew");
                Release::Failed(e.reason())
            }
            Err(_) => {
                let (lease, identity) = (&self.config.lease, &self.config.identity);
                let expires = report::secs(self.config.timings.lease_duration);
                warn!(%lease, %identity, "could not release the Lease within renew_deadline; it will expire {expires} after the last renew");
                Release::Failed("timeout")
            }
        };
        let outcome = match release {
            Release::Done => "released",
            Release::Failed(reason) => reason,
        };
        span.record("outcome", outcome);
    }

    async fn release_attempts(&mut self) -> Result<Release, BackendError> {
        let pause = self.config.timings.retry_period / 4;
        let mut conflicts = 0u32;
        loop {
            let Some(obs) = self.known.latest() else {
                return Ok(Release::Done);
            };
            let (Some(current), Some(spec)) = (obs.lease.clone(), obs.spec.as_ref()) else {
                return Ok(Release::Done);
            };
            // Not ours (released, taken, or a twin's): nothing to give up.
            if !self.known.holds_our_record() {
                return Ok(Release::Done);
            }
            match self.replace(&current, record::released(spec)).await {
                Ok(lease) => {
                    info!(lease = %self.config.lease, identity = %self.config.identity, "released the Lease");
                    self.observe(Some(lease));
                    return Ok(Release::Done);
                }
                // A renew may still have been in flight: re-read and retry
                // at once; if conflicts go on (a 409 storm), with a pause.
                Err(BackendError::Conflict(_)) => {
                    if conflicts > 0 {
                        tokio::time::sleep(pause).await;
                    }
                    conflicts += 1;
                    self.refresh().await?;
                }
                Err(BackendError::NotFound) => return Ok(Release::Done),
                Err(e) => {
                    let next = format!("retrying in {} until renew_deadline", report::secs(pause));
                    self.report.failure("release", &e, &next);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Records what the server holds now and reports what changed.
    pub fn observe(&mut self, lease: Option<Lease>) {
        let seen = self.known.observe(lease, Instant::now());
        self.report.observed(&seen);
    }

    /// GET, then record what is there (or that nothing is).
    pub(super) async fn refresh(&mut self) -> Result<Observation, BackendError> {
        self.report.request(Verb::Get);
        let lease = self.bounded(self.backend.get()).await?;
        self.observe(lease);
        Ok(self.known.latest().cloned().unwrap_or_else(|| Observation {
            lease: None,
            spec: None,
            seen_at: Instant::now(),
        }))
    }

    /// Writes `spec` over the observed object, or creates the Lease when
    /// none exists.
    async fn write(&self, obs: &Observation, spec: LeaseSpec) -> Result<Lease, BackendError> {
        match &obs.lease {
            Some(current) => self.replace(current, spec).await,
            None => self.create(spec).await,
        }
    }

    async fn replace(&self, current: &Lease, spec: LeaseSpec) -> Result<Lease, BackendError> {
        let mut lease = current.clone();
        lease.spec = Some(spec);
        self.report.request(Verb::Update);
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
        self.report.request(Verb::Create);
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
}
