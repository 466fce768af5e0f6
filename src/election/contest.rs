//! How a follower contends for a takeable Lease without a herd.
//!
//! When a Lease is released or expires, every follower learns it at about the
//! same instant. If all of them wrote at once, all but one would get a
//! conflict and then read the Lease again: two requests per follower at the
//! moment an operator least wants load. So a follower
//!
//! - waits a small delay fixed by its identity ([`stagger`]) before it writes,
//!   and writes nothing if the watch shows a new holder first;
//! - after losing a race (a conflict), waits for the watch to bring the
//!   winner's record instead of reading it, and reads only if the watch says
//!   nothing within [`Core::winner_due`].
//!
//! Neither changes what may be written: every write still carries the
//! resourceVersion it read, and expiry is still judged on the local clock.

use std::time::Duration;

use tokio::time::Instant;

use super::requests::{Acquisition, Core};
use crate::backend::{BackendError, LeaseBackend};

/// The longest stagger: the largest delay a follower adds before it writes.
pub(super) const MAX_STAGGER: Duration = Duration::from_millis(10);

/// This identity's delay before it writes to a takeable Lease, in whole
/// milliseconds (tokio's timer resolution) in `[0, MAX_STAGGER)`: a hash of
/// the identity mapped so that few identities draw a short delay (the square
/// root of a uniform value). Among many
/// candidates the first writer is alone for a few ms, long enough for the
/// others to see its record; among few, the first still writes within
/// `MAX_STAGGER`.
pub(super) fn stagger(identity: &str) -> Duration {
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
    let max_ms = MAX_STAGGER.as_millis() as f64;
    Duration::from_millis((max_ms * uniform.sqrt()) as u64)
}

/// Where a follower stands in one contest for the Lease.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Contest {
    /// Nothing pending: decide from what is known.
    #[default]
    Open,
    /// The Lease is takeable; the write goes out at `at` unless the watch
    /// shows a holder first.
    Staggered { at: Instant },
    /// Lost a race against the record at resourceVersion `beaten`; the
    /// winner's record is due on the watch, else it is read at `read_at`.
    AwaitingWinner {
        beaten: Option<String>,
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
        if let Contest::AwaitingWinner { beaten, read_at } = contest {
            let no_news = self.known.version() == beaten.as_deref();
            if no_news && Instant::now() < *read_at {
                return Ok(Move::WaitUntil(*read_at));
            }
            *contest = Contest::Open;
            if no_news {
                tracing::debug!("the watch did not show the race's winner; reading the Lease");
                self.refresh().await?;
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
                let at = now + stagger(&self.config.identity);
                *contest = Contest::Staggered { at };
                return Ok(Move::WaitUntil(at));
            }
            Contest::Staggered { at } if now < *at => return Ok(Move::WaitUntil(*at)),
            _ => {}
        }
        *contest = Contest::Open;
        Ok(match self.try_acquire().await? {
            Acquisition::Acquired => Move::Won,
            Acquisition::HeldUntil(expiry) => Move::WaitUntil(expiry),
            Acquisition::Beaten => {
                let read_at = now + self.winner_due();
                let beaten = self.known.version().map(str::to_owned);
                *contest = Contest::AwaitingWinner { beaten, read_at };
                Move::WaitUntil(read_at)
            }
        })
    }

    /// How long a beaten follower waits for the watch to show the winner
    /// before it reads the Lease itself: a quarter of retry_period.
    pub(super) fn winner_due(&self) -> Duration {
        self.config.timings.retry_period / 4
    }
}
