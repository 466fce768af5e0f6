//! The child's life cycle against real processes (small shell scripts).

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
            stop_signal: "SIGTERM".into(),
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
    let child = tokio::spawn(async move { run_child(&s, &lead, &metrics, &status).await });
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
    let child = tokio::spawn(async move { run_child(&s, &lead, &m, &status).await });
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
    let child = tokio::spawn(async move { run_child(&s, &lead, &metrics, &status).await });
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
    let end = run_child(&s, &lead, &metrics, &status).await;
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
    let mut elector = Elector::new(store.client(), config, metrics.clone());
    let shutdown = CancellationToken::new();
    let sup = tokio::spawn(supervise(
        elector.events(),
        spec(&script, Duration::from_secs(1)),
        metrics.clone(),
        watch::Sender::new(ChildStatus::default()),
        elector.resigner(),
        shutdown.clone(),
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
    let mut elector = Elector::new(store.client(), config, metrics.clone());
    let shutdown = CancellationToken::new();
    let mut s = spec("exit 7", Duration::from_secs(1));
    s.run.on_child_exit = OnChildExit::Exit;
    let sup = tokio::spawn(supervise(
        elector.events(),
        s,
        metrics.clone(),
        watch::Sender::new(ChildStatus::default()),
        elector.resigner(),
        shutdown.clone(),
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
