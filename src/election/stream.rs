//! Leader changes as a [`Stream`](futures::Stream), from an elector's status.

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use super::api::{Handles, Status};

/// Who leads, as one candidate sees it: an item of [`leader_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderChange {
    /// The holder observed now (`None` when the Lease is released or deleted).
    pub holder: Option<String>,
    /// Whether this candidate acts as leader.
    pub is_leader: bool,
    /// The Lease's leaseTransitions as observed: it grows with every new
    /// holder, so it orders the terms (the leader's
    /// [`Leadership::fencing_token`](super::Leadership::fencing_token)).
    pub fencing_token: i32,
}

impl LeaderChange {
    fn of(status: &Status) -> Self {
        LeaderChange {
            holder: status.holder.clone().filter(|h| !h.is_empty()),
            is_leader: status.is_leader,
            fencing_token: status.lease_transitions,
        }
    }
}

/// The leader changes seen in `status`, as a [`Stream`](futures::Stream): one item once the Lease has been read,
/// then one per change of holder, of our own leadership or of the fencing
/// token. Renewals alone yield nothing. The stream ends when the elector is
/// gone.
///
/// It follows a watch, so it yields the latest state: a change undone before
/// the stream is polled again is not seen. For every transition, with the
/// [`Leadership`](super::Leadership) to act on, read [`Handles::events`].
///
/// ```no_run
/// use futures::StreamExt;
/// use lease_elector::election::{Handles, leader_changes};
///
/// # async fn example(handles: Handles) {
/// let mut changes = leader_changes(handles.status.clone());
/// while let Some(change) = changes.next().await {
///     println!("leader: {:?} (us: {})", change.holder, change.is_leader);
/// }
/// # }
/// ```
pub fn leader_changes(status: watch::Receiver<Status>) -> BoxStream<'static, LeaderChange> {
    futures::stream::unfold((status, None), |(mut rx, last)| async move {
        loop {
            let now = {
                let status = rx.borrow_and_update();
                status.observed.then(|| LeaderChange::of(&status))
            };
            if let Some(now) = now
                && last.as_ref() != Some(&now)
            {
                return Some((now.clone(), (rx, Some(now))));
            }
            rx.changed().await.ok()?;
        }
    })
    .boxed()
}

impl Handles {
    /// [`leader_changes`] of this elector's status.
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use lease_elector::election::Handles;
    ///
    /// # async fn example(handles: Handles) {
    /// let mut changes = handles.leader_changes();
    /// if let Some(first) = changes.next().await {
    ///     println!("the Lease is held by {:?}", first.holder);
    /// }
    /// # }
    /// ```
    pub fn leader_changes(&self) -> BoxStream<'static, LeaderChange> {
        leader_changes(self.status.clone())
    }
}
