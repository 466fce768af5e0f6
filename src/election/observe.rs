//! What this candidate knows about the Lease, updated by pure steps: the
//! current instant and what the server said go in, what changed comes out.

use std::collections::VecDeque;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::time::Instant;

use super::record::{self, Observation};

/// How many of our own renewTimes are remembered: enough for the writes
/// whose answers may still be on their way.
const OWN_WRITES_KEPT: usize = 16;

/// How many resourceVersions seen recently are remembered, to recognise
/// stale watch news when versions are not integers.
const VERSIONS_KEPT: usize = 16;

/// The last observation, the holder last reported to the outside, and which
/// records this process wrote itself.
#[derive(Debug, Default)]
pub(super) struct Knowledge {
    me: String,
    latest: Option<Observation>,
    reported_holder: Option<String>,
    /// renewTimes of our newest writes, answered or not (an answer lost on
    /// the way does not make our own record look foreign). Every write sets
    /// a fresh renewTime with microsecond precision, so a twin's differ.
    own_renew_times: VecDeque<MicroTime>,
    /// resourceVersions of the newest records seen (from any source).
    recent_versions: VecDeque<String>,
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
    /// A record naming us changed, and we did not write it: another live
    /// process renews under our identity.
    pub twin_renewed: bool,
}

impl Knowledge {
    /// Knowledge of candidate `me`, before the Lease was read.
    pub fn new(me: &str) -> Self {
        Knowledge {
            me: me.to_string(),
            ..Knowledge::default()
        }
    }

    /// Notes a record this process is about to write.
    pub fn sending(&mut self, spec: &LeaseSpec) {
        if let Some(t) = &spec.renew_time {
            if self.own_renew_times.len() == OWN_WRITES_KEPT {
                self.own_renew_times.pop_front();
            }
            self.own_renew_times.push_back(t.clone());
        }
    }

    /// Whether `spec` is a record this process wrote.
    pub fn written_by_us(&self, spec: Option<&LeaseSpec>) -> bool {
        spec.and_then(|s| s.renew_time.as_ref())
            .is_some_and(|t| self.own_renew_times.contains(t))
    }

    /// Whether the last record names us and this process wrote it: only then
    /// is it ours to renew or release.
    pub fn holds_our_record(&self) -> bool {
        let spec = self.latest.as_ref().and_then(|o| o.spec.as_ref());
        record::holder(spec) == self.me && self.written_by_us(spec)
    }

    /// The last observation; `None` before the Lease was first read.
    pub fn latest(&self) -> Option<&Observation> {
        self.latest.as_ref()
    }

    /// The resourceVersion of the last object seen (`None` before the first
    /// read, or when the Lease was absent).
    pub fn version(&self) -> Option<&str> {
        self.latest
            .as_ref()
            .and_then(|o| o.lease.as_ref())
            .and_then(|l| l.metadata.resource_version.as_deref())
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
    /// (an event queued before our own write's answer arrived, or a copy).
    ///
    /// Integer versions (etcd's) are ordered. Opaque ones are not: news is
    /// then stale when its version is one we saw recently, from the watch,
    /// a read or a write's answer. (An older version we never saw cannot be
    /// told from a newer one; taking it as new only restarts a follower's
    /// expiry clock, which delays a takeover, and a leader's next renew
    /// settles who holds the Lease.) News without a version counts as new.
    pub fn is_stale(&self, version: Option<&str>) -> bool {
        let current = self.version();
        let (Some(version), Some(_)) = (version, current) else {
            return false;
        };
        match record::version_order(Some(version), current) {
            Some(order) => order.is_le(),
            None => self.recent_versions.iter().any(|v| v == version),
        }
    }

    /// Records what the server holds at `now` (`None`: no Lease); restarts the
    /// expiry clock only when the record itself changed.
    pub fn observe(&mut self, lease: Option<Lease>, now: Instant) -> Seen {
        let had_record = self.latest.as_ref().is_some_and(|o| o.spec.is_some());
        if let Some(v) = lease
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone())
        {
            if self.recent_versions.len() == VERSIONS_KEPT {
                self.recent_versions.pop_front();
            }
            self.recent_versions.push_back(v);
        }
        let obs = next_observation(self.latest.take(), lease, now);
        let changed = obs.seen_at == now;
        let names_us = record::holder(obs.spec.as_ref()) == self.me;
        let twin_renewed =
            had_record && changed && names_us && !self.written_by_us(obs.spec.as_ref());
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
            twin_renewed,
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use tokio::time::Instant;

    use super::Knowledge;

    fn lease(version: &str, holder: &str) -> Lease {
        let mut l = Lease::default();
        l.metadata.resource_version = Some(version.into());
        l.spec = Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            ..LeaseSpec::default()
        });
        l
    }

    #[test]
    fn stale_watch_news_with_opaque_versions_is_recognised_by_a_version_seen_before() {
        let mut k = Knowledge::new("me");
        k.observe(Some(lease("rv-b", "a")), Instant::now());
        k.observe(Some(lease("rv-a", "b")), Instant::now());
        assert!(k.is_stale(Some("rv-b")), "a copy of the previous state");
        assert!(k.is_stale(Some("rv-a")), "the current state again");
        assert!(!k.is_stale(Some("rv-c")), "a version never seen is news");
        assert!(!k.is_stale(None), "news without a version is news");
    }

    #[test]
    fn integer_versions_are_ordered() {
        let mut k = Knowledge::new("me");
        k.observe(Some(lease("10", "a")), Instant::now());
        assert!(k.is_stale(Some("9")), "older, never seen");
        assert!(k.is_stale(Some("10")));
        assert!(!k.is_stale(Some("11")));
    }
}
