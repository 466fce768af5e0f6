//! What an application gets from an elector: its receivers, the leadership
//! it may act on, the events and the status.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a leader may do while it leads.
///
/// `token` is cancelled the moment this candidate stops acting as leader, which
/// happens before any other candidate can take the Lease. Drop the value once
/// the leader's work has really stopped: a release on shutdown waits for it.
///
/// A token is only checked when someone polls it, and it is cancelled only
/// when the elector's task runs: a process that is stalled (stopped, swapping,
/// blocked on a write) cannot cancel it in time. Check [`valid_until`] before
/// acting: past that instant another candidate may lead.
///
/// [`valid_until`]: Leadership::valid_until
#[derive(Debug)]
pub struct Leadership {
    /// Cancelled when leadership ends (deadline missed, Lease taken, shutdown).
    pub token: CancellationToken,
    /// The Lease's leaseTransitions at acquisition; grows with every new holder.
    pub fencing_token: i32,
    pub(super) valid: watch::Receiver<Instant>,
    pub(super) _work: mpsc::Sender<()>,
}

impl Leadership {
    /// A leadership not tied to any elector: nothing waits for it to be
    /// dropped, and it stays valid until its token is cancelled. For tests
    /// and for driving a supervisor by hand.
    pub fn detached(token: CancellationToken, fencing_token: i32) -> Self {
        let (_, valid) = watch::channel(Instant::now() + FOREVER);
        Self::detached_until(token, fencing_token, valid)
    }

    /// A detached leadership whose validity follows `valid` (tests).
    pub fn detached_until(
        token: CancellationToken,
        fencing_token: i32,
        valid: watch::Receiver<Instant>,
    ) -> Self {
        let (work, _) = mpsc::channel(1);
        Leadership {
            token,
            fencing_token,
            valid,
            _work: work,
        }
    }

    /// The instant (on this process's monotonic clock) until which no other
    /// candidate can have taken the Lease: the send instant of the last
    /// successful renew plus lease_duration, minus the clock-rate margin
    /// ([`Timings::validity`](super::Timings::validity)). It moves forward
    /// with every successful renew and never past it once leadership ended.
    pub fn valid_until(&self) -> Instant {
        *self.valid.borrow()
    }

    /// A live view of [`valid_until`](Leadership::valid_until), to wait on
    /// its changes (the supervisor and its watchdog follow it).
    pub fn validity(&self) -> watch::Receiver<Instant> {
        self.valid.clone()
    }
}

/// Far enough in the future to mean "no limit" and still add to an Instant.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Notifications from an [`Elector`](super::Elector), in order.
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
    /// The current term's fencing token ([`Leadership::fencing_token`]) while
    /// leading, `None` otherwise.
    pub fencing_token: Option<i32>,
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

/// Asks a leading [`Elector`](super::Elector) to give the Lease up and sit out for a while
/// (`lease-elector run` uses it when its child exits by itself).
#[derive(Debug, Clone)]
pub struct Resigner(mpsc::UnboundedSender<Duration>);

impl Resigner {
    pub(super) fn new(tx: mpsc::UnboundedSender<Duration>) -> Self {
        Resigner(tx)
    }

    /// Stop leading, release the Lease, and make no attempt to take it for
    /// `sit_out`, giving the other candidates the first chance. Ignored when
    /// not leading.
    pub fn resign(&self, sit_out: Duration) {
        let _ = self.0.send(sit_out);
    }
}

/// The receivers of one [`Elector`](super::Elector), handed out when it is built.
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
