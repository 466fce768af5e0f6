//! A herd-free contest for a takeable Lease: followers write in turn, stand
//! back once the watch shows a new holder, widen their spread after a lost
//! race and learn the winner from the watch rather than by reading.

use super::super::spread::Spread;
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
async fn a_beaten_follower_reads_the_lease_when_the_watch_says_nothing_for_a_retry_period() {
    let store = MemoryLease::new("test", "default");
    let mut b = released_and_read_by(&store, "b").await;
    store.write_spec_quietly(held_by("winner"));
    let beaten = b.until(|_| true).await + turn("b");
    sleep(turn("b") + T.retry_period - Duration::from_millis(1)).await;
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

/// An identity whose turn is late enough to tell a moved turn apart.
fn late_turn_identity() -> String {
    (0..)
        .map(|i| format!("follower-{i}"))
        .find(|id| turn(id) >= Duration::from_millis(4))
        .unwrap()
}

/// Candidate `id` read a released Lease and, at its turn, lost the race to
/// "winner", whose record its watch has not shown yet.
async fn beaten_at_its_turn(store: &MemoryLease, id: &str) -> Candidate {
    let b = released_and_read_by(store, id).await;
    store.write_spec_quietly(held_by("winner"));
    sleep(turn(id) + Duration::from_millis(1)).await;
    assert_eq!(b.requests("update"), 1, "lost the race");
    b
}

#[tokio::test(start_paused = true)]
async fn a_follower_that_lost_a_race_takes_its_next_turn_twice_as_late() {
    let store = MemoryLease::new("test", "default");
    let id = &late_turn_identity();
    let b = beaten_at_its_turn(&store, id).await;
    store.write_spec(held_by("winner"));
    sleep(T.retry_period).await;
    store.write_spec(held_by(""));
    let widened = Spread::default().widened(&T).turn(id);
    assert!(widened >= turn(id) * 2, "{widened:?}");
    sleep(widened - Duration::from_millis(1)).await;
    assert_eq!(b.requests("update"), 1, "not at the old turn");
    sleep(Duration::from_millis(2)).await;
    assert_eq!(b.requests("update"), 2, "at the widened turn");
    assert!(b.is_leader());
}

#[tokio::test(start_paused = true)]
async fn a_beaten_follower_moves_its_turn_back_past_the_time_the_winner_took_to_arrive() {
    let store = MemoryLease::new("test", "default");
    let id = &late_turn_identity();
    let b = beaten_at_its_turn(&store, id).await;
    // The winner's record reaches b's watch only 100 ms later.
    sleep(Duration::from_millis(100)).await;
    store.write_spec(held_by("winner"));
    let waited = turn(id) + Duration::from_millis(101);
    sleep(T.retry_period).await;
    store.write_spec(held_by(""));
    let next = Spread::default().covering(waited, &T).turn(id);
    assert!(next > Spread::default().widened(&T).turn(id), "{next:?}");
    sleep(next - Duration::from_millis(1)).await;
    assert_eq!(b.requests("update"), 1, "not before its new turn");
    sleep(Duration::from_millis(2)).await;
    assert_eq!(b.requests("update"), 2, "at its new turn");
}

#[test]
fn a_spread_widens_up_to_a_quarter_of_retry_period_and_narrows_down_to_its_minimum() {
    let mut spread = Spread::default();
    assert_eq!(spread.width(), Spread::MIN);
    for _ in 0..20 {
        spread = spread.widened(&T);
    }
    assert_eq!(spread.width(), T.retry_period / 4);
    let covering = Spread::default().covering(T.retry_period, &T);
    assert_eq!(
        covering.width(),
        T.retry_period / 4,
        "covering is capped too"
    );
    for _ in 0..20 {
        spread = spread.narrowed();
    }
    assert_eq!(spread.width(), Spread::MIN);
}
