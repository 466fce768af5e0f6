//! `GET /leader/stream`: the candidate's leader state as Server-Sent Events
//! (the event schema is in docs/sidecar.md).
//!
//! Each client is driven by its own clones of the status (and child) watch
//! receivers. A watch never blocks its sender and keeps only the latest
//! value, so a slow client cannot stall the election: it holds at most one
//! state not yet sent, and when it is too slow to see every change it skips
//! straight to the latest state.

use std::convert::Infallible;
use std::time::Duration;

use futures::Stream;
use hyper::body::{Bytes, Frame};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::election::Status;
use crate::supervise::ChildStatus;

/// A comment line is sent after this long without an event, so proxies and
/// load balancers do not cut an idle stream.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// How long a client waits before reconnecting (the SSE `retry:` field), ms.
const RETRY_MS: u64 = 1000;

/// The comment sent on a quiet stream.
const KEEPALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

/// One event's data: everything a sidecar needs, and nothing that changes
/// on every renew.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Snapshot {
    identity: String,
    lease: String,
    namespace: String,
    is_leader: bool,
    holder: Option<String>,
    fencing_token: Option<i32>,
    lease_transitions: i32,
    observed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    child: Option<serde_json::Value>,
}

/// The event name: what changed since the last event the client got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The first event, or a change of nothing below (e.g. `observed`).
    State,
    /// This candidate leads now (or leads a new term: a new fencing token).
    StartedLeading,
    /// This candidate no longer leads.
    StoppedLeading,
    /// The observed holder changed.
    LeaderChanged,
    /// The supervised child changed (run mode).
    Child,
}

impl Kind {
    fn between(before: Option<&Snapshot>, now: &Snapshot) -> Kind {
        let Some(before) = before else {
            return Kind::State;
        };
        let new_term = before.fencing_token != now.fencing_token;
        match (before.is_leader, now.is_leader) {
            (true, false) => Kind::StoppedLeading,
            (false, true) => Kind::StartedLeading,
            (true, true) if new_term => Kind::StartedLeading,
            _ if before.holder != now.holder => Kind::LeaderChanged,
            _ if before.child != now.child => Kind::Child,
            _ => Kind::State,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::State => "state",
            Kind::StartedLeading => "started_leading",
            Kind::StoppedLeading => "stopped_leading",
            Kind::LeaderChanged => "leader_changed",
            Kind::Child => "child",
        }
    }
}

/// One client's stream, read from the candidate's watch receivers.
pub struct Feed {
    status: watch::Receiver<Status>,
    child: Option<watch::Receiver<ChildStatus>>,
    sent: Option<Snapshot>,
    seq: u64,
    quiet_until: Instant,
    stop: CancellationToken,
    ended: bool,
}

impl Feed {
    /// A stream that starts with the current state and ends when the elector
    /// is gone or `stop` (the server's shutdown) is cancelled.
    pub fn new(
        status: watch::Receiver<Status>,
        child: Option<watch::Receiver<ChildStatus>>,
        stop: CancellationToken,
    ) -> Self {
        Feed {
            status,
            child,
            sent: None,
            seq: 0,
            quiet_until: Instant::now() + KEEPALIVE,
            stop,
            ended: false,
        }
    }

    /// The next chunk to send: an event when the state differs from the last
    /// one sent, a keep-alive comment after [`KEEPALIVE`] without one, `None`
    /// once the elector is gone (or the server stops) and its last state was sent.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            let now = self.snapshot();
            if self.sent.as_ref() != Some(&now) {
                return Some(self.event(now));
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                changed = self.status.changed() => self.ended = changed.is_err(),
                () = self.stop.cancelled() => self.ended = true,
                () = child_changed(&mut self.child) => {}
                () = sleep_until(self.quiet_until) => {
                    self.quiet_until = Instant::now() + KEEPALIVE;
                    return Some(Bytes::from_static(KEEPALIVE_COMMENT));
                }
            }
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let child = self.child.as_mut().map(|c| {
            serde_json::to_value(&*c.borrow_and_update()).expect("a child status serialises")
        });
        let s = self.status.borrow_and_update();
        Snapshot {
            identity: s.identity.clone(),
            lease: s.lease.clone(),
            namespace: s.namespace.clone(),
            is_leader: s.is_leader,
            holder: s.holder.clone(),
            fencing_token: s.fencing_token,
            lease_transitions: s.lease_transitions,
            observed: s.observed,
            child,
        }
    }

    fn event(&mut self, now: Snapshot) -> Bytes {
        let kind = Kind::between(self.sent.as_ref(), &now);
        self.seq += 1;
        let retry = if self.seq == 1 {
            format!("retry: {RETRY_MS}\n")
        } else {
            String::new()
        };
        // serde_json escapes newlines, so the data is one line.
        let data = serde_json::to_string(&now).expect("a snapshot serialises");
        self.sent = Some(now);
        self.quiet_until = Instant::now() + KEEPALIVE;
        let (seq, name) = (self.seq, kind.name());
        Bytes::from(format!("{retry}id: {seq}\nevent: {name}\ndata: {data}\n\n"))
    }
}

/// Returns when the child changed; never when there is no child (any more).
async fn child_changed(child: &mut Option<watch::Receiver<ChildStatus>>) {
    if let Some(rx) = child
        && rx.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// The response body: the feed's chunks as they come.
pub fn body(feed: Feed) -> impl Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    futures::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((Ok(Frame::data(chunk)), feed))
    })
}

#[cfg(test)]
mod tests;
