//! A watchdog process that kills the child when its leadership's validity
//! passes, even while lease-elector itself is stopped.
//!
//! The child runs in its own process group, so a SIGSTOP (or ptrace, or a
//! stall under memory pressure) of lease-elector alone leaves it running, and
//! a stalled lease-elector cannot stop it. The watchdog is a second, tiny
//! process (`lease-elector` re-executed through `/proc/self/exe` with a hidden
//! subcommand, so it works in a `FROM scratch` image with a read-only root, as
//! any user, without capabilities). lease-elector feeds it over a pipe on its
//! stdin:
//!
//! - `arm PGID DEADLINE_NS`: SIGKILL process group PGID when CLOCK_MONOTONIC
//!   (shared by all processes of the machine) reaches DEADLINE_NS, unless a
//!   newer line arrives first (every successful renew moves the deadline);
//! - `disarm`: the child is gone, nothing to kill.
//!
//! When the pipe closes (lease-elector died) an armed watchdog kills at once,
//! then exits. It lives in its own process group, so a signal to
//! lease-elector's group does not stop it either.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use tokio::time::Instant;
use tracing::warn;

/// The hidden subcommand that runs [`watchdog_main`].
pub const SUBCOMMAND: &str = "__watchdog";

/// lease-elector's side of the watchdog: a pipe to it, or nothing.
#[derive(Debug, Default)]
pub struct Watchdog {
    inner: Mutex<Option<(Child, ChildStdin)>>,
}

impl Watchdog {
    /// No watchdog: only the supervisor's own escalation.
    pub fn none() -> Self {
        Watchdog::default()
    }

    /// Starts this very program again as the watchdog.
    pub fn start() -> std::io::Result<Self> {
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(SUBCOMMAND).env_clear();
        Self::start_with(cmd)
    }

    /// Starts `cmd` (a program that runs [`watchdog_main`]) as the watchdog.
    pub fn start_with(mut cmd: Command) -> std::io::Result<Self> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().expect("stdin was piped");
        Ok(Watchdog {
            inner: Mutex::new(Some((child, stdin))),
        })
    }

    /// The watchdog's pid, when one runs.
    pub fn pid(&self) -> Option<u32> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.as_ref().map(|(c, _)| c.id())
    }

    /// Kill process group `pgid` at `until` unless told otherwise before.
    pub fn arm(&self, pgid: u32, until: Instant) {
        let left = until.saturating_duration_since(Instant::now());
        let deadline = monotonic_ns().saturating_add(left.as_nanos() as u64);
        self.send(&format!("arm {pgid} {deadline}\n"));
    }

    /// The child is gone.
    pub fn disarm(&self) {
        self.send("disarm\n");
    }

    fn send(&self, line: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // A few bytes into a pipe the watchdog drains: does not block.
        if let Some((_, pipe)) = inner.as_mut()
            && let Err(e) = pipe.write_all(line.as_bytes())
        {
            // The supervisor's own escalation still holds.
            warn!(error = %e, "the watchdog is gone; a stalled lease-elector can no longer stop its child");
            *inner = None;
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((mut child, pipe)) = inner.take() {
            drop(pipe);
            let _ = child.wait();
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock `std::time::Instant` and tokio
/// use on Linux, shared across processes).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What the watchdog is told to guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Armed {
    pgid: i32,
    deadline_ns: u64,
}

/// The watchdog process: never returns. Reads lines from stdin, kills the
/// armed group when its deadline passes or stdin closes.
pub fn watchdog_main() -> ! {
    let mut armed: Option<Armed> = None;
    let mut pending = Vec::new();
    loop {
        let now = monotonic_ns();
        if let Some(a) = armed
            && now >= a.deadline_ns
        {
            kill(a);
            armed = None;
        }
        let wait_ms = armed.map_or(-1, |a| (a.deadline_ns - now).div_ceil(1_000_000) as i32);
        let mut fds = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd we own.
        if unsafe { libc::poll(&mut fds, 1, wait_ms.max(-1)) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 512];
        // SAFETY: reads into our buffer, at most its length.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            // lease-elector is gone: nothing will ever stop the child now.
            if let Some(a) = armed {
                kill(a);
            }
            std::process::exit(0);
        }
        pending.extend_from_slice(&buf[..n as usize]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            armed = apply(armed, &String::from_utf8_lossy(&line));
        }
    }
}

/// The state after one line; unreadable lines change nothing.
fn apply(armed: Option<Armed>, line: &str) -> Option<Armed> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("disarm"), None, None) => None,
        (Some("arm"), Some(pgid), Some(deadline)) => match (pgid.parse(), deadline.parse()) {
            (Ok(pgid), Ok(deadline_ns)) if pgid > 1 => Some(Armed { pgid, deadline_ns }),
            _ => armed,
        },
        _ => armed,
    }
}

fn kill(a: Armed) {
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(a.pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::{Armed, apply};

    #[test]
    fn arm_lines_set_the_group_and_deadline_and_disarm_clears_them() {
        let a = apply(None, "arm 42 1000\n");
        assert_eq!(
            a,
            Some(Armed {
                pgid: 42,
                deadline_ns: 1000
            })
        );
        assert_eq!(apply(a, "disarm\n"), None);
    }

    #[test]
    fn unreadable_lines_and_groups_0_and_1_change_nothing() {
        let a = Some(Armed {
            pgid: 42,
            deadline_ns: 1000,
        });
        assert_eq!(apply(a, "arm x 5\n"), a);
        assert_eq!(apply(a, "arm 1 5\n"), a);
        assert_eq!(apply(a, "arm 0 5\n"), a);
        assert_eq!(apply(a, "hello\n"), a);
    }
}
