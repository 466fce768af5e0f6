//! A herd-free contest for a takeable Lease: followers write in turn (their
//! stagger), stand back once the watch shows a new holder, and after a lost
//! race learn the winner from the watch rather than by reading.

use super::*;

/// A released Lease that candidate `id` has read, and is waiting its turn on.
async fn released_and_read_by(store: &MemoryLease, id: &str) -> Candidate {
    store.write_spec(held_by(""));
    let mut c = candidate(store, id);
    c.until(|s| s.observed).await;
    assert_eq!(c.requests("get"), 1, "the first read");
    c
}

#[tokio::test(start_paused = true)]
async fn a_staggered_follower_does_not_put_once_the_watch_shows_a_new_holder() {
    let store = MemoryLease::new("test", "default");
    let b = released_and_read_by(&store, "b").await;
    assert!(turn("b") > Duration::ZERO);
    store.write_spec(held_by("winner"));
    sleep(turn("b") + T.retry_period).await;
    assert_eq!(
        b.requests("update"),
        0,
        "no write after the watch showed the winner"
    );
    assert_eq!(holder_of(&store), "winner");
    assert!(!b.is_leader());
}

#[tokio::test(start_paused = true)]
async fn a_follower_that_lost_the_race_waits_for_the_watch_instead_of_reading() {
    let store = MemoryLease::new("test", "default");
    let b = released_and_read_by(&store, "b").await;
    // The winner's write has not reached b's watch yet: b's write conflicts.
    store.write_spec_quietly(held_by("winner"));
    sleep(turn("b") + Duration::from_millis(1)).await;
    assert_eq!(b.requests("update"), 1, "b wrote and lost");
    assert_eq!(b.requests("get"), 1, "and did not read at once");
    // The winner's next renew arrives on the watch.
    store.write_spec(held_by("winner"));
    // Less than the quiet-watch bound: a read now would be the contest's.
    sleep(T.retry_period).await;
    assert_eq!(b.requests("get"), 1, "the watch told b; no read");
    assert_eq!(b.requests("update"), 1, "nor another write");
    assert_eq!(holder_of(&store), "winner");
    assert!(!b.is_leader());
}

#[tokio::test(start_paused = true)]
async fn a_beaten_follower_reads_the_lease_when_the_watch_says_nothing_for_a_quarter_retry_period()
{
    let store = MemoryLease::new("test", "default");
    let mut b = released_and_read_by(&store, "b").await;
    store.write_spec_quietly(held_by("winner"));
    let beaten = b.until(|_| true).await + turn("b");
    sleep(turn("b") + T.retry_period / 4 - Duration::from_millis(1)).await;
    assert_eq!(b.requests("get"), 1, "still waiting for the watch");
    sleep(Duration::from_millis(2)).await;
    assert_eq!(
        b.requests("get"),
        2,
        "read {:?} after the race",
        Instant::now() - beaten
    );
    assert_eq!(b.status.borrow().holder.as_deref(), Some("winner"));
    sleep(T.lease_duration / 2).await;
    assert_eq!(
        b.requests("update"),
        1,
        "no write while the winner's record is fresh"
    );
}

#[tokio::test(start_paused = true)]
async fn of_the_followers_of_a_released_lease_only_the_one_with_the_earliest_turn_writes() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let ids = ["b", "c", "d", "e"];
    let mut followers: Vec<Candidate> = ids.iter().map(|id| candidate(&store, id)).collect();
    for f in &mut followers {
        f.until(|s| s.observed).await;
    }
    let first = *ids.iter().min_by_key(|id| turn(id)).unwrap();
    let mut turns: Vec<Duration> = ids.iter().map(|id| turn(id)).collect();
    turns.sort();
    assert!(turns[0] < turns[1], "distinct earliest turn: {turns:?}");
    a.stop().await;
    sleep(T.retry_period).await;
    assert_eq!(holder_of(&store), first);
    let writes: u64 = followers.iter().map(|f| f.requests("update")).sum();
    assert_eq!(writes, 1, "one write for the handover");
}
