//! How a follower contends for a takeable Lease without a herd.
//!
//! When a Lease is released or expires, every follower learns it at about the
//! same instant. If all of them wrote at once, all but one would get a
//! conflict and then read the Lease again: two requests per follower at the
//! moment an operator least wants load. So a follower
//!
//! - waits its turn before it writes, and writes nothing if the watch shows a
//!   new holder first. The turn is a fixed share of this follower's
//!   [`Spread`], drawn from its identity ([`share`]);
//! - widens its spread when it loses a race: a conflict means another
//!   follower's turn came as early as its own, as seen by the API server.
//!   Twice as wide, and at least as wide as the time the winner's record
//!   took to arrive, counted from when the Lease became takeable.
//!   Among a few candidates the spread stays at [`Spread::MIN`] and a
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
//! [`Spread::max`]) until it wins or restarts.

use std::time::Duration;

use tokio::time::Instant;

use super::requests::{Acquisition, Core};
use super::settings::Timings;
use crate::backend::{BackendError, LeaseBackend};

/// This identity's share of the spread, in `[0, 1)`: a hash of the identity
/// mapped so that few identities draw a small share (the square root of a
/// uniform value). Among many candidates the first writer is then alone for
/// a while, long enough for the others to see its record; among few, the
/// first still writes early in the spread.
pub(super) fn share(identity: &str) -> f64 {
    // FNV-1a, then MurmurHash3's finalizer so that identities differing in
    // one last character spread too: stable across builds, unlike std's hasher.
    let fnv = identity.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut hash = fnv ^ (fnv >> 33);
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    let uniform = (hash >> 11) as f64 / (1u64 << 53) as f64;
    uniform.sqrt()
}

/// How widely this follower's turn is set: its turn comes at
/// `share(identity) × spread` after it finds the Lease takeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Spread(Duration);

impl Default for Spread {
    fn default() -> Self {
        Spread(Self::MIN)
    }
}

impl Spread {
    /// Where every follower starts, and the narrowest spread.
    pub const MIN: Duration = Duration::from_millis(10);

    /// The widest spread: a quarter of retry_period, so that no turn makes a
    /// handover slower than client-go's followers, which poll every
    /// retry_period or later.
    pub fn max(timings: &Timings) -> Duration {
        (timings.retry_period / 4).max(Self::MIN)
    }

    /// How wide it is now.
    pub fn width(self) -> Duration {
        self.0
    }

    /// This follower's turn, in whole milliseconds (tokio's timer resolution).
    pub fn turn(self, identity: &str) -> Duration {
        Duration::from_millis((self.width().as_millis() as f64 * share(identity)) as u64)
    }

    /// After a lost race: twice as wide, up to [`Spread::max`].
    pub fn widened(self, timings: &Timings) -> Self {
        Spread((self.0 * 2).min(Self::max(timings)))
    }

    /// Once a lost race's winner has reached this follower's watch, `waited`
    /// after the Lease became takeable: at least that wide (up to
    /// [`Spread::max`]), since every write sent before the winner's record
    /// arrives is a conflict. A herd slows the server, so at the first lost
    /// race this moves a follower far enough back at once.
    pub fn covering(self, waited: Duration, timings: &Timings) -> Self {
        Spread(self.0.max(waited).min(Self::max(timings)))
    }

    /// After a won race: half as wide, down to [`Spread::MIN`].
    pub fn narrowed(self) -> Self {
        Spread((self.0 / 2).max(Self::MIN))
    }
}

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
        if let Contest::AwaitingWinner {
            beaten,
            since,
            read_at,
        } = contest
        {
            let no_news = self.known.version() == beaten.as_deref();
            if no_news && Instant::now() < *read_at {
                return Ok(Move::WaitUntil(*read_at));
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

    /// How long a beaten follower waits for the watch to show the winner
    /// before it reads the Lease itself: retry_period. Nothing is urgent
    /// then: someone holds a fresh record, and a busy server is not asked
    /// again while its watch events are on their way.
    pub(super) fn winner_due(&self) -> Duration {
        self.config.timings.retry_period
    }
}
