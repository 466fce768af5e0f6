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
#[derive(Debug)]
pub struct Leadership {
    /// Cancelled when leadership ends (deadline missed, Lease taken, shutdown).
    pub token: CancellationToken,
    /// The Lease's leaseTransitions at acquisition; grows with every new holder.
    pub fencing_token: i32,
    pub(super) _work: mpsc::Sender<()>,
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

/// Asks a leading [`Elector`] to give the Lease up and sit out for a while
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
