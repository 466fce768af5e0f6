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
//! timer armed for the exact local expiry instant: no polling; only a watch
//! gone quiet while a holder is set is checked with one read), *leading*
//! (renew every retry_period with one PUT from the cached object, falling back
//! to GET+PUT on conflict), *stepping down* (wait for the leader's work to
//! stop, then release) and *stopped*. The files split by job:
//!
//! - `api.rs`: what the application gets: [`Handles`], [`Leadership`],
//!   [`LeaderEvent`], [`Status`], [`Resigner`];
//! - `settings.rs`: [`Timings`], [`ElectionConfig`] and their rules;
//! - `record.rs`: the Lease fields read and written, pure functions;
//! - `observe.rs`: what this candidate knows, updated by pure steps;
//! - `report.rs`: logs, metrics (through [`Reporter`]), [`Status`], events;
//! - `quiet.rs`: the Lease watch, and the check of a watch gone quiet;
//! - `phase.rs`: the loop, one function per phase;
//! - `requests.rs`: acquire, renew and release, with named outcomes;
//! - `contest.rs`: a follower's turn to write a takeable Lease, without a herd;
//! - `builder.rs`, `while_leader.rs`, `stream.rs`: the API for controllers,
//!   [`ElectionConfig::builder`], [`Elector::run_while_leader`] and
//!   [`leader_changes`].
//!
//! All I/O goes through a [`LeaseBackend`].

mod api;
mod builder;
mod contest;
mod observe;
mod phase;
mod quiet;
pub mod record;
mod report;
mod requests;
mod settings;
mod spread;
mod stream;
mod while_leader;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::backend::LeaseBackend;
pub use api::{Handles, LeaderEvent, Leadership, Resigner, Status};
pub use builder::ElectionBuilder;
use observe::Knowledge;
use report::Report;
pub use report::{Reporter, Verb};
#[doc(hidden)]
pub use settings::PlantedBug;
pub use settings::{CLOCK_RATE_BOUND, ElectionConfig, InvalidElection, JITTER_FACTOR, Timings};
pub use stream::{LeaderChange, leader_changes};
/// The token type of [`Leadership::token`] and of the shutdown passed to
/// [`Elector::run`] (re-exported from tokio-util).
pub use tokio_util::sync::CancellationToken;

/// One election candidate. Build it with [`Elector::new`], which also hands
/// out its [`Handles`], then [`Elector::run`] it until a shutdown token is
/// cancelled.
pub struct Elector<B: LeaseBackend> {
    core: requests::Core<B>,
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
            fencing_token: None,
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
            resigner: Resigner::new(resign_tx),
        };
        let backend = Arc::new(backend);
        let report = Report::new(&config, reporter, backend.clone(), status, events_tx);
        let known = Knowledge::new(&config.identity);
        let core = requests::Core {
            backend,
            config,
            known,
            report,
            jitter: settings::Jitter::random(),
            spread: spread::Spread::default(),
            planted: None,
        };
        (Elector { core, resign }, handles)
    }

    /// Draws the retry jitter from `source` (numbers in [0, 1)) instead of
    /// `rand::random`: for simulations that replay a seed exactly.
    #[doc(hidden)]
    pub fn with_jitter_source(
        mut self,
        source: impl FnMut() -> f64 + Send + Sync + 'static,
    ) -> Self {
        self.core.jitter = settings::Jitter::from_fn(source);
        self
    }

    /// Breaks one safety rule on purpose, so that a simulation can show its
    /// checker finds the violation. Never for production use.
    #[doc(hidden)]
    pub fn with_planted_bug(mut self, bug: PlantedBug) -> Self {
        self.core.planted = Some(bug);
        self
    }

    /// Runs the election until `shutdown` is cancelled; then, if leading, stops
    /// leader work, releases the Lease (when configured) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let Elector { core, resign } = self;
        core.run(resign, shutdown).await;
    }
}

// These specifications read the Prometheus counters and build candidates with
// crate::candidate, both part of the `daemon` feature.
#[cfg(all(test, feature = "daemon"))]
mod tests;
#[cfg(test)]
mod tests_api;
