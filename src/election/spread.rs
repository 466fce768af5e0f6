//! A follower's turn at a takeable Lease: a share of its spread fixed by its
//! identity, and a spread that learns from lost races (see `contest.rs`).

use std::time::Duration;

use super::settings::Timings;

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
