//! The quiet-watch rule (`quiet.rs`), over the test double: a watch frozen
//! with [`MemoryBackend::freeze_watches`] delivers nothing and says nothing,
//! as one on a connection whose NAT or load-balancer state was lost.

use super::*;
use crate::election::quiet::quiet_bound;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A follower behind a healthy leader, with that leader, both settled.
async fn leader_and_follower(store: &MemoryLease) -> (Candidate, Candidate) {
    let mut a = candidate(store, "a");
    a.until(|s| s.is_leader).await;
    let mut b = candidate(store, "b");
    b.until(|s| s.holder.as_deref() == Some("a")).await;
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn a_quiet_watch_is_checked_with_a_read_before_the_lease_expires() {
    let store = MemoryLease::new("test", "default");
    // A holder that never renews: the watch is rightly quiet.
    store.write_spec(held_by("ghost"));
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    let gets = b.requests("get");
    sleep(quiet_bound(&T) - MS(1)).await;
    assert_eq!(b.requests("get"), gets, "no read before the bound");
    sleep(MS(2)).await;
    assert_eq!(b.requests("get"), gets + 1, "one read at the bound");
    assert!(Instant::now() - start < T.lease_duration);
    assert_eq!(b.backend.watch_count(), 1, "nothing was missed: same watch");
    assert!(!b.is_leader());
}

#[tokio::test(start_paused = true)]
async fn a_quiet_watch_that_missed_nothing_does_not_delay_the_takeover() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(held_by("ghost"));
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    let took = b.until(|s| s.is_leader).await;
    // Expiry, then b's turn in the contest for the takeable Lease.
    assert_eq!(took - start, T.lease_duration + turn("b"));
}

#[tokio::test(start_paused = true)]
async fn a_silent_holder_costs_one_check_per_record_not_one_per_bound() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(held_by("ghost"));
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    let gets = b.requests("get");
    b.until(|s| s.is_leader).await;
    assert_eq!(b.requests("get"), gets + 1, "one check, then the expiry");
}

#[tokio::test(start_paused = true)]
async fn a_watch_that_missed_a_release_is_restarted() {
    let store = MemoryLease::new("test", "default");
    let (a, mut b) = leader_and_follower(&store).await;
    sleep(MS(500)).await;
    b.backend.freeze_watches();
    let frozen = Instant::now();
    a.stop().await;
    let took = b.until(|s| s.is_leader).await;
    assert!(
        took - frozen <= quiet_bound(&T),
        "taken {:?} after the freeze",
        took - frozen
    );
    assert_eq!(b.backend.watch_count(), 2, "watching again");
    assert_eq!(holder_of(&store), "b");
}

#[tokio::test(start_paused = true)]
async fn a_follower_that_missed_renews_keeps_following_and_its_new_watch_brings_them() {
    let store = MemoryLease::new("test", "default");
    let (a, b) = leader_and_follower(&store).await;
    b.backend.freeze_watches();
    sleep(3 * T.lease_duration).await;
    assert!(a.is_leader() && !b.is_leader(), "b saw a's renews");
    assert_eq!(b.backend.watch_count(), 2, "one restart");
    let gets = b.requests("get");
    sleep(T.lease_duration).await;
    assert_eq!(b.requests("get"), gets, "the new watch delivers: no reads");
}

#[tokio::test(start_paused = true)]
async fn a_failed_check_restarts_the_watch() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(held_by("ghost"));
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    b.backend.fail_with(Some(BackendError::Server {
        code: 503,
        message: "unavailable".into(),
    }));
    sleep(quiet_bound(&T) + MS(1)).await;
    assert_eq!(b.failures("server_error"), 1);
    assert_eq!(b.backend.watch_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_leader_never_checks_its_watch() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let gets = a.requests("get");
    a.backend.freeze_watches();
    sleep(3 * T.lease_duration).await;
    assert!(a.is_leader());
    assert_eq!(a.requests("get"), gets);
    assert_eq!(a.backend.watch_count(), 1);
}
