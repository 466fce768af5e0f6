//! The API for controllers, one behaviour per test: the builder,
//! `run_while_leader` and the leader-change stream, over the in-memory test
//! double under tokio's paused clock, reporting nothing (`Arc::new(())`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::backend::memory::{MemoryBackend, MemoryLease};

const T: Timings = Timings {
    lease_duration: Duration::from_secs(6),
    renew_deadline: Duration::from_secs(3),
    retry_period: Duration::from_secs(1),
};

fn config(id: &str) -> ElectionConfig {
    ElectionConfig::builder("test", "default", id)
        .timings(T)
        .build()
        .expect("valid test timings")
}

fn holder_of(store: &MemoryLease) -> String {
    let lease = store.snapshot().expect("lease exists");
    let spec = lease.spec.expect("lease has a spec");
    spec.holder_identity.unwrap_or_default()
}

/// What the work of each term saw and when it ended.
#[derive(Default)]
struct Journal {
    /// The fencing token of each term the work started for.
    started: Vec<i32>,
    /// When each term's work future was dropped, and who held the Lease then.
    dropped: Vec<(Instant, String)>,
}

/// Notes in the journal when the work future holding it is dropped.
struct DropNote {
    journal: Arc<Mutex<Journal>>,
    store: MemoryLease,
}

impl Drop for DropNote {
    fn drop(&mut self) {
        let holder = holder_of(&self.store);
        self.journal
            .lock()
            .unwrap()
            .dropped
            .push((Instant::now(), holder));
    }
}

struct Running {
    backend: MemoryBackend,
    status: tokio::sync::watch::Receiver<Status>,
    resigner: Resigner,
    shutdown: CancellationToken,
    journal: Arc<Mutex<Journal>>,
    task: JoinHandle<()>,
}

/// Candidate `id` running `run_while_leader` with work that waits forever
/// (it is dropped when the term ends) and notes each term in the journal.
fn run_forever_work(store: &MemoryLease, id: &str) -> Running {
    run_with(store, id, |leadership, note| async move {
        let _note = note;
        let _keep = leadership;
        std::future::pending::<()>().await;
    })
}

fn run_with<W, Fut>(store: &MemoryLease, id: &str, work: W) -> Running
where
    W: Fn(Arc<Leadership>, DropNote) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let backend = store.client();
    let (elector, handles) = Elector::new(backend.clone(), config(id), Arc::new(()));
    let journal = Arc::new(Mutex::new(Journal::default()));
    let shutdown = CancellationToken::new();
    let (j, s) = (journal.clone(), store.clone());
    let task = tokio::spawn(elector.run_while_leader(
        handles.events,
        shutdown.clone(),
        move |leadership| {
            j.lock().unwrap().started.push(leadership.fencing_token);
            let note = DropNote {
                journal: j.clone(),
                store: s.clone(),
            };
            work(leadership, note)
        },
    ));
    Running {
        backend,
        status: handles.status,
        resigner: handles.resigner,
        shutdown,
        journal,
        task,
    }
}

impl Running {
    async fn until(&mut self, pred: impl Fn(&Status) -> bool) -> Instant {
        self.status
            .wait_for(|s| pred(s))
            .await
            .expect("elector alive");
        Instant::now()
    }

    fn started(&self) -> Vec<i32> {
        self.journal.lock().unwrap().started.clone()
    }

    fn dropped(&self) -> Vec<(Instant, String)> {
        self.journal.lock().unwrap().dropped.clone()
    }
}

#[test]
fn the_builder_accepts_client_go_defaults() {
    let config = ElectionConfig::builder("test", "default", "a")
        .build()
        .unwrap();
    assert_eq!(config.timings, Timings::DEFAULT);
    assert!(config.release_on_cancel);
}

#[test]
fn the_builder_rejects_a_renew_deadline_not_below_the_lease_duration() {
    let err = ElectionConfig::builder("test", "default", "a")
        .lease_duration(Duration::from_secs(10))
        .renew_deadline(Duration::from_secs(10))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            InvalidElection::Relation {
                larger: ("lease_duration", _),
                smaller: ("renew_deadline", _),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_builder_rejects_a_retry_period_that_leaves_no_room_for_jitter() {
    let err = ElectionConfig::builder("test", "default", "a")
        .renew_deadline(Duration::from_secs(2))
        .retry_period(Duration::from_secs(2))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, InvalidElection::Relation { larger: ("renew_deadline", _), factor, .. } if factor == JITTER_FACTOR),
        "{err}"
    );
}

#[test]
fn the_builder_rejects_a_lease_duration_in_fractions_of_a_second() {
    let err = ElectionConfig::builder("test", "default", "a")
        .lease_duration(Duration::from_millis(15500))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            InvalidElection::Field {
                field: "lease_duration",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_builder_rejects_an_empty_identity() {
    let err = ElectionConfig::builder("test", "default", " ")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            InvalidElection::Field {
                field: "identity",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_work_starts_when_leadership_is_won_with_its_fencing_token() {
    let store = MemoryLease::new("test", "default");
    let mut a = run_forever_work(&store, "a");
    a.until(|s| s.is_leader).await;
    sleep(Duration::from_millis(1)).await;
    assert_eq!(
        a.started(),
        vec![0],
        "the creating holder has leaseTransitions 0"
    );
}

#[tokio::test(start_paused = true)]
async fn the_work_is_dropped_when_the_renew_deadline_passes_before_anyone_takes_over() {
    let store = MemoryLease::new("test", "default");
    let mut a = run_forever_work(&store, "a");
    a.until(|s| s.is_leader).await;
    let last = a.status.borrow().last_renew_at.unwrap();
    a.backend.set_connected(false);
    a.until(|s| !s.is_leader).await;
    sleep(Duration::from_millis(1)).await;
    let dropped = a.dropped();
    assert_eq!(dropped.len(), 1, "the term's work was dropped");
    assert!(dropped[0].0 - last <= T.renew_deadline);
    assert_eq!(dropped[0].1, "a", "no one else holds the Lease yet");
}

#[tokio::test(start_paused = true)]
async fn the_work_starts_again_when_leadership_is_won_again() {
    let store = MemoryLease::new("test", "default");
    let mut a = run_forever_work(&store, "a");
    a.until(|s| s.is_leader).await;
    a.resigner.resign(Duration::from_secs(2));
    a.until(|s| !s.is_leader).await;
    a.until(|s| s.is_leader).await;
    sleep(Duration::from_millis(1)).await;
    assert_eq!(a.started().len(), 2, "one start per term");
    assert_eq!(a.dropped().len(), 1, "the first term's work ended first");
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_the_lease_only_after_the_work_future_is_dropped() {
    let store = MemoryLease::new("test", "default");
    let mut a = run_forever_work(&store, "a");
    a.until(|s| s.is_leader).await;
    a.shutdown.cancel();
    let journal = a.journal.clone();
    a.task.await.unwrap();
    let dropped = journal.lock().unwrap().dropped.clone();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].1, "a", "still held when the work stopped");
    assert_eq!(holder_of(&store), "", "released after");
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_work_that_still_holds_the_leadership() {
    let store = MemoryLease::new("test", "default");
    let mut a = run_with(&store, "a", |leadership, _note| async move {
        // Work handed to a task that needs 2 s to wind down after the token.
        tokio::spawn(async move {
            leadership.token.cancelled().await;
            sleep(Duration::from_secs(2)).await;
            drop(leadership);
        });
        std::future::pending::<()>().await;
    });
    a.until(|s| s.is_leader).await;
    a.shutdown.cancel();
    sleep(Duration::from_millis(1900)).await;
    assert_eq!(holder_of(&store), "a", "the work still runs: not released");
    a.task.await.unwrap();
    assert_eq!(holder_of(&store), "");
}

#[tokio::test(start_paused = true)]
async fn work_that_returns_early_leaves_the_candidate_leading_until_the_term_ends() {
    let store = MemoryLease::new("test", "default");
    let mut a = run_with(&store, "a", |_leadership, _note| async {});
    a.until(|s| s.is_leader).await;
    sleep(Duration::from_secs(10)).await;
    assert!(a.status.borrow().is_leader);
    assert_eq!(a.started().len(), 1, "not restarted within the term");
}

/// A plain candidate (no work) whose status feeds the stream.
fn candidate(store: &MemoryLease, id: &str) -> (Handles, CancellationToken, JoinHandle<()>) {
    let (elector, handles) = Elector::new(store.client(), config(id), Arc::new(()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(elector.run(shutdown.clone()));
    (handles, shutdown, task)
}

fn change(holder: &str, is_leader: bool, fencing_token: i32) -> LeaderChange {
    LeaderChange {
        holder: Some(holder.into()),
        is_leader,
        fencing_token,
    }
}

#[tokio::test(start_paused = true)]
async fn the_stream_first_yields_our_own_leadership_with_its_fencing_token() {
    let store = MemoryLease::new("test", "default");
    let (mut handles, _shutdown, _task) = candidate(&store, "a");
    handles.status.wait_for(|s| s.is_leader).await.unwrap();
    let mut changes = handles.leader_changes();
    assert_eq!(changes.next().await, Some(change("a", true, 0)));
}

#[tokio::test(start_paused = true)]
async fn renewals_alone_yield_nothing() {
    let store = MemoryLease::new("test", "default");
    let (mut handles, _shutdown, _task) = candidate(&store, "a");
    handles.status.wait_for(|s| s.is_leader).await.unwrap();
    let mut changes = handles.leader_changes();
    changes.next().await;
    let next = tokio::time::timeout(T.lease_duration * 3, changes.next()).await;
    assert!(next.is_err(), "nothing but renewals happened: {next:?}");
}

#[tokio::test(start_paused = true)]
async fn a_follower_sees_the_new_holder_after_a_handover() {
    let store = MemoryLease::new("test", "default");
    let (mut a, a_shutdown, a_task) = candidate(&store, "a");
    a.status.wait_for(|s| s.is_leader).await.unwrap();
    drop(a.events);
    let (mut b, _shutdown, _task) = candidate(&store, "b");
    b.status.wait_for(|s| s.observed).await.unwrap();
    let mut changes = b.leader_changes();
    assert_eq!(changes.next().await, Some(change("a", false, 0)));
    a_shutdown.cancel();
    a_task.await.unwrap();
    let mut seen = Vec::new();
    while let Some(c) = changes.next().await {
        seen.push(c.clone());
        if c.is_leader {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&change("b", true, 1)), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn the_stream_ends_when_the_elector_is_gone() {
    let store = MemoryLease::new("test", "default");
    let (handles, shutdown, task) = candidate(&store, "a");
    let Handles { status, events, .. } = handles;
    drop(events);
    let changes = leader_changes(status);
    shutdown.cancel();
    task.await.unwrap();
    let all: Vec<_> = changes.collect().await;
    assert!(all.len() <= 1, "{all:?}");
}
