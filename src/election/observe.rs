//! What this candidate knows about the Lease, updated by pure steps: the
//! current instant and what the server said go in, what changed comes out.

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use super::record::{self, Observation};

/// The last observation and the holder last reported to the outside.
#[derive(Debug, Default)]
pub(super) struct Knowledge {
    latest: Option<Observation>,
    reported_holder: Option<String>,
}

/// What one observation changed, for the reporting side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    /// The holder as shown outside: `""` when released, never held or deleted.
    pub holder: String,
    /// leaseTransitions of the record.
    pub transitions: i32,
    /// Whether `holder` differs from the one reported before.
    pub holder_changed: bool,
}

impl Knowledge {
    /// The last observation; `None` before the Lease was first read.
    pub fn latest(&self) -> Option<&Observation> {
        self.latest.as_ref()
    }

    /// The holder in the last record seen (`""` when none).
    pub fn holder(&self) -> &str {
        record::holder(self.latest.as_ref().and_then(|o| o.spec.as_ref()))
    }

    /// The fencing token of the last record seen.
    pub fn transitions(&self) -> i32 {
        record::transitions(self.latest.as_ref().and_then(|o| o.spec.as_ref()))
    }

    /// Whether watch news at `version` is older than what we hold already
    /// (an event queued before our own write's answer arrived).
    pub fn is_stale(&self, version: Option<&str>) -> bool {
        let current = self
            .latest
            .as_ref()
            .and_then(|o| o.lease.as_ref())
            .and_then(|l| l.metadata.resource_version.as_deref());
        current.is_some() && !record::is_newer(version, current)
    }

    /// Records what the server holds at `now` (`None`: no Lease); restarts the
    /// expiry clock only when the record itself changed.
    pub fn observe(&mut self, lease: Option<Lease>, now: Instant) -> Seen {
        let obs = next_observation(self.latest.take(), lease, now);
        let holder = if obs.lease.is_some() {
            record::holder(obs.spec.as_ref()).to_string()
        } else {
            String::new()
        };
        let transitions = record::transitions(obs.spec.as_ref());
        self.latest = Some(obs);
        let holder_changed = self.reported_holder.as_deref() != Some(holder.as_str());
        if holder_changed {
            self.reported_holder = Some(holder.clone());
        }
        Seen {
            holder,
            transitions,
            holder_changed,
        }
    }
}

fn next_observation(
    previous: Option<Observation>,
    lease: Option<Lease>,
    now: Instant,
) -> Observation {
    match (lease, previous) {
        (Some(lease), prev) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let seen_at = match &prev {
                Some(p) if p.spec.as_ref() == Some(&spec) => p.seen_at,
                _ => now,
            };
            Observation {
                lease: Some(lease),
                spec: Some(spec),
                seen_at,
            }
        }
        // Deleted: the last holder's term still runs out on its own clock.
        (None, Some(prev)) => Observation {
            lease: None,
            ..prev
        },
        (None, None) => Observation {
            lease: None,
            spec: None,
            seen_at: now,
        },
    }
}
