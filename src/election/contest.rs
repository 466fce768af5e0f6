//! How a follower contends for a takeable Lease without a herd.
//!
//! When a Lease is released or expires, every follower learns it at about the
//! same instant. If all of them wrote at once, all but one would get a
//! conflict and then read the Lease again: two requests per follower at the
//! moment an operator least wants load. So a follower
//!
//! - waits its turn before it writes, and writes nothing if the watch shows a
//!   new holder first. The turn is a fixed share of this follower's
//!   `Spread` (`spread.rs`), drawn from its identity;
//! - widens its spread when it loses a race: a conflict means another
//!   follower's turn came as early as its own, as seen by the API server.
//!   Twice as wide, and at least as wide as the time the winner's record
//!   took to arrive, counted from when the Lease became takeable.
//!   Among a few candidates the spread stays at `Spread::MIN` and a
//!   handover takes milliseconds; among a hundred on a busy server, the
//!   losers of the first handovers move back until the first writer is alone
//!   for longer than its record takes to reach the others' watches. A follower
//!   cannot count its rivals, but it can count its own lost races;
//! - after losing a race, waits for the watch to bring the winner's record
//!   instead of reading it, and reads only if the watch says nothing within
//!   [`Core::winner_due`].
//!
//! None of this changes what may be written: every write still carries the
//! resourceVersion it read, and expiry is still judged on the local clock.
//! The limit: a spread only narrows when its follower wins, so a follower
//! that lost races in a storm keeps a wider turn (at most
//! `Spread::max`) until it wins or restarts.

use std::time::Duration;

use tokio::time::Instant;

use super::requests::{Acquisition, Core};
use crate::backend::{BackendError, LeaseBackend};

/// Where a follower stands in one contest for the Lease.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Contest {
    /// Nothing pending: decide from what is known.
    #[default]
    Open,
    /// The Lease has been takeable since `since`; the write goes out at `at`
    /// unless the watch shows a holder first.
    Staggered { since: Instant, at: Instant },
    /// Lost a race against the record at resourceVersion `beaten`, which was
    /// takeable since `since`; the winner's record is due on the watch, else
    /// it is read at `read_at`.
    AwaitingWinner {
        beaten: Option<String>,
        since: Instant,
        read_at: Instant,
    },
}

/// What a follower does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Move {
    /// It holds the Lease now.
    Won,
    /// Nothing until this instant, or until the watch brings news.
    WaitUntil(Instant),
}

impl<B: LeaseBackend> Core<B> {
    /// One step of the contest: decide, and write only when it is this
    /// candidate's turn.
    pub async fn contend(&mut self, contest: &mut Contest) -> Result<Move, BackendError> {
        if let Some(wait) = self.await_winner(contest).await? {
            return Ok(wait);
        }
        if self.known.latest().is_none() {
            self.refresh().await?;
        }
        if let Some(expiry) = self.held_until() {
            *contest = Contest::Open;
            return Ok(Move::WaitUntil(expiry));
        }
        let now = Instant::now();
        match contest {
            Contest::Open => {
                let at = now + self.spread.turn(&self.config.identity);
                *contest = Contest::Staggered { since: now, at };
                return Ok(Move::WaitUntil(at));
            }
            Contest::Staggered { at, .. } if now < *at => return Ok(Move::WaitUntil(*at)),
            _ => {}
        }
        let since = match contest {
            Contest::Staggered { since, .. } => *since,
            _ => now,
        };
        *contest = Contest::Open;
        Ok(match self.try_acquire().await? {
            Acquisition::Acquired => {
                self.spread = self.spread.narrowed();
                Move::Won
            }
            Acquisition::HeldUntil(expiry) => Move::WaitUntil(expiry),
            Acquisition::Beaten => {
                self.spread = self.spread.widened(&self.config.timings);
                let read_at = now + self.winner_due();
                let beaten = self.known.version().map(str::to_owned);
                *contest = Contest::AwaitingWinner {
                    beaten,
                    since,
                    read_at,
                };
                Move::WaitUntil(read_at)
            }
        })
    }

    /// After a lost race: waits while the winner's record is due on the
    /// watch; once it came, widens the spread to cover the time it took; if
    /// it did not come in time, reads the Lease. `None`: decide afresh.
    async fn await_winner(&mut self, contest: &mut Contest) -> Result<Option<Move>, BackendError> {
        let Contest::AwaitingWinner {
            beaten,
            since,
            read_at,
        } = contest
        else {
            return Ok(None);
        };
        let no_news = self.known.version() == beaten.as_deref();
        if no_news && Instant::now() < *read_at {
            return Ok(Some(Move::WaitUntil(*read_at)));
        }
        let since = *since;
        *contest = Contest::Open;
        if no_news {
            tracing::debug!("the watch did not show the race's winner; reading the Lease");
            self.refresh().await?;
        } else {
            let waited = Instant::now() - since;
            self.spread = self.spread.covering(waited, &self.config.timings);
        }
        Ok(None)
    }

    /// How long a beaten follower waits for the watch to show the winner
    /// before it reads the Lease itself: retry_period. Nothing is urgent
    /// then: someone holds a fresh record, and a busy server is not asked
    /// again while its watch events are on their way.
    pub(super) fn winner_due(&self) -> Duration {
        self.config.timings.retry_period
    }
}
