//! The child's life cycle against real processes (small shell scripts).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::backend::memory::MemoryLease;
use crate::election::{ElectionConfig, Elector, Leadership, Timings};

fn spec(script: &str, grace: Duration) -> ChildSpec {
    ChildSpec {
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("LEASE_ELECTOR_IDENTITY".into(), "me".into())],
        run: RunSettings {
            stop_signal: StopSignal::TERM,
            grace_period: grace,
            on_child_exit: OnChildExit::Recompete,
            restart_backoff: Duration::from_millis(100),
            label_pod: false,
        },
    }
}

fn harness() -> (Arc<Metrics>, watch::Sender<ChildStatus>) {
    (
        Arc::new(Metrics::new("t", "default")),
        watch::Sender::new(ChildStatus::default()),
    )
}

async fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn the_child_gets_identity_and_fencing_token_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let script = format!(
        "echo \"$LEASE_ELECTOR_IDENTITY $LEASE_ELECTOR_FENCING_TOKEN\" > {}",
        out.display()
    );
    let (metrics, status) = harness();
    let lead = Leadership::detached(CancellationToken::new(), 7);
    let end = run_child(
        &spec(&script, Duration::from_secs(1)),
        &lead,
        &metrics,
        &status,
        &Watchdog::none(),
    )
    .await;
    assert!(
        matches!(end, ChildEnd::Exited(st, _) if st.success()),
        "{end:?}"
    );
    assert_eq!(std::fs::read_to_string(out).unwrap(), "me 7\n");
    assert_eq!(metrics.child_starts.get(), 1);
    assert_eq!(metrics.child_exits.with_label_values(&["success"]).get(), 1);
    assert_eq!(metrics.child_running.get(), 0);
}

#[tokio::test]
async fn losing_leadership_sends_the_stop_signal_and_a_cooperative_child_exits() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'echo stopped >> {r}; exit 0' TERM; echo up > {r}; while :; do sleep 0.05; done",
        r = ready.display()
    );
    let (metrics, status) = harness();
    let token = CancellationToken::new();
    let lead = Leadership::detached(token.clone(), 1);
    let s = spec(&script, Duration::from_secs(5));
    let child =
        tokio::spawn(
            async move { run_child(&s, &lead, &metrics, &status, &Watchdog::none()).await },
        );
    wait_for_file(&ready).await;
    let t0 = Instant::now();
    token.cancel();
    let end = child.await.unwrap();
    assert!(
        matches!(end, ChildEnd::Stopped(st) if st.success()),
        "{end:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "did not wait for SIGKILL"
    );
    assert!(std::fs::read_to_string(&ready).unwrap().contains("stopped"));
}

#[tokio::test]
async fn a_child_ignoring_the_stop_signal_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap '' TERM; echo up > {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let (metrics, status) = harness();
    let token = CancellationToken::new();
    let lead = Leadership::detached(token.clone(), 1);
    let grace = Duration::from_millis(500);
    let s = spec(&script, grace);
    let m = metrics.clone();
    let child =
        tokio::spawn(async move { run_child(&s, &lead, &m, &status, &Watchdog::none()).await });
    wait_for_file(&ready).await;
    let t0 = Instant::now();
    token.cancel();
    let end = child.await.unwrap();
    let took = t0.elapsed();
    assert!(
        matches!(end, ChildEnd::Stopped(st) if st.signal() == Some(libc::SIGKILL)),
        "{end:?}"
    );
    assert!(took >= grace, "killed before the grace period: {took:?}");
    assert_eq!(
        metrics.child_exits.with_label_values(&["signaled"]).get(),
        1
    );
}

#[tokio::test]
async fn processes_the_child_started_are_stopped_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
    let (metrics, status) = harness();
    let token = CancellationToken::new();
    let lead = Leadership::detached(token.clone(), 1);
    let s = spec(&script, Duration::from_millis(500));
    let child =
        tokio::spawn(
            async move { run_child(&s, &lead, &metrics, &status, &Watchdog::none()).await },
        );
    let pid: i32 = wait_for_file(&pidfile).await.trim().parse().unwrap();
    assert!(alive(pid));
    token.cancel();
    child.await.unwrap();
    // The grandchild was in the child's process group.
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(pid) {
        assert!(Instant::now() < deadline, "grandchild {pid} survived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_missing_program_is_reported_not_panicked() {
    let (metrics, status) = harness();
    let lead = Leadership::detached(CancellationToken::new(), 1);
    let mut s = spec("", Duration::from_secs(1));
    s.command = vec!["/nonexistent/program".into()];
    let end = run_child(&s, &lead, &metrics, &status, &Watchdog::none()).await;
    assert!(matches!(end, ChildEnd::SpawnFailed(_)), "{end:?}");
}

#[test]
fn stop_signals_are_parsed_with_or_without_the_sig_prefix() {
    assert_eq!(parse_signal("SIGTERM"), Some(libc::SIGTERM));
    assert_eq!(parse_signal("int"), Some(libc::SIGINT));
    assert_eq!(parse_signal("SIGKILL"), None, "SIGKILL gives no grace");
    assert_eq!(parse_signal("SIGFOO"), None);
}

#[tokio::test]
async fn fencing_tokens_grow_across_acquisitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tokens");
    // Each child records its token and exits; the supervisor then resigns and
    // the candidate wins the Lease again with a new token.
    let script = format!("echo $LEASE_ELECTOR_FENCING_TOKEN >> {}", out.display());
    let store = MemoryLease::new("t", "default");
    let metrics = Arc::new(Metrics::new("t", "default"));
    let config = ElectionConfig {
        lease: "t".into(),
        namespace: "default".into(),
        identity: "me".into(),
        timings: Timings {
            lease_duration: Duration::from_secs(6),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_secs(1),
        },
        release_on_cancel: true,
    };
    let (elector, handles) = Elector::new(store.client(), config, metrics.clone());
    let shutdown = CancellationToken::new();
    let sup = tokio::spawn(supervise(
        handles.events,
        spec(&script, Duration::from_secs(1)),
        metrics.clone(),
        watch::Sender::new(ChildStatus::default()),
        handles.resigner,
        shutdown.clone(),
        Watchdog::none(),
    ));
    let run = tokio::spawn(elector.run(shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let tokens: Vec<i32> = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let tokens: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if tokens.len() >= 3 {
            break tokens;
        }
        assert!(Instant::now() < deadline, "only {tokens:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    shutdown.cancel();
    run.await.unwrap();
    sup.await.unwrap();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[tokio::test]
async fn with_on_child_exit_exit_the_childs_code_ends_the_election_and_the_lease_is_released() {
    let store = MemoryLease::new("t", "default");
    let metrics = Arc::new(Metrics::new("t", "default"));
    let config = ElectionConfig::new("t", "default", "me").with_timings(Timings {
        lease_duration: Duration::from_secs(6),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_secs(1),
    });
    let (elector, handles) = Elector::new(store.client(), config, metrics.clone());
    let shutdown = CancellationToken::new();
    let mut s = spec("exit 7", Duration::from_secs(1));
    s.run.on_child_exit = OnChildExit::Exit;
    let sup = tokio::spawn(supervise(
        handles.events,
        s,
        metrics.clone(),
        watch::Sender::new(ChildStatus::default()),
        handles.resigner,
        shutdown.clone(),
        Watchdog::none(),
    ));
    let run = tokio::spawn(elector.run(shutdown.clone()));
    let code = tokio::time::timeout(Duration::from_secs(20), sup)
        .await
        .expect("supervisor ended")
        .unwrap();
    assert_eq!(code, Some(7));
    assert!(shutdown.is_cancelled());
    run.await.unwrap();
    let holder = store.snapshot().unwrap().spec.unwrap().holder_identity;
    assert_eq!(holder.as_deref(), Some(""), "released on the way out");
    assert_eq!(metrics.child_exits.with_label_values(&["failure"]).get(), 1);
}

/// Set in the copy of this test binary that runs as PID 1.
const AS_PID1: &str = "LEASE_ELECTOR_TEST_AS_PID1";

/// In a container lease-elector is PID 1, so its child's parent is pid 1:
/// that must not be mistaken for "the parent died". The test runs itself
/// again as PID 1 of a new PID namespace (`unshare`) and checks from there.
#[test]
fn as_pid_1_the_child_starts_and_orphans_it_leaves_are_reaped() {
    if std::env::var_os(AS_PID1).is_some() {
        return as_pid_1_inner();
    }
    let me = std::env::current_exe().unwrap();
    let name = "supervise::tests::as_pid_1_the_child_starts_and_orphans_it_leaves_are_reaped";
    let out = std::process::Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .arg(&me)
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(AS_PID1, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "as PID 1: {text}");
    assert!(
        text.contains("1 passed"),
        "the copy did not run the test: {text}"
    );
}

fn as_pid_1_inner() {
    assert_eq!(std::process::id(), 1, "unshare made us PID 1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ppid");
        // The subshell leaves `sleep` orphaned: it is reparented to us.
        let script = format!("(sleep 30 &); echo $PPID > {}", out.display());
        let (metrics, status) = harness();
        let lead = Leadership::detached(CancellationToken::new(), 3);
        let end = run_child(
            &spec(&script, Duration::from_secs(1)),
            &lead,
            &metrics,
            &status,
            &Watchdog::none(),
        )
        .await;
        assert!(
            matches!(end, ChildEnd::Exited(st, _) if st.success()),
            "{end:?}"
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "1\n");
        // run_child killed the child's group, so the orphan is now a zombie.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut reaped = 0;
        while reaped == 0 {
            assert!(
                Instant::now() < deadline,
                "the orphaned sleep was never reaped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            reaped += reaper::reap_once();
        }
    });
}

#[test]
fn a_child_that_cannot_start_is_explained_in_words_a_user_can_act_on() {
    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
    let hint = spawn_failure_hint(&["/app/worker".into()], &missing);
    assert!(hint.contains("\"/app/worker\" was not found"), "{hint}");
    assert!(hint.contains("must exist in the image"), "{hint}");
    let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    assert!(spawn_failure_hint(&["x".into()], &denied).contains("not executable"));
    assert!(spawn_failure_hint(&[], &missing).contains("empty"));
}

/// Waits on the real clock for a file the child writes, letting the other
/// tasks run but keeping tokio's paused clock still (a task stays ready).
async fn wait_for_file_paused(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n')) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A child that ignores the stop signal and notes it in `ready`.
fn stubborn(ready: &Path) -> String {
    format!(
        "trap 'echo term >> {r}' TERM; echo up > {r}; while :; do sleep 0.05; done",
        r = ready.display()
    )
}

/// Runs a stubborn child under `lead` (grace period 100 s) on the paused
/// clock; returns how it ended, how long after `t0` (paused time), and
/// whether it got the stop signal.
async fn run_stubborn(
    lead: Leadership,
    cancel_at_start: Option<&CancellationToken>,
    wait_until_up: bool,
) -> (ChildEnd, Duration, bool) {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let (metrics, status) = harness();
    let s = spec(&stubborn(&ready), Duration::from_secs(100));
    let t0 = Instant::now();
    let child =
        tokio::spawn(
            async move { run_child(&s, &lead, &metrics, &status, &Watchdog::none()).await },
        );
    if wait_until_up {
        wait_for_file_paused(&ready).await;
    }
    if let Some(token) = cancel_at_start {
        token.cancel();
    }
    let end = child.await.unwrap();
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let termed = std::fs::read_to_string(&ready)
        .unwrap_or_default()
        .contains("term");
    (end, took, termed)
}

fn killed(end: &ChildEnd) -> bool {
    matches!(end, ChildEnd::Stopped(st) if st.signal() == Some(libc::SIGKILL))
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_ends_at_the_leaderships_validity_when_that_comes_first() {
    let token = CancellationToken::new();
    let (_valid_tx, valid) = watch::channel(Instant::now() + Duration::from_secs(2));
    let lead = Leadership::detached_until(token.clone(), 1, valid);
    // (Whether the shell ran its trap before the SIGKILL is up to the
    // scheduler: 2 s of paused time pass at once.)
    let (end, took, _) = run_stubborn(lead, Some(&token), true).await;
    assert!(killed(&end), "{end:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "killed {took:?} after the start, not at the validity instant (2 s)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_is_killed_at_the_validity_instant_even_if_the_token_is_never_cancelled() {
    let (_valid_tx, valid) = watch::channel(Instant::now() + Duration::from_secs(2));
    let lead = Leadership::detached_until(CancellationToken::new(), 1, valid);
    let (end, took, termed) = run_stubborn(lead, None, true).await;
    assert!(killed(&end), "{end:?}");
    assert!(!termed, "SIGKILL without a stop signal first: {end:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "killed after {took:?}, not at the validity instant (2 s)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_after_the_validity_has_passed_kills_at_once_without_a_stop_signal() {
    let token = CancellationToken::new();
    // Valid until the very start: passed by the time the child runs.
    let (_valid_tx, valid) = watch::channel(Instant::now());
    let lead = Leadership::detached_until(token.clone(), 1, valid);
    let (end, took, termed) = run_stubborn(lead, Some(&token), false).await;
    assert!(killed(&end), "{end:?}");
    assert!(!termed, "no stop signal, no grace: {end:?}");
    assert!(took < Duration::from_secs(1), "killed after {took:?}");
}

#[tokio::test(start_paused = true)]
async fn every_renew_moves_the_kill_instant_forward() {
    let (valid_tx, valid) = watch::channel(Instant::now() + Duration::from_secs(2));
    let lead = Leadership::detached_until(CancellationToken::new(), 1, valid);
    // The sender stays alive in the finished task's output, as a renewing
    // elector holds it, and no other timer is left: reaping the killed
    // child lets the paused clock jump to the next timer.
    let renewer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        valid_tx.send_replace(Instant::now() + Duration::from_secs(4));
        valid_tx
    });
    let (end, took, _) = run_stubborn(lead, None, true).await;
    drop(renewer);
    assert!(killed(&end), "{end:?}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "killed after {took:?}, not at the renewed validity (5 s)"
    );
}

#[tokio::test]
async fn an_electors_leadership_is_valid_until_its_last_renew_was_sent_plus_the_validity() {
    let store = MemoryLease::new("t", "default");
    let timings = Timings {
        lease_duration: Duration::from_secs(6),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_secs(1),
    };
    let config = ElectionConfig::new("t", "default", "me").with_timings(timings);
    let (elector, mut handles) = Elector::new(store.client(), config, Arc::new(()));
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(elector.run(shutdown.clone()));
    let lead = loop {
        if let Some(LeaderEvent::StartedLeading(l)) = handles.events.recv().await {
            break l;
        }
    };
    let first = lead.valid_until();
    let sent = handles.status.borrow().last_renew_at.unwrap();
    assert_eq!(first, sent + timings.validity());
    let mut validity = lead.validity();
    validity.changed().await.unwrap();
    let sent = handles.status.borrow().last_renew_at.unwrap();
    assert!(lead.valid_until() > first, "a renew moves it forward");
    assert_eq!(lead.valid_until(), sent + timings.validity());
    shutdown.cancel();
    drop(lead);
    run.await.unwrap();
}

/// Set in the copy of this test binary that runs as the watchdog.
const AS_WATCHDOG: &str = "LEASE_ELECTOR_TEST_AS_WATCHDOG";

/// Entry point of the copy that plays the watchdog process.
#[test]
fn watchdog_process_entry() {
    if std::env::var_os(AS_WATCHDOG).is_some() {
        watchdog::watchdog_main();
    }
}

fn start_test_watchdog() -> Watchdog {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "supervise::tests::watchdog_process_entry"])
        .arg("--nocapture")
        .env(AS_WATCHDOG, "1");
    Watchdog::start_with(cmd).expect("the watchdog starts")
}

/// The watchdog process kills a group whose deadline passed, while this
/// process does nothing about it (as if stopped).
#[test]
fn the_watchdog_process_kills_the_armed_group_when_its_deadline_passes() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wd = start_test_watchdog();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    rt.block_on(async { wd.arm(child.id(), Instant::now() + Duration::from_millis(300)) });
    let st = child.wait().unwrap();
    let took = t0.elapsed();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn the_watchdog_kills_at_once_when_its_pipe_closes_and_not_when_disarmed() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spawn = || {
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let (mut spared, mut doomed) = (spawn(), spawn());
    let wd = start_test_watchdog();
    let far = rt.block_on(async { Instant::now() + Duration::from_secs(60) });
    wd.arm(spared.id(), far);
    wd.disarm();
    wd.arm(doomed.id(), far);
    let t0 = std::time::Instant::now();
    drop(wd);
    let st = doomed.wait().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(spared.try_wait().unwrap().is_none(), "disarmed: spared");
    spared.kill().unwrap();
    spared.wait().unwrap();
}
