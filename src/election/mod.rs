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
//! [`Elector`] is a state machine over explicit phases: *following*
//! (wait for the Lease to become takeable, woken by watch events and by a
//! timer armed for the exact local expiry instant: no polling), *leading*
//! (renew every retry_period with one PUT from the cached object, falling back
//! to GET+PUT on conflict), *stepping down* (wait for the leader's work to
//! stop, then release) and *stopped*. The files split by job:
//!
//! - `settings.rs`: [`Timings`], [`ElectionConfig`] and their rules;
//! - `record.rs`: the Lease fields read and written, pure functions;
//! - `observe.rs`: what this candidate knows, updated by pure steps;
//! - `report.rs`: logs, metrics (through [`Reporter`]), [`Status`], events;
//! - `phase.rs`: the loop, one function per phase;
//! - `requests.rs`: acquire, renew and release, with named outcomes.
//!
//! All I/O goes through a [`LeaseBackend`].

mod observe;
mod phase;
pub mod record;
mod report;
mod requests;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::LeaseBackend;
use observe::Knowledge;
use report::Report;
pub use report::{Reporter, Verb};
pub use settings::{ElectionConfig, InvalidElection, JITTER_FACTOR, Timings};

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

/// The receivers of one [`Elector`], handed out when it is built.
///
/// Drop `events` if you do not read it: an unread [`Leadership`] would hold up
/// the release on shutdown, as a consumer that is still working should.
#[derive(Debug)]
pub struct Handles {
    /// Leadership events, in order.
    pub events: mpsc::UnboundedReceiver<LeaderEvent>,
    /// A live view of the candidate's status (clone it for more readers).
    pub status: watch::Receiver<Status>,
    /// Makes the candidate resign while leading.
    pub resigner: Resigner,
}

/// One election candidate. Build it with [`Elector::new`], which also hands
/// out its [`Handles`], then [`Elector::run`] it until a shutdown token is
/// cancelled.
pub struct Elector<B: LeaseBackend> {
    core: phase::Core<B>,
    resign: mpsc::UnboundedReceiver<Duration>,
}

impl<B: LeaseBackend> Elector<B> {
    /// A candidate that competes for the Lease behind `backend`, reporting
    /// through `reporter` (e.g. `Arc<Metrics>`; `Arc::new(())` for nothing).
    pub fn new(backend: B, config: ElectionConfig, reporter: Arc<dyn Reporter>) -> (Self, Handles) {
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
        let (events_tx, events) = mpsc::unbounded_channel();
        let (resign_tx, resign) = mpsc::unbounded_channel();
        let handles = Handles {
            events,
            status: status.subscribe(),
            resigner: Resigner(resign_tx),
        };
        let backend = Arc::new(backend);
        let report = Report::new(&config, reporter, backend.clone(), status, events_tx);
        let core = phase::Core {
            backend,
            config,
            known: Knowledge::default(),
            report,
        };
        (Elector { core, resign }, handles)
    }

    /// Runs the election until `shutdown` is cancelled; then, if leading, stops
    /// leader work, releases the Lease (when configured) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let Elector { core, resign } = self;
        core.run(resign, shutdown).await;
    }
}

/// `d` stretched by a random factor in [1, [`JITTER_FACTOR`]), so candidates
/// that failed together do not retry in lockstep.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(1.0 + rand::random::<f64>() * (JITTER_FACTOR - 1.0))
}

#[cfg(test)]
mod tests;
