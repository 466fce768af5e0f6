//! The pause between two list+watch cycles of the Lease watch.
//!
//! Two failure modes pull in opposite directions. After an API server outage
//! the followers must find the server again quickly, or they miss a release
//! and only take over when their expiry timer fires (seen: a 4.9 s handover
//! instead of milliseconds, right after a restart, while the watch sat out a
//! 10 s backoff). But a server that accepts the list and then closes or
//! refuses the watch at once (RBAC granting list but not watch, a proxy that
//! cuts long requests) must not turn the loop into a hot one.
//!
//! So the two are counted apart: failed lists back off among themselves and
//! are forgiven by the next successful list; watches that end quickly back
//! off among themselves and are forgiven only by a watch that stayed up.

use std::time::Duration;

/// How one list+watch cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// The list request failed: the server may be down.
    ListFailed,
    /// The list succeeded and the watch then ended (closed or failed) after
    /// `lasted`.
    WatchEnded {
        /// How long the watch stayed open.
        lasted: Duration,
    },
}

/// Backoff state of one Lease watch.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    list: Duration,
    watch: Duration,
    limit: Duration,
}

impl WatchBackoff {
    /// The first pause after a failure (or `limit`, if that is shorter).
    pub const MIN: Duration = Duration::from_millis(200);
    /// The default limit on any pause.
    pub const DEFAULT_LIMIT: Duration = Duration::from_secs(5);
    /// A watch open at least this long was healthy: no pause after it.
    pub const HEALTHY: Duration = Duration::from_secs(2);

    /// No pause will exceed `limit`, so a recovered server is found within it.
    pub fn new(limit: Duration) -> Self {
        let first = Self::MIN.min(limit);
        WatchBackoff {
            list: first,
            watch: first,
            limit,
        }
    }

    /// The pause before the next cycle, given how this one ended.
    pub fn after(&mut self, cycle: Cycle) -> Duration {
        match cycle {
            Cycle::ListFailed => grow(&mut self.list, self.limit),
            Cycle::WatchEnded { lasted } => {
                self.list = Self::MIN.min(self.limit);
                if lasted >= Self::HEALTHY {
                    self.watch = Self::MIN.min(self.limit);
                    Duration::ZERO
                } else {
                    grow(&mut self.watch, self.limit)
                }
            }
        }
    }
}

/// Returns `current` and doubles it, up to `limit`.
fn grow(current: &mut Duration, limit: Duration) -> Duration {
    let pause = *current;
    *current = (*current * 2).min(limit);
    pause
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn failed_lists_back_off_doubling_up_to_five_seconds() {
        let mut b = WatchBackoff::new(WatchBackoff::DEFAULT_LIMIT);
        let pauses: Vec<_> = (0..7).map(|_| b.after(Cycle::ListFailed)).collect();
        assert_eq!(
            pauses,
            [
                MS(200),
                MS(400),
                MS(800),
                MS(1600),
                MS(3200),
                MS(5000),
                MS(5000)
            ]
        );
    }

    #[test]
    fn no_pause_exceeds_the_limit_the_daemon_sets_to_retry_period() {
        let mut b = WatchBackoff::new(MS(1000));
        let pauses: Vec<_> = (0..5).map(|_| b.after(Cycle::ListFailed)).collect();
        assert_eq!(pauses, [MS(200), MS(400), MS(800), MS(1000), MS(1000)]);
        let mut tiny = WatchBackoff::new(MS(50));
        assert_eq!(tiny.after(Cycle::WatchEnded { lasted: MS(1) }), MS(50));
    }

    #[test]
    fn a_successful_list_after_an_outage_forgives_the_list_backoff() {
        let mut b = WatchBackoff::new(WatchBackoff::DEFAULT_LIMIT);
        for _ in 0..6 {
            b.after(Cycle::ListFailed);
        }
        // The server is back but refuses the first watch (its authorizer is
        // still warming up): the next attempt comes quickly.
        assert_eq!(b.after(Cycle::WatchEnded { lasted: MS(5) }), MS(200));
        assert_eq!(b.after(Cycle::ListFailed), MS(200));
    }

    #[test]
    fn a_watch_that_the_server_closes_at_once_never_loops_without_a_pause() {
        let mut b = WatchBackoff::new(WatchBackoff::DEFAULT_LIMIT);
        let pauses: Vec<_> = (0..4)
            .map(|_| b.after(Cycle::WatchEnded { lasted: MS(1) }))
            .collect();
        assert_eq!(pauses, [MS(200), MS(400), MS(800), MS(1600)]);
    }

    #[test]
    fn a_watch_that_stayed_up_is_followed_at_once_and_forgives_the_watch_backoff() {
        let mut b = WatchBackoff::new(WatchBackoff::DEFAULT_LIMIT);
        b.after(Cycle::WatchEnded { lasted: MS(1) });
        b.after(Cycle::WatchEnded { lasted: MS(1) });
        let healthy = Cycle::WatchEnded {
            lasted: Duration::from_secs(240),
        };
        assert_eq!(b.after(healthy), Duration::ZERO);
        assert_eq!(b.after(Cycle::WatchEnded { lasted: MS(1) }), MS(200));
    }
}
