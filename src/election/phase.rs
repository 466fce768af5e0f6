//! The loop: one explicit phase at a time, each carrying its data, each run
//! by one function that returns the next phase.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::api::Leadership;
use super::contest::{Contest, Move};
use super::quiet::Watch;
use super::report::{self, Verb};
use super::requests::{Core, Renewal};
use super::settings::PlantedBug;
use crate::backend::{Change, ElectionEvent, LeaseBackend};

/// What wakes a candidate besides its timers.
pub(super) struct Inbox {
    changes: Watch,
    resign: mpsc::UnboundedReceiver<Duration>,
}

/// Where the election stands.
enum Phase {
    /// Competing: waiting until the Lease may be taken, then taking it. No
    /// attempt before `sit_out_until` (set after a resignation). The work of
    /// terms lost without a handover may still be `winding_down`.
    Following {
        sit_out_until: Option<Instant>,
        winding_down: WorkDone,
    },
    /// Holding the Lease and renewing it.
    Leading(Term),
    /// Leadership ended; once the leader's work has stopped, the Lease is
    /// handed over as `handover` says, then the election goes on as `next`.
    SteppingDown {
        work: WorkDone,
        handover: Handover,
        next: AfterStepDown,
    },
    /// Shut down.
    Stopped,
}

/// One term as leader.
struct Term {
    /// Cancelled the moment this candidate stops acting as leader.
    token: CancellationToken,
    work: WorkDone,
    /// When the last successful acquire or renew was sent.
    last_ok: Instant,
    /// The term's validity, `last_ok` + [`Timings::validity`], shared with
    /// its [`Leadership`].
    ///
    /// [`Timings::validity`]: super::Timings::validity
    valid: watch::Sender<Instant>,
}

impl Term {
    /// A renew sent at `sent` succeeded: the deadline and the validity move.
    fn renewed(&mut self, sent: Instant, validity: Duration) {
        self.last_ok = sent;
        self.valid.send_replace(sent + validity);
    }
}

/// Resolves once every [`Leadership`] of one or more terms has been dropped.
///
/// A term lost at the deadline hands its work on to the next phase: if the
/// record still names us, a new term can start at once while the old term's
/// work still winds down, and a release must wait for both.
struct WorkDone(Vec<mpsc::Receiver<()>>);

impl WorkDone {
    /// No work outstanding.
    fn none() -> Self {
        WorkDone(Vec::new())
    }

    /// Also waits for `earlier`; forgets work that has stopped already.
    fn and(mut self, earlier: WorkDone) -> Self {
        self.0.extend(earlier.0);
        self.0.retain_mut(|rx| {
            !matches!(rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected))
        });
        self
    }

    async fn stopped(self) {
        for mut rx in self.0 {
            let _ = rx.recv().await;
        }
    }
}

/// What a stepping-down leader does with the Lease.
enum Handover {
    /// Write an empty holder so another candidate takes over at once.
    Release,
    /// Leave it to expire (release_on_cancel = false).
    LeaveToExpire,
}

/// What comes after stepping down.
enum AfterStepDown {
    /// Compete again, but give the others this long for the first go.
    SitOut(Duration),
    /// Shut down.
    Stop,
}

/// Why a term ended.
enum TermEnd {
    Shutdown,
    DeadlineMissed,
    Resigned(Duration),
    Taken(String),
    /// Another process renews the Lease under our identity.
    Twin,
}

impl<B: LeaseBackend> Core<B> {
    pub async fn run(
        mut self,
        resign: mpsc::UnboundedReceiver<Duration>,
        shutdown: CancellationToken,
    ) {
        let mut inbox = Inbox {
            changes: Watch::start(&*self.backend),
            resign,
        };
        let mut phase = Phase::Following {
            sit_out_until: None,
            winding_down: WorkDone::none(),
        };
        loop {
            phase = match phase {
                Phase::Following {
                    sit_out_until,
                    winding_down,
                } => {
                    self.follow(sit_out_until, winding_down, &mut inbox, &shutdown)
                        .await
                }
                Phase::Leading(term) => self.lead(term, &mut inbox, &shutdown).await,
                Phase::SteppingDown {
                    work,
                    handover,
                    next,
                } => self.step_down(work, handover, next).await,
                Phase::Stopped => return,
            };
        }
    }

    /// Waits until this candidate holds the Lease, or shutdown.
    async fn follow(
        &mut self,
        sit_out_until: Option<Instant>,
        winding_down: WorkDone,
        inbox: &mut Inbox,
        shutdown: &CancellationToken,
    ) -> Phase {
        let retry = self.config.timings.retry_period;
        // After a failed request: do not hammer the server.
        let mut backoff_until: Option<Instant> = None;
        let mut contest = Contest::Open;
        loop {
            let now = Instant::now();
            let pause = [sit_out_until, backoff_until]
                .into_iter()
                .flatten()
                .filter(|t| *t > now)
                .max();
            let wake_at = match pause {
                Some(t) => t,
                None => match self.contend(&mut contest).await {
                    // The write landed after the shutdown came: never lead.
                    Ok(Move::Won) if shutdown.is_cancelled() => {
                        return self.leave(winding_down).await;
                    }
                    Ok(Move::Won) => return Phase::Leading(self.start_term(winding_down)),
                    Ok(Move::WaitUntil(t)) => t,
                    Err(e) => {
                        let pause = self.jitter.jittered(retry);
                        let next = format!("retrying in {}", report::secs(pause));
                        self.report.failure("acquire", &e, &next);
                        let t = Instant::now() + pause;
                        backoff_until = Some(t);
                        t
                    }
                },
            };
            let quiet_at = inbox.changes.quiet_at(&self.config.timings);
            // Biased, for replays that are exact: shutdown first, then news
            // (applied before an expiry timer acts on older knowledge), then
            // the timers, the quiet-watch check last.
            let news = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return self.leave(winding_down).await,
                Some(change) = inbox.changes.next() => Some(change),
                Some(_) = inbox.resign.recv() => None,
                _ = sleep_until(wake_at) => None,
                _ = sleep_until(quiet_at), if self.expects_news() && inbox.changes.unchecked() => {
                    self.check_quiet_watch(&mut inbox.changes, wake_at, shutdown).await
                }
            };
            if let Some(change) = news
                && let Heard::LeaseState = self.apply(change)
            {
                // News from the server means it is reachable again.
                backoff_until = None;
            }
        }
    }

    /// Shutdown while following. A record that still names us (a term lost
    /// at the deadline, or an acquire that landed during the shutdown) is
    /// released as client-go releases it, once all earlier work has stopped.
    async fn leave(&mut self, winding_down: WorkDone) -> Phase {
        if self.config.release_on_cancel && self.known.holds_our_record() {
            winding_down.stopped().await;
            self.release().await;
        }
        Phase::Stopped
    }

    fn start_term(&mut self, winding_down: WorkDone) -> Term {
        let token = CancellationToken::new();
        let (work_tx, work_rx) = mpsc::channel(1);
        let last_ok = self.report.last_renew_at().unwrap_or_else(Instant::now);
        let (valid, valid_rx) = watch::channel(last_ok + self.config.timings.validity());
        self.report.became_leader(Leadership {
            token: token.clone(),
            fencing_token: self.known.transitions(),
            valid: valid_rx,
            _work: work_tx,
        });
        Term {
            token,
            work: WorkDone(vec![work_rx]).and(winding_down),
            last_ok,
            valid,
        }
    }

    /// Renews every retry_period until the term ends.
    async fn lead(
        &mut self,
        mut term: Term,
        inbox: &mut Inbox,
        shutdown: &CancellationToken,
    ) -> Phase {
        let t = self.config.timings;
        let mut next_renew = term.last_ok + t.retry_period;
        loop {
            let deadline = term.last_ok + t.renew_deadline;
            let end = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Some(TermEnd::Shutdown),
                _ = sleep_until(deadline) => Some(TermEnd::DeadlineMissed),
                Some(sit_out) = inbox.resign.recv() => Some(TermEnd::Resigned(sit_out)),
                Some(change) = inbox.changes.next() => {
                    self.apply(change);
                    if self.known.holder() != self.config.identity {
                        // Possibly stale news; a renew settles it either way.
                        next_renew = Instant::now();
                        None
                    } else if !self.known.holds_our_record() {
                        Some(TermEnd::Twin)
                    } else {
                        None
                    }
                }
                _ = sleep_until(next_renew) => {
                    // The deadline first: a renew answered after it is too late.
                    let renewal = tokio::select! {
                        biased;
                        _ = sleep_until(deadline) => Renewal::Failed,
                        r = self.renew() => r,
                    };
                    next_renew = Instant::now() + t.retry_period;
                    match renewal {
                        Renewal::Renewed { sent } => {
                            term.renewed(self.term_base(sent), t.validity());
                            None
                        }
                        Renewal::Failed => None,
                        Renewal::Taken { holder } => Some(TermEnd::Taken(holder)),
                        Renewal::Twin => Some(TermEnd::Twin),
                    }
                }
            };
            if let Some(end) = end {
                return self.end_term(term, end);
            }
        }
    }

    /// What a successful renew sent at `sent` extends the term from: `sent`
    /// (only a simulation's planted bug uses the reply's arrival).
    fn term_base(&self, sent: Instant) -> Instant {
        match self.planted {
            None => sent,
            Some(PlantedBug::RenewDeadlineFromReply) => Instant::now(),
        }
    }

    /// Stops acting as leader at once; what happens to the Lease follows.
    fn end_term(&mut self, term: Term, end: TermEnd) -> Phase {
        let (token, work) = (term.token, term.work);
        let stepping_down = |work, handover, next| Phase::SteppingDown {
            work,
            handover,
            next,
        };
        match end {
            TermEnd::Shutdown => {
                self.report.stopped_leading("shutting down", &token);
                let handover = if self.config.release_on_cancel {
                    Handover::Release
                } else {
                    Handover::LeaveToExpire
                };
                stepping_down(work, handover, AfterStepDown::Stop)
            }
            TermEnd::Resigned(sit_out) => {
                self.report.stopped_leading("resigned", &token);
                stepping_down(work, Handover::Release, AfterStepDown::SitOut(sit_out))
            }
            TermEnd::DeadlineMissed => {
                self.lost(work, &token, "no successful renew within renew_deadline")
            }
            TermEnd::Taken(holder) => self.lost(
                work,
                &token,
                &format!("the Lease is now held by {holder:?}"),
            ),
            TermEnd::Twin => self.lost(
                work,
                &token,
                "another process renews the Lease under this identity (identities must be unique)",
            ),
        }
    }

    /// The Lease is lost: nothing to hand over, back to following, with the
    /// term's work still winding down.
    fn lost(&mut self, work: WorkDone, token: &CancellationToken, why: &str) -> Phase {
        self.report.stopped_leading(why, token);
        self.report.kube_event(ElectionEvent::StoppedLeading);
        Phase::Following {
            sit_out_until: None,
            winding_down: work,
        }
    }

    /// Waits for the leader's work to stop, then hands the Lease over.
    async fn step_down(
        &mut self,
        work: WorkDone,
        handover: Handover,
        next: AfterStepDown,
    ) -> Phase {
        work.stopped().await;
        if let Handover::Release = handover {
            self.release().await;
        }
        // Awaited, since the process may exit right after a shutdown.
        let _ = self.report.kube_event(ElectionEvent::StoppedLeading).await;
        match next {
            AfterStepDown::SitOut(sit_out) => Phase::Following {
                sit_out_until: Some(Instant::now() + sit_out),
                winding_down: WorkDone::none(),
            },
            AfterStepDown::Stop => Phase::Stopped,
        }
    }

    /// Applies news from the watch.
    fn apply(&mut self, change: Change) -> Heard {
        match change {
            Change::WatchStarted => {
                self.report.request(Verb::Watch);
                Heard::WatchStarted
            }
            Change::Applied(lease) => {
                let version = lease.metadata.resource_version.as_deref();
                tracing::debug!(?version, "watch: Lease applied");
                if !self.known.is_stale(version) {
                    self.observe(Some(*lease));
                }
                Heard::LeaseState
            }
            Change::Deleted(version) => {
                tracing::debug!(?version, "watch: Lease absent");
                if !self.known.is_stale(version.as_deref()) {
                    self.observe(None);
                }
                Heard::LeaseState
            }
        }
    }
}

/// What a piece of watch news carried.
enum Heard {
    /// Only that the watch (re)started.
    WatchStarted,
    /// A state of the Lease (possibly stale, then ignored).
    LeaseState,
}
