//! `lease-elector run -- CMD`: a child process that runs only while leader.
//!
//! The child is started when leadership is won and stopped the moment it ends.
//! Leadership ends at the latest renew_deadline after the last successful renew
//! was sent; the stop signal goes to the child's whole process group, SIGKILL
//! follows after grace_period, and the configuration is refused unless
//! renew_deadline + grace_period < lease_duration. So the child is gone before
//! any other candidate can take the Lease and start its own.
//!
//! The child runs in its own process group with a parent-death signal, so it
//! does not outlive a lease-elector that is killed outright.
//!
//! A cancellation can come late: the token is cancelled when the elector's
//! task runs, and a stalled lease-elector (SIGSTOP of it alone, ptrace,
//! memory pressure, a blocked log write) runs it late or not at all. So the
//! child's group is SIGKILLed by the leadership's validity instant
//! ([`Leadership::valid_until`]) whatever happens: the grace period ends at
//! min(cancellation + grace_period, valid_until), at once when that has
//! passed, and a [`watchdog`] process that a stop of lease-elector does not
//! stop kills it at that instant too. Kill first, log after.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::election::{LeaderEvent, Leadership, Resigner};
use crate::metrics::Metrics;

pub mod reaper;
mod settings;
pub mod watchdog;

pub use settings::{OnChildExit, RunSettings, StopSignal, parse_signal};
pub use watchdog::Watchdog;

/// Restart backoff never grows beyond this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A child that ran at least this long resets the restart backoff.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// The child as `/leader` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChildStatus {
    /// `idle`, `running` or `stopping`.
    pub state: &'static str,
    /// Process id while running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Children started so far.
    pub starts: u64,
    /// How the last child ended ("exit code 0", "signal 15").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Fencing token handed to the current or last child.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<i32>,
}

/// What the child is and how to treat it.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Environment handed to the child on top of ours.
    pub env: Vec<(String, String)>,
    /// Signal, grace period, exit policy and backoff.
    pub run: RunSettings,
}

/// How one child run ended.
#[derive(Debug)]
pub enum ChildEnd {
    /// Leadership ended and the child was stopped.
    Stopped(ExitStatus),
    /// The child exited by itself while we still led.
    Exited(ExitStatus, Duration),
    /// The child could not be started.
    SpawnFailed(std::io::Error),
}

/// The exit code a shell would report for `status`.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

fn outcome(status: ExitStatus) -> &'static str {
    match status.code() {
        Some(0) => "success",
        Some(_) => "failure",
        None => "signaled",
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

/// Runs children while leadership events say so. Returns the exit code to end
/// the process with when `on_child_exit = "exit"` fired; `None` when the
/// election ended first.
pub async fn supervise(
    mut events: mpsc::UnboundedReceiver<LeaderEvent>,
    spec: ChildSpec,
    metrics: Arc<Metrics>,
    status: watch::Sender<ChildStatus>,
    resigner: Resigner,
    shutdown: CancellationToken,
    watchdog: Watchdog,
) -> Option<i32> {
    let mut backoff = spec.run.restart_backoff;
    while let Some(event) = events.recv().await {
        let LeaderEvent::StartedLeading(leadership) = event else {
            continue;
        };
        if leadership.token.is_cancelled() {
            continue;
        }
        let end = run_child(&spec, &leadership, &metrics, &status, &watchdog).await;
        // Dropping the leadership tells the elector the workload is gone,
        // which a release waits for.
        drop(leadership);
        let (exit, ran_for) = match end {
            ChildEnd::Stopped(_) => continue,
            ChildEnd::Exited(st, ran_for) => (exit_code(st), ran_for),
            ChildEnd::SpawnFailed(e) => {
                let hint = spawn_failure_hint(&spec.command, &e);
                error!(command = ?spec.command, error = %e, "cannot start the child: {hint}");
                (127, Duration::ZERO)
            }
        };
        match spec.run.on_child_exit {
            OnChildExit::Exit => {
                info!(
                    exit,
                    "child exited; releasing the Lease and exiting with its code"
                );
                shutdown.cancel();
                return Some(exit);
            }
            OnChildExit::Recompete => {
                if ran_for >= STABLE_RUN {
                    backoff = spec.run.restart_backoff;
                }
                info!(
                    exit,
                    ?backoff,
                    "child exited; releasing the Lease and competing again after a pause"
                );
                resigner.resign(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    None
}

/// Starts the child and keeps it until it exits or leadership ends.
pub async fn run_child(
    spec: &ChildSpec,
    leadership: &Leadership,
    metrics: &Metrics,
    status: &watch::Sender<ChildStatus>,
    watchdog: &Watchdog,
) -> ChildEnd {
    let mut child = match spawn(spec, leadership) {
        Ok(c) => c,
        Err(e) => return ChildEnd::SpawnFailed(e),
    };
    let pid = child.id();
    let started = Instant::now();
    info!(pid, fencing_token = leadership.fencing_token, command = ?spec.command, "child started");
    metrics.child_starts.inc();
    metrics.child_running.set(1);
    status.send_modify(|s| {
        s.state = "running";
        s.pid = pid;
        s.starts += 1;
        s.fencing_token = Some(leadership.fencing_token);
    });
    let end = keep(&mut child, spec, leadership, status, watchdog, started).await;
    // Whatever the child left behind in its group goes too: no workload may
    // outlive leadership.
    if let Some(pid) = pid {
        kill_group(pid, libc::SIGKILL);
    }
    watchdog.disarm();
    ended(pid, &end, metrics, status);
    end
}

/// Keeps the child until it exits, leadership ends, or the leadership's
/// validity passes (then SIGKILL at once, whether cancelled or not).
async fn keep(
    child: &mut Child,
    spec: &ChildSpec,
    leadership: &Leadership,
    status: &watch::Sender<ChildStatus>,
    watchdog: &Watchdog,
    started: Instant,
) -> ChildEnd {
    let mut validity = leadership.validity();
    loop {
        let valid_until = *validity.borrow_and_update();
        if let Some(pid) = child.id() {
            watchdog.arm(pid, valid_until);
        }
        tokio::select! {
            biased;
            _ = sleep_until(valid_until) => {
                status.send_modify(|s| s.state = "stopping");
                return ChildEnd::Stopped(kill_now(child, "the leadership's validity has passed").await);
            }
            _ = leadership.token.cancelled() => {
                status.send_modify(|s| s.state = "stopping");
                return ChildEnd::Stopped(stop(child, &spec.run, valid_until).await);
            }
            st = child.wait() => return match st {
                Ok(st) => ChildEnd::Exited(st, started.elapsed()),
                Err(e) => ChildEnd::SpawnFailed(e),
            },
            Ok(()) = validity.changed() => {}
        }
    }
}

/// The child in its own process group, with the leadership's fencing token.
fn spawn(spec: &ChildSpec, leadership: &Leadership) -> std::io::Result<Child> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(std::io::Error::other("empty command"));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(spec.env.iter().cloned())
        .env(
            "LEASE_ELECTOR_FENCING_TOKEN",
            leadership.fencing_token.to_string(),
        )
        .stdin(Stdio::null())
        .process_group(0);
    guard_against_parent_death(&mut cmd);
    cmd.spawn()
}

/// Reports how the child ended.
fn ended(pid: Option<u32>, end: &ChildEnd, metrics: &Metrics, status: &watch::Sender<ChildStatus>) {
    let st = match end {
        ChildEnd::Stopped(st) | ChildEnd::Exited(st, _) => Some(*st),
        ChildEnd::SpawnFailed(_) => None,
    };
    metrics.child_running.set(0);
    if let Some(st) = st {
        metrics.child_exits.with_label_values(&[outcome(st)]).inc();
        info!(pid, status = %describe(st), "child ended");
    }
    status.send_modify(|s| {
        s.state = "idle";
        s.pid = None;
        s.last_exit = st.map(describe);
    });
}

/// Stop signal to the group, SIGKILL after the grace period or at
/// `valid_until`, whichever comes first (at once when it has passed).
async fn stop(child: &mut Child, run: &RunSettings, valid_until: Instant) -> ExitStatus {
    let grace_end = (Instant::now() + run.grace_period).min(valid_until);
    if grace_end <= Instant::now() {
        return kill_now(child, "leadership ended after its validity had passed").await;
    }
    let signal = run.stop_signal.number();
    if let Some(pid) = child.id() {
        kill_group(pid, signal);
        info!(pid, signal = %run.stop_signal, "leadership ended; stopping the child");
    }
    match timeout_at(grace_end, child.wait()).await {
        Ok(Ok(st)) => st,
        _ => {
            kill_now(
                child,
                "child still running at the end of the grace period or the leadership's validity",
            )
            .await
        }
    }
}

/// SIGKILL to the child's group, then the log line, then its exit status.
async fn kill_now(child: &mut Child, why: &str) -> ExitStatus {
    if let Some(pid) = child.id() {
        kill_group(pid, libc::SIGKILL);
        warn!(pid, "{why}; killed the child");
    }
    child
        .wait()
        .await
        .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL))
}

/// Asks the kernel to SIGKILL the child when this process dies, so the
/// workload cannot outlive a lease-elector that is killed outright.
///
/// The parent may die between fork and the `prctl`, so the child checks that
/// its parent is still the process that forked it. It compares against our own
/// pid recorded before the fork, not against 1: as PID 1 of a container our
/// child's parent *is* pid 1, and "parent is 1" does not mean "orphaned".
/// (PDEATHSIG follows the forking *thread*; tokio spawns from a worker thread,
/// which lives as long as the runtime.)
fn guard_against_parent_death(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs
    // between fork and exec, and the closure only copies `parent`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // Only a raw OS error survives the trip back from the child.
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Words a user can act on for a child that could not be started.
pub fn spawn_failure_hint(command: &[String], error: &std::io::Error) -> String {
    let program = command.first().map(String::as_str).unwrap_or("");
    match error.kind() {
        _ if program.is_empty() => {
            "the run command is empty: give it after `--`, or set workload.command".into()
        }
        std::io::ErrorKind::NotFound => format!(
            "{program:?} was not found: the command must exist in the image (or on PATH) where lease-elector runs"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "{program:?} is not executable by this user: check its mode and that the file system allows exec"
        ),
        _ => format!("starting {program:?} failed: {error}"),
    }
}

fn kill_group(pid: u32, signal: i32) {
    // SAFETY: killpg has no memory-safety preconditions; ESRCH (group gone)
    // is expected and ignored.
    unsafe {
        libc::killpg(pid as i32, signal);
    }
}

#[cfg(test)]
mod tests;
