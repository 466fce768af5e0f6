//! Zombie reaping for when lease-elector is PID 1 of a container.
//!
//! The kernel reparents every orphaned process of a PID namespace to its
//! PID 1, which must collect their exit status or they stay zombies. The
//! child we supervise is waited for by tokio; this reaps only the others:
//! exited processes whose parent is us and that are not a process-group
//! leader (every child we start leads its own group, so tokio's wait for it
//! can never lose the race to this reaper).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How often to look for zombies when no SIGCHLD arrives.
const SWEEP: Duration = Duration::from_secs(5);

/// Reaps orphaned zombies until `shutdown`, if this process is PID 1;
/// returns at once otherwise.
pub async fn reap_orphans_if_pid1(shutdown: CancellationToken) {
    if std::process::id() != 1 {
        return;
    }
    let mut sigchld = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) {
        Ok(s) => Some(s),
        Err(e) => {
            debug!(error = %e, "no SIGCHLD stream; sweeping for zombies on a timer");
            None
        }
    };
    loop {
        let reaped = reap_once();
        if reaped > 0 {
            debug!(reaped, "reaped orphaned processes");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP) => {}
            _ = async { match sigchld.as_mut() {
                Some(s) => { s.recv().await; }
                None => std::future::pending().await,
            } } => {}
        }
    }
}

/// Collects every zombie child of ours that is not a group leader; returns
/// how many.
pub fn reap_once() -> usize {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| is_orphaned_zombie(pid, me))
        .filter(|&pid| {
            // SAFETY: waitpid on a specific pid with WNOHANG has no memory
            // preconditions; the status pointer may be null.
            unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) > 0 }
        })
        .count()
}

/// Zombie, child of `parent`, and not the leader of its own process group.
fn is_orphaned_zombie(pid: u32, parent: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    parse_stat(&stat)
        .is_some_and(|(state, ppid, pgrp)| state == 'Z' && ppid == parent && pgrp != pid)
}

/// (state, ppid, pgrp) from a /proc/PID/stat line. The command name is in
/// parentheses and may itself contain spaces or parentheses.
fn parse_stat(stat: &str) -> Option<(char, u32, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

#[cfg(test)]
mod tests {
    use super::parse_stat;

    #[test]
    fn stat_lines_are_parsed_past_a_command_name_with_spaces_and_parentheses() {
        let line = "42 (we(ird) name) Z 1 40 40 0 -1 4194560 0 0";
        assert_eq!(parse_stat(line), Some(('Z', 1, 40)));
    }
}
