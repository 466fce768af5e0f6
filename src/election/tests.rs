//! The election's rules, one per test, over the in-memory test double under
//! tokio's paused clock (time only moves when every task waits, so the
//! instants below are exact).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::backend::BackendError;
use crate::backend::memory::{MemoryBackend, MemoryLease};
use crate::metrics::Metrics;

mod contest;

const T: Timings = Timings {
    lease_duration: Duration::from_secs(6),
    renew_deadline: Duration::from_secs(3),
    retry_period: Duration::from_secs(1),
};

struct Candidate {
    backend: MemoryBackend,
    metrics: Arc<Metrics>,
    status: watch::Receiver<Status>,
    events: mpsc::UnboundedReceiver<LeaderEvent>,
    shutdown: CancellationToken,
    resigner: Resigner,
    task: JoinHandle<()>,
}

impl Candidate {
    fn is_leader(&self) -> bool {
        self.status.borrow().is_leader
    }

    fn requests(&self, verb: &str) -> u64 {
        self.metrics.api_requests.with_label_values(&[verb]).get()
    }

    fn failures(&self, reason: &str) -> u64 {
        self.metrics
            .renew_failures
            .with_label_values(&[reason])
            .get()
    }

    /// Waits (in virtual time) until `pred` holds for this candidate's status.
    async fn until(&mut self, pred: impl Fn(&Status) -> bool) -> Instant {
        self.status
            .wait_for(|s| pred(s))
            .await
            .expect("elector alive");
        Instant::now()
    }

    async fn next_started(&mut self) -> Leadership {
        loop {
            match self.events.recv().await.expect("elector alive") {
                LeaderEvent::StartedLeading(l) => return l,
                _ => continue,
            }
        }
    }

    /// Drops unread events: a `Leadership` left unread would hold up the
    /// release, as it should for a consumer that is still working.
    fn drain(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    async fn stop(mut self) {
        self.drain();
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

fn candidate(store: &MemoryLease, id: &str) -> Candidate {
    candidate_with(store, id, true)
}

fn candidate_with(store: &MemoryLease, id: &str, release_on_cancel: bool) -> Candidate {
    let backend = store.client();
    let config = ElectionConfig {
        lease: "test".into(),
        namespace: "default".into(),
        identity: id.into(),
        timings: T,
        release_on_cancel,
    };
    let crate::candidate::Candidate {
        elector,
        handles,
        metrics,
        ..
    } = crate::candidate::candidate(backend.clone(), config);
    let Handles {
        events,
        status,
        resigner,
    } = handles;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(elector.run(shutdown.clone()));
    Candidate {
        backend,
        metrics,
        status,
        events,
        shutdown,
        resigner,
        task,
    }
}

/// How long candidate `id` waits before writing a takeable Lease while its
/// spread is the initial one (its turn).
fn turn(id: &str) -> Duration {
    super::spread::Spread::default().turn(id)
}

fn held_by(holder: &str) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.into()),
        lease_duration_seconds: Some(6),
        acquire_time: Some(record::micro_now()),
        renew_time: Some(record::micro_now()),
        lease_transitions: Some(3),
        ..LeaseSpec::default()
    }
}

fn stored(store: &MemoryLease) -> LeaseSpec {
    store.snapshot().expect("lease exists").spec.expect("spec")
}

fn holder_of(store: &MemoryLease) -> String {
    stored(store).holder_identity.unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn the_first_candidate_creates_the_lease_and_leads() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let spec = stored(&store);
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(6));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    assert_eq!(a.requests("create"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_follower_takes_over_only_lease_duration_after_it_saw_the_last_change() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(held_by("ghost"));
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    let took = b.until(|s| s.is_leader).await;
    assert_eq!(took - start, T.lease_duration + turn("b"));
    assert_eq!(holder_of(&store), "b");
}

#[tokio::test(start_paused = true)]
async fn a_renew_time_far_in_the_past_is_not_trusted() {
    let store = MemoryLease::new("test", "default");
    let mut spec = held_by("ghost");
    let hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    spec.renew_time = Some(MicroTime(hour_ago));
    store.write_spec(spec);
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    let took = b.until(|s| s.is_leader).await;
    assert_eq!(
        took - start,
        T.lease_duration + turn("b"),
        "a skewed clock must not shorten the wait"
    );
}

#[tokio::test(start_paused = true)]
async fn a_renew_time_in_the_future_does_not_extend_the_wait() {
    let store = MemoryLease::new("test", "default");
    let mut spec = held_by("ghost");
    let in_an_hour = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    spec.renew_time = Some(MicroTime(in_an_hour));
    store.write_spec(spec);
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    let took = b.until(|s| s.is_leader).await;
    assert_eq!(took - start, T.lease_duration + turn("b"));
}

#[tokio::test(start_paused = true)]
async fn every_change_seen_restarts_the_followers_expiry_clock() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(held_by("ghost"));
    let mut b = candidate(&store, "b");
    sleep(Duration::from_secs(4)).await;
    let mut renewed = held_by("ghost");
    renewed.renew_time = Some(record::micro_now());
    store.write_spec(renewed);
    let seen = Instant::now();
    let took = b.until(|s| s.is_leader).await;
    assert_eq!(took - seen, T.lease_duration + turn("b"));
}

#[tokio::test(start_paused = true)]
async fn the_leader_renews_with_one_update_per_retry_period_and_no_get() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let (gets, updates) = (a.requests("get"), a.requests("update"));
    sleep(Duration::from_millis(10_500)).await;
    assert_eq!(a.requests("get"), gets, "the fast path reads nothing");
    assert_eq!(a.requests("update") - updates, 10);
    assert!(a.metrics.renew_duration.get_sample_count() >= 10);
    assert!(a.is_leader());
}

#[tokio::test(start_paused = true)]
async fn followers_do_not_poll_while_a_healthy_leader_renews() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    let before = b.requests("get") + b.requests("update") + b.requests("create");
    sleep(Duration::from_secs(60)).await;
    let after = b.requests("get") + b.requests("update") + b.requests("create");
    assert_eq!(after, before, "a follower learns through the watch");
    assert!(!b.is_leader());
}

#[tokio::test(start_paused = true)]
async fn a_conflict_makes_the_leader_reread_and_renew() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    // Someone rewrites the record unseen by the watch: the cached
    // resourceVersion is now stale.
    store.write_spec_quietly(stored(&store));
    let gets = a.requests("get");
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.failures("conflict"), 1);
    assert_eq!(a.requests("get"), gets + 1, "one GET on the slow path");
    assert!(a.is_leader());
    assert_eq!(holder_of(&store), "a");
}

#[tokio::test(start_paused = true)]
async fn the_leader_steps_down_exactly_renew_deadline_after_its_last_successful_renew_was_sent() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    sleep(Duration::from_millis(2500)).await;
    let last = a.status.borrow().last_renew_at.unwrap();
    a.backend.set_connected(false);
    let stepped = a.until(|s| !s.is_leader).await;
    assert_eq!(stepped - last, T.renew_deadline);
    assert!(a.failures("network") >= 2, "failed renews are counted");
    assert_eq!(a.metrics.is_leader.get(), 0);
    assert_eq!(a.metrics.transitions.with_label_values(&["lost"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cut_off_leader_stops_before_another_candidate_takes_over() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    let lead = a.next_started().await;
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    a.backend.set_connected(false);
    let token = lead.token.clone();
    drop(lead);
    let stopped = tokio::spawn(async move {
        token.cancelled().await;
        Instant::now()
    });
    let b_leads = b.until(|s| s.is_leader).await;
    let a_stopped = stopped.await.unwrap();
    assert!(!a.is_leader());
    assert!(
        a_stopped < b_leads,
        "the old leader's work was told to stop first"
    );
    // Safety margin: lease_duration - renew_deadline - up to one retry_period.
    assert!(b_leads - a_stopped >= T.lease_duration - T.renew_deadline - T.retry_period);
}

/// What the status said at the instant a token was cancelled: its waker runs
/// inside `cancel()`, so this sees the order of the two, not a later state.
struct StatusAtCancel {
    status: watch::Receiver<Status>,
    is_leader: std::sync::Mutex<Option<bool>>,
}

impl std::task::Wake for StatusAtCancel {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.is_leader.lock().unwrap() = Some(self.status.borrow().is_leader);
    }
}

/// Registers a waker on `token` that records the status when it is woken;
/// keep the returned future alive for as long as the registration must last.
fn status_at_cancel(
    token: &CancellationToken,
    status: &watch::Receiver<Status>,
) -> (Arc<StatusAtCancel>, impl Sized + use<>) {
    use std::future::Future;
    let probe = Arc::new(StatusAtCancel {
        status: status.clone(),
        is_leader: std::sync::Mutex::new(None),
    });
    let waker = std::task::Waker::from(probe.clone());
    let mut registered = Box::pin(token.clone().cancelled_owned());
    let polled = registered
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&waker));
    assert!(polled.is_pending(), "the token is not cancelled yet");
    (probe, registered)
}

#[tokio::test(start_paused = true)]
async fn a_lost_term_says_not_leader_no_later_than_its_token_is_cancelled() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    let lead = a.next_started().await;
    let (probe, _registered) = status_at_cancel(&lead.token, &a.status);
    drop(lead);
    a.backend.set_connected(false);
    a.until(|s| !s.is_leader).await;
    assert_eq!(*probe.is_leader.lock().unwrap(), Some(false));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_says_not_leader_no_later_than_the_token_is_cancelled() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    let lead = a.next_started().await;
    let (probe, _registered) = status_at_cancel(&lead.token, &a.status);
    drop(lead);
    a.stop().await;
    assert_eq!(*probe.is_leader.lock().unwrap(), Some(false));
}

#[tokio::test(start_paused = true)]
async fn after_the_cut_heals_the_old_leader_follows() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let mut b = candidate(&store, "b");
    a.backend.set_connected(false);
    b.until(|s| s.is_leader).await;
    a.backend.set_connected(true);
    a.until(|s| s.holder.as_deref() == Some("b")).await;
    sleep(Duration::from_secs(10)).await;
    assert!(!a.is_leader());
    assert!(b.is_leader());
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_the_lease_and_another_candidate_takes_it_at_once() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    let t0 = Instant::now();
    a.stop().await;
    let took = b.until(|s| s.is_leader).await;
    assert!(
        took - t0 < Duration::from_millis(10),
        "took {:?}",
        took - t0
    );
    assert_eq!(stored(&store).lease_transitions, Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_has_no_holder_and_a_one_second_duration() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    a.stop().await;
    let spec = stored(&store);
    assert_eq!(spec.holder_identity.as_deref(), Some(""));
    assert_eq!(spec.lease_duration_seconds, Some(1));
}

#[tokio::test(start_paused = true)]
async fn without_release_on_cancel_the_lease_is_left_to_expire() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate_with(&store, "a", false);
    a.until(|s| s.is_leader).await;
    a.stop().await;
    assert_eq!(holder_of(&store), "a");
}

#[tokio::test(start_paused = true)]
async fn the_release_waits_until_the_leaders_work_has_stopped() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    let lead = a.next_started().await;
    a.shutdown.cancel();
    lead.token.cancelled().await;
    sleep(Duration::from_secs(2)).await;
    assert_eq!(holder_of(&store), "a", "still working: not released yet");
    drop(lead);
    a.task.await.unwrap();
    assert_eq!(holder_of(&store), "");
}

/// A record naming us that this process did not write may be a twin's (two
/// live processes, one identity): after a restart it is waited out like any
/// other holder's, then taken without a new transition.
#[tokio::test(start_paused = true)]
async fn a_restarted_holder_waits_out_its_old_record_before_taking_it_again() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(held_by("a"));
    let start = Instant::now();
    let mut a = candidate(&store, "a");
    let took = a.until(|s| s.is_leader).await;
    assert_eq!(took - start, T.lease_duration + turn("a"));
    assert_eq!(
        stored(&store).lease_transitions,
        Some(3),
        "same holder: no transition"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_holder_is_taken_at_once() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(held_by(""));
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    assert_eq!(b.until(|s| s.is_leader).await, start + turn("b"));
}

#[tokio::test(start_paused = true)]
async fn a_null_holder_is_taken_at_once() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(LeaseSpec::default());
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    assert_eq!(b.until(|s| s.is_leader).await, start + turn("b"));
    assert_eq!(stored(&store).lease_transitions, Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_held_lease_without_times_or_duration_expires_after_our_own_lease_duration() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(LeaseSpec {
        holder_identity: Some("hand-written".into()),
        ..LeaseSpec::default()
    });
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    assert_eq!(
        b.until(|s| s.is_leader).await - start,
        T.lease_duration + turn("b")
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_lease_duration_is_not_taken_as_already_expired() {
    let store = MemoryLease::new("test", "default");
    let mut spec = held_by("other");
    spec.lease_duration_seconds = Some(0);
    store.write_spec(spec);
    let start = Instant::now();
    let mut b = candidate(&store, "b");
    assert_eq!(
        b.until(|s| s.is_leader).await - start,
        T.lease_duration + turn("b")
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_deleted_while_held_is_recreated_by_its_leader() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    store.write_spec(stored(&store)); // a change, so transitions are on record
    store.delete();
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(holder_of(&store), "a");
    assert!(a.is_leader());
    assert!(!b.is_leader());
    assert!(a.requests("create") >= 2);
}

#[tokio::test(start_paused = true)]
async fn followers_do_not_take_a_deleted_lease_before_the_old_term_runs_out() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    a.task.abort(); // crashes without releasing
    let last_change = Instant::now();
    store.delete();
    let took = b.until(|s| s.is_leader).await;
    assert!(took - last_change >= T.lease_duration - T.retry_period);
    let spec = stored(&store);
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(
        spec.lease_transitions,
        Some(1),
        "the fencing token keeps growing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_lease_is_taken_by_someone_else_steps_down() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    store.write_spec(held_by("kubectl-edit"));
    let t0 = Instant::now();
    let stepped = a.until(|s| !s.is_leader).await;
    assert!(stepped - t0 < T.retry_period);
    assert_eq!(a.metrics.observed_leader_changes.get(), 2);
    assert_eq!(holder_of(&store), "kubectl-edit");
}

#[tokio::test(start_paused = true)]
async fn a_forbidden_write_is_counted_retried_and_never_leads() {
    let store = MemoryLease::new("test", "default");
    store.write_spec(held_by(""));
    let backend_failure = BackendError::Forbidden("cannot update leases".into());
    let mut b = candidate(&store, "b");
    b.backend.fail_with(Some(backend_failure));
    sleep(Duration::from_secs(10)).await;
    assert!(!b.is_leader());
    assert!(
        b.failures("forbidden") >= 5,
        "retried about every retry_period"
    );
    b.backend.fail_with(None);
    b.until(|s| s.is_leader).await;
}

#[tokio::test(start_paused = true)]
async fn fencing_tokens_grow_with_every_new_leader() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    let first = a.next_started().await.fencing_token;
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    a.stop().await;
    let second = b.next_started().await.fencing_token;
    let mut c = candidate(&store, "c");
    c.until(|s| s.observed).await;
    b.stop().await;
    let third = c.next_started().await.fencing_token;
    assert!(first < second && second < third, "{first} {second} {third}");
}

#[tokio::test(start_paused = true)]
async fn leadership_events_are_recorded_on_the_lease() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    a.stop().await;
    sleep(Duration::from_millis(10)).await;
    assert_eq!(
        store.events(),
        vec![
            "LeaderElection: a became leader".to_string(),
            "LeaderElection: a stopped leading".to_string()
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_resigning_leader_releases_and_lets_another_candidate_lead() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let mut b = candidate(&store, "b");
    b.until(|s| s.observed).await;
    a.drain();
    a.resigner.resign(Duration::from_secs(5));
    b.until(|s| s.is_leader).await;
    assert!(!a.is_leader());
    b.stop().await;
    // a sits out for 5 s before trying again (after its turn).
    let t0 = Instant::now();
    let took = a.until(|s| s.is_leader).await;
    assert!(took - t0 <= Duration::from_secs(5) + turn("a"));
}

#[tokio::test(start_paused = true)]
async fn never_two_leaders_through_cuts_crashes_and_releases() {
    let store = MemoryLease::new("test", "default");
    let ids = ["a", "b", "c"];
    let mut cands: Vec<Candidate> = ids.iter().map(|id| candidate(&store, id)).collect();
    let mut leaders_seen = 0;
    for round in 0..12u64 {
        // Sample every 10 ms for 20 s of virtual time.
        for _ in 0..2000 {
            let n = cands.iter().filter(|c| c.is_leader()).count();
            assert!(n <= 1, "two leaders in round {round}");
            sleep(Duration::from_millis(10)).await;
        }
        let Some(i) = cands.iter().position(|c| c.is_leader()) else {
            continue;
        };
        leaders_seen += 1;
        match round % 3 {
            0 => {
                // Cut, then heal once someone else took over.
                cands[i].backend.set_connected(false);
                while !cands
                    .iter()
                    .enumerate()
                    .any(|(j, c)| j != i && c.is_leader())
                {
                    assert!(cands.iter().filter(|c| c.is_leader()).count() <= 1);
                    sleep(Duration::from_millis(10)).await;
                }
                cands[i].backend.set_connected(true);
            }
            1 => {
                cands[i].task.abort();
                let _ = (&mut cands[i].task).await;
                cands[i] = candidate(&store, ids[i]);
            }
            _ => {
                let old = std::mem::replace(&mut cands[i], candidate(&store, "placeholder"));
                old.stop().await;
                let placeholder = std::mem::replace(&mut cands[i], candidate(&store, ids[i]));
                placeholder.stop().await;
            }
        }
    }
    assert!(leaders_seen >= 10);
}

fn server_error() -> Option<BackendError> {
    Some(BackendError::Server {
        code: 500,
        message: "test".into(),
    })
}

/// Term 1 ends at the deadline while its work still winds down; the record
/// still names us, so term 2 starts at once; its work stops; a shutdown must
/// still wait for term 1's work before it releases.
#[tokio::test(start_paused = true)]
async fn a_release_waits_for_the_work_of_every_term_not_only_the_last() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    let first = a.next_started().await;
    a.backend.fail_with(server_error());
    first.token.cancelled().await;
    a.backend.fail_with(None);
    let second = a.next_started().await;
    drop(second);
    a.drain();
    a.shutdown.cancel();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(
        holder_of(&store),
        "a",
        "term 1's work still runs: not released"
    );
    drop(first);
    a.task.await.unwrap();
    assert_eq!(holder_of(&store), "");
}

/// As client-go: a candidate that lost at the deadline but whose record still
/// names it releases that record on shutdown.
#[tokio::test(start_paused = true)]
async fn after_losing_at_the_deadline_a_shutdown_still_releases_a_record_naming_us() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    drop(a.next_started().await);
    a.backend.fail_with(server_error());
    a.until(|s| !s.is_leader).await;
    // Its next attempt is a retry_period away; the server recovers meanwhile.
    sleep(Duration::from_millis(100)).await;
    a.backend.fail_with(None);
    a.drain();
    a.shutdown.cancel();
    a.task.await.unwrap();
    assert_eq!(holder_of(&store), "");
}

/// The acquiring write is in flight when the shutdown comes: the write lands,
/// but the candidate never starts leading (no StartedLeading, so no child),
/// and the record it wrote is released.
#[tokio::test(start_paused = true)]
async fn a_shutdown_during_the_acquiring_write_never_starts_leading() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.backend.set_latency(Duration::from_secs(1));
    // The read takes 1 s, then the create goes out after a's turn: halfway.
    sleep(Duration::from_secs(1) + turn("a") + Duration::from_millis(500)).await;
    a.shutdown.cancel();
    // A Leadership handed out (and left unread) would hold the shutdown up.
    let ended = tokio::time::timeout(Duration::from_secs(30), &mut a.task).await;
    assert!(
        ended.is_ok(),
        "the shutdown waits for a Leadership: it started leading"
    );
    assert!(!a.status.borrow().is_leader);
    while let Ok(event) = a.events.try_recv() {
        assert!(
            !matches!(event, LeaderEvent::StartedLeading(_)),
            "started leading after the shutdown"
        );
    }
    assert_eq!(holder_of(&store), "", "the landed write was released");
}

/// Two live processes with one identity (a force-deleted StatefulSet Pod and
/// its replacement): the one that leads goes on leading, the other never
/// takes the Lease while it is renewed, and counts what it saw.
#[tokio::test(start_paused = true)]
async fn two_processes_with_one_identity_never_both_lead() {
    let store = MemoryLease::new("test", "default");
    let mut first = candidate(&store, "x");
    first.until(|s| s.is_leader).await;
    let second = candidate(&store, "x");
    sleep(4 * T.lease_duration).await;
    assert!(first.is_leader(), "the renewing process keeps leading");
    assert!(!second.is_leader(), "its twin never takes over");
    assert!(second.metrics.identity_conflicts.get() > 0);
    assert_eq!(first.metrics.identity_conflicts.get(), 0);
}

/// A leader that sees a record under its own name that it did not write
/// steps down at once, counts it, and takes the Lease again only once that
/// record has been stable for lease_duration.
#[tokio::test(start_paused = true)]
async fn a_leader_that_sees_a_twins_renew_steps_down_and_waits_it_out() {
    let store = MemoryLease::new("test", "default");
    let mut a = candidate(&store, "a");
    a.until(|s| s.is_leader).await;
    let twin = LeaseSpec {
        renew_time: Some(MicroTime(jiff::Timestamp::UNIX_EPOCH)),
        ..stored(&store)
    };
    store.write_spec(twin);
    let seen = Instant::now();
    a.until(|s| !s.is_leader).await;
    assert_eq!(a.metrics.identity_conflicts.get(), 1);
    let again = a.until(|s| s.is_leader).await;
    assert_eq!(again - seen, T.lease_duration + turn("a"));
}

mod quiet;
