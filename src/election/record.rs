//! What the election reads from and writes into a Lease, as pure functions.
//!
//! The field rules are client-go's (`resourcelock.LeaseLock`): holderIdentity,
//! leaseDurationSeconds (whole seconds), acquireTime (set when the holder
//! changes), renewTime (set on every write), leaseTransitions (+1 whenever the
//! holder changes). MicroTime values are written with microsecond precision.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::time::Instant;

/// Now, truncated to the microseconds a MicroTime can carry.
pub fn micro_now() -> MicroTime {
    let now = jiff::Timestamp::now();
    MicroTime(jiff::Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now))
}

/// The holder recorded in `spec`; `""` for a released or never-held Lease.
pub fn holder(spec: Option<&LeaseSpec>) -> &str {
    spec.and_then(|s| s.holder_identity.as_deref())
        .unwrap_or("")
}

/// The fencing token of a record: leaseTransitions, which only grows.
pub fn transitions(spec: Option<&LeaseSpec>) -> i32 {
    spec.and_then(|s| s.lease_transitions).unwrap_or(0).max(0)
}

/// How long a record stays valid after it was seen. A missing or non-positive
/// leaseDurationSeconds (a Lease written by hand or by another tool) falls
/// back to our own configured duration: waiting longer is safe, taking over
/// early would not be.
pub fn validity(spec: Option<&LeaseSpec>, fallback: Duration) -> Duration {
    match spec.and_then(|s| s.lease_duration_seconds) {
        Some(secs) if secs > 0 => Duration::from_secs(secs as u64),
        _ => fallback,
    }
}

/// What this candidate last knew about the Lease.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The object as last read, with its resourceVersion; `None` once deleted.
    pub lease: Option<Lease>,
    /// The last record seen; kept when the object is deleted so that a
    /// deletion never shortens the previous holder's term.
    pub spec: Option<LeaseSpec>,
    /// When this process saw `spec` change, on its own monotonic clock.
    pub seen_at: Instant,
}

/// Whether this candidate may write the Lease now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Released, never held, ours already, or expired: try to write it.
    Takeable,
    /// Held by someone else until this local instant.
    HeldUntil(Instant),
}

/// Judges an observation on the local clock only: the record's renewTime is
/// never compared with our clock, so clock offsets between nodes cannot make
/// two candidates believe they lead.
///
/// A record that names `me` is ours to renew only if this process wrote it
/// (`written_by_us`). One it did not write comes from another process with the
/// same identity (a twin: a force-deleted Pod still running next to its
/// replacement), or from this process before a restart: it is treated like any
/// other holder's, takeable once it has not changed for its duration.
pub fn judge(
    obs: &Observation,
    me: &str,
    written_by_us: bool,
    now: Instant,
    fallback: Duration,
) -> Verdict {
    let spec = obs.spec.as_ref();
    let current = holder(spec);
    if current.is_empty() || (current == me && written_by_us) {
        return Verdict::Takeable;
    }
    let expires = obs.seen_at + validity(spec, fallback);
    if now >= expires {
        Verdict::Takeable
    } else {
        Verdict::HeldUntil(expires)
    }
}

/// The record this candidate writes to take (or re-take) the Lease.
pub fn acquired(previous: Option<&LeaseSpec>, me: &str, lease_duration: Duration) -> LeaseSpec {
    let now = micro_now();
    let mut spec = previous.cloned().unwrap_or_default();
    if holder(previous) == me {
        spec.lease_transitions = Some(transitions(previous));
        spec.acquire_time.get_or_insert_with(|| now.clone());
    } else {
        // Saturating: at i32::MAX (reachable only by a hand edit) the token
        // stops growing instead of wrapping negative, which the server refuses.
        spec.lease_transitions =
            Some(previous.map_or(0, |p| transitions(Some(p)).saturating_add(1)));
        spec.acquire_time = Some(now.clone());
    }
    spec.holder_identity = Some(me.to_string());
    spec.lease_duration_seconds = Some(whole_seconds(lease_duration));
    spec.renew_time = Some(now);
    // Fields of coordinated leader election: an uncoordinated candidate
    // clears them, as client-go's LeaseLock does.
    spec.strategy = None;
    spec.preferred_holder = None;
    spec
}

/// The record of a renew: renewTime moves, and the duration is ours again.
/// Writing our own duration on every write (as client-go does) undoes a hand
/// edit: a shorter one would let followers take over while we still lead.
pub fn renewed(previous: &LeaseSpec, lease_duration: Duration) -> LeaseSpec {
    LeaseSpec {
        renew_time: Some(micro_now()),
        lease_duration_seconds: Some(whole_seconds(lease_duration)),
        ..previous.clone()
    }
}

/// leaseDurationSeconds for `d`: whole seconds, at least 1.
fn whole_seconds(d: Duration) -> i32 {
    d.as_secs().clamp(1, i32::MAX as u64) as i32
}

/// The record of a release on shutdown, as client-go writes it: no holder and
/// a one-second duration, so anyone may take it at once.
pub fn released(previous: &LeaseSpec) -> LeaseSpec {
    let now = micro_now();
    LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        ..previous.clone()
    }
}

/// How resourceVersion `a` compares with `b`, when that can be known. They
/// are opaque strings; etcd-backed ones are integers, and only when both
/// parse as integers is an order trusted. `None`: unknown (a missing or
/// non-integer version); equal strings are always `Equal`.
pub fn version_order(a: Option<&str>, b: Option<&str>) -> Option<std::cmp::Ordering> {
    let (a, b) = (a?, b?);
    if a == b {
        return Some(std::cmp::Ordering::Equal);
    }
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => Some(a.cmp(&b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_transitions: Some(transitions),
            lease_duration_seconds: Some(6),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn taking_over_from_another_holder_counts_a_transition() {
        let s = acquired(Some(&spec("a", 4)), "b", Duration::from_secs(6));
        assert_eq!(s.holder_identity.as_deref(), Some("b"));
        assert_eq!(s.lease_transitions, Some(5));
        assert_eq!(s.lease_duration_seconds, Some(6));
        assert!(s.acquire_time.is_some() && s.renew_time.is_some());
    }

    #[test]
    fn reacquiring_under_the_same_identity_keeps_transitions_and_acquire_time() {
        let mut prev = spec("a", 4);
        prev.acquire_time = Some(MicroTime(jiff::Timestamp::UNIX_EPOCH));
        let s = acquired(Some(&prev), "a", Duration::from_secs(6));
        assert_eq!(s.lease_transitions, Some(4));
        assert_eq!(s.acquire_time, prev.acquire_time);
    }

    #[test]
    fn creating_a_lease_starts_at_zero_transitions() {
        let s = acquired(None, "a", Duration::from_secs(15));
        assert_eq!(s.lease_transitions, Some(0));
    }

    #[test]
    fn release_clears_the_holder_and_keeps_transitions() {
        let s = released(&spec("a", 3));
        assert_eq!(s.holder_identity.as_deref(), Some(""));
        assert_eq!(s.lease_duration_seconds, Some(1));
        assert_eq!(s.lease_transitions, Some(3));
    }

    #[test]
    fn micro_times_serialise_with_six_fractional_digits() {
        let json = serde_json::to_string(&micro_now()).unwrap();
        let frac = json.trim_matches('"').split('.').nth(1).unwrap();
        assert_eq!(frac.len(), 7, "{json}"); // six digits and the Z
    }

    #[test]
    fn a_renew_writes_our_own_lease_duration_over_a_hand_edit() {
        let mut edited = spec("a", 2);
        edited.lease_duration_seconds = Some(2);
        let s = renewed(&edited, Duration::from_secs(6));
        assert_eq!(s.lease_duration_seconds, Some(6));
        assert_eq!(s.lease_transitions, Some(2));
    }

    #[test]
    fn taking_over_at_the_largest_transition_count_does_not_overflow() {
        let s = acquired(Some(&spec("a", i32::MAX)), "b", Duration::from_secs(6));
        assert_eq!(s.lease_transitions, Some(i32::MAX));
    }

    #[test]
    fn acquiring_clears_a_coordinated_electors_strategy_and_preferred_holder() {
        let mut prev = spec("a", 1);
        prev.strategy = Some("OldestEmulationVersion".into());
        prev.preferred_holder = Some("c".into());
        let s = acquired(Some(&prev), "b", Duration::from_secs(6));
        assert_eq!(s.strategy, None);
        assert_eq!(s.preferred_holder, None);
    }

    #[test]
    fn non_positive_durations_fall_back_to_the_configured_one() {
        let fallback = Duration::from_secs(15);
        let mut s = spec("a", 0);
        s.lease_duration_seconds = Some(0);
        assert_eq!(validity(Some(&s), fallback), fallback);
        s.lease_duration_seconds = None;
        assert_eq!(validity(Some(&s), fallback), fallback);
        s.lease_duration_seconds = Some(-3);
        assert_eq!(validity(Some(&s), fallback), fallback);
    }
}
