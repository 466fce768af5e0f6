//! The quiet-watch rule: a follower's watch that has gone quiet while a
//! holder is set is checked with a read, and restarted if it missed news.
//!
//! A connection can die without a word (lost NAT/conntrack or load-balancer
//! state: no FIN, no RST). A watch on it delivers nothing, and nothing says
//! it is dead; the follower would miss the leader's release and act only at
//! its expiry timer, lease_duration later. But while the Lease names a
//! holder, that holder writes every retry_period, so a healthy watch brings
//! news at least that often. No news for [`quiet_bound`] is suspect: one GET
//! tells a silent leader (a crashed one: nothing newer, the watch is fine)
//! from a dead watch (a newer record: apply it, and watch again on a new
//! request). The GET does not depend on the watch's connection: requests
//! get a connection of their own, and a dead one fails by request_timeout.

use std::cmp::Ordering;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::record;
use super::report::Verb;
use super::requests::Core;
use super::settings::Timings;
use crate::backend::{BackendError, Change, LeaseBackend};

/// How long a watch may stay quiet, while someone holds the Lease, before it
/// is checked: 2 × retry_period (a healthy holder writes every retry_period,
/// so this allows one renew that failed or came late), but at most
/// lease_duration / 2, so that the check (bounded by request_timeout) and a
/// restarted watch come well before the holder's term could have expired.
pub fn quiet_bound(t: &Timings) -> Duration {
    (2 * t.retry_period).min(t.lease_duration / 2)
}

/// The Lease watch, and what it delivered when.
pub(super) struct Watch {
    changes: mpsc::UnboundedReceiver<Change>,
    /// When it last delivered anything or was started.
    last_news: Instant,
    delivered: Delivered,
    /// A check found nothing missed since the last news: the holder is
    /// silent (crashed, or stopped renewing), so checking again would only
    /// cost every follower a read per quiet bound until expiry.
    sound: bool,
}

/// The last state of the Lease a watch delivered.
enum Delivered {
    Nothing,
    Present(Option<String>),
    Absent,
}

impl Watch {
    pub fn start(backend: &impl LeaseBackend) -> Self {
        Watch {
            changes: backend.watch(),
            last_news: Instant::now(),
            delivered: Delivered::Nothing,
            sound: false,
        }
    }

    /// The next piece of news; `None` when the backend stopped watching.
    pub async fn next(&mut self) -> Option<Change> {
        let change = self.changes.recv().await?;
        self.last_news = Instant::now();
        self.sound = false;
        match &change {
            Change::Applied(lease) => {
                self.delivered = Delivered::Present(lease.metadata.resource_version.clone());
            }
            Change::Deleted(_) => self.delivered = Delivered::Absent,
            Change::WatchStarted => {}
        }
        Some(change)
    }

    /// When the watch counts as quiet, if nothing arrives before.
    pub fn quiet_at(&self, t: &Timings) -> Instant {
        self.last_news + quiet_bound(t)
    }

    /// Whether a check is still due: once per piece of news at most.
    pub fn unchecked(&self) -> bool {
        !self.sound
    }

    /// Whether `current`, read from the server, is news this watch missed.
    fn missed(&self, current: Option<&Lease>) -> bool {
        match (current, &self.delivered) {
            (Some(lease), Delivered::Present(version)) => !matches!(
                record::version_order(
                    lease.metadata.resource_version.as_deref(),
                    version.as_deref()
                ),
                Some(Ordering::Less | Ordering::Equal)
            ),
            (None, Delivered::Absent) => false,
            _ => true,
        }
    }

    /// Drops this watch (the backend stops it) and starts another.
    fn restart(&mut self, backend: &impl LeaseBackend) {
        *self = Watch::start(backend);
    }
}

impl<B: LeaseBackend> Core<B> {
    /// Whether a watch quiet by now is worth a check: only while someone
    /// else holds the Lease (a free Lease is taken without waiting for news).
    pub(super) fn expects_news(&self) -> bool {
        let holder = self.known.holder();
        !holder.is_empty() && holder != self.config.identity
    }

    /// Checks a quiet watch with one GET: news it missed is applied and the
    /// watch restarted; so is a watch whose check failed, since its
    /// connection is suspect too. The check never holds anything up: it is
    /// given up at shutdown, at `until` (the follower's next timer: expiry,
    /// or the end of a pause) and when the watch speaks after all; that news
    /// is returned, for the caller to apply.
    pub(super) async fn check_quiet_watch(
        &mut self,
        watch: &mut Watch,
        until: Instant,
        shutdown: &CancellationToken,
    ) -> Option<Change> {
        self.report.request(Verb::Get);
        let limit = self.config.timings.request_timeout();
        let read = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            _ = sleep_until(until) => return None,
            Some(change) = watch.next() => return Some(change),
            r = timeout(limit, self.backend.get()) => r.unwrap_or(Err(BackendError::Timeout(limit))),
        };
        match read {
            Ok(current) if watch.missed(current.as_ref()) => {
                let version = current
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.clone());
                warn!(lease = %self.config.lease, identity = %self.config.identity, ?version,
                    "the Lease watch went quiet and missed news; watching again");
                if !self.known.is_stale(version.as_deref()) {
                    self.observe(current);
                }
                watch.restart(&*self.backend);
            }
            Ok(_) => {
                debug!("the Lease watch is quiet, but nothing was missed");
                watch.sound = true;
            }
            Err(e) => {
                self.report
                    .failure("watch check", &e, "watching the Lease again");
                watch.restart(&*self.backend);
            }
        }
        None
    }
}
