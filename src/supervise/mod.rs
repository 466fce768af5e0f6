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

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{OnChildExit, RunSettings};
use crate::election::{LeaderEvent, Leadership, Resigner};
use crate::metrics::Metrics;

pub mod reaper;

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

/// Parses "SIGTERM", "TERM" or "term" into a signal number.
pub fn parse_signal(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match bare {
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        _ => return None,
    })
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
) -> Option<i32> {
    let mut backoff = spec.run.restart_backoff;
    while let Some(event) = events.recv().await {
        let LeaderEvent::StartedLeading(leadership) = event else {
            continue;
        };
        if leadership.token.is_cancelled() {
            continue;
        }
        let end = run_child(&spec, &leadership, &metrics, &status).await;
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
) -> ChildEnd {
    let Some((program, args)) = spec.command.split_first() else {
        return ChildEnd::SpawnFailed(std::io::Error::other("empty command"));
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
    let mut child = match cmd.spawn() {
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

    let end = tokio::select! {
        st = child.wait() => match st {
            Ok(st) => ChildEnd::Exited(st, started.elapsed()),
            Err(e) => ChildEnd::SpawnFailed(e),
        },
        _ = leadership.token.cancelled() => {
            status.send_modify(|s| s.state = "stopping");
            ChildEnd::Stopped(stop(&mut child, &spec.run).await)
        }
    };
    // Whatever the child left behind in its group goes too: no workload may
    // outlive leadership.
    if let Some(pid) = pid {
        kill_group(pid, libc::SIGKILL);
    }
    let st = match &end {
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
    end
}

/// Stop signal to the group, SIGKILL after the grace period.
async fn stop(child: &mut Child, run: &RunSettings) -> ExitStatus {
    let signal = parse_signal(&run.stop_signal).unwrap_or(libc::SIGTERM);
    if let Some(pid) = child.id() {
        info!(pid, signal = %run.stop_signal, "leadership ended; stopping the child");
        kill_group(pid, signal);
    }
    match tokio::time::timeout(run.grace_period, child.wait()).await {
        Ok(Ok(st)) => st,
        _ => {
            if let Some(pid) = child.id() {
                warn!(pid, grace = ?run.grace_period, "child still running after the grace period; killing it");
                kill_group(pid, libc::SIGKILL);
            }
            child
                .wait()
                .await
                .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL))
        }
    }
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
