//! Shared harness of the end-to-end tests: the real kube-apiserver fixture,
//! `lease-elector` daemons as separate processes, a sampler that polls every
//! daemon's `/leader` and `/metrics` every 50 ms and flags two leaders of one
//! Lease at the same sample, a TCP proxy that can cut a daemon off the API
//! server, and kubectl helpers.
//!
//! Fixture discovery: `$K8S_FIXTURE_BIN` or `<repo>/target/k8s-fixture/bin`.
//! Without it the tests print how to build it and pass, unless
//! `E2E_REQUIRED=1` is set (CI), which turns a missing fixture into a failure.
//! `E2E_KEEP=1` keeps every temporary directory (fixture data, daemon logs).

pub mod daemon;
pub mod fixture;
pub mod http;
pub mod kubectl;
pub mod proxy;
pub mod sampler;
pub mod scenario;
pub mod sse;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use daemon::DaemonSpec;
pub use fixture::{Fixture, shared_fixture};
pub use proxy::Proxy;
pub use sampler::{Sample, Sampler};
pub use scenario::Scenario;

/// The seed's timings, as every daemon of these tests runs them.
pub const LEASE_DURATION: Duration = Duration::from_secs(6);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(3);
pub const RETRY_PERIOD: Duration = Duration::from_secs(1);

/// Tolerance for comparing wall-clock stamps taken by different processes of
/// this machine (microsecond MicroTimes, rounding, clock-rate noise).
pub const CLOCK_TOLERANCE: f64 = 0.005;

/// Seconds since the Unix epoch, now.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// An RFC 3339 time ("2026-01-02T03:04:05.123456Z") as Unix seconds.
pub fn parse_time(s: &str) -> f64 {
    let ts: jiff::Timestamp = s
        .parse()
        .unwrap_or_else(|e| panic!("not an RFC 3339 time: {s:?}: {e}"));
    ts.as_nanosecond() as f64 / 1e9
}

/// An RFC 3339 MicroTime for `secs` Unix seconds, as a Lease carries it.
pub fn micro_time(secs: f64) -> String {
    let micros = (secs * 1e6) as i64;
    let whole = jiff::Timestamp::from_second(micros.div_euclid(1_000_000)).expect("valid time");
    let text = whole.to_string(); // "2026-01-02T03:04:05Z"
    format!(
        "{}.{:06}Z",
        text.trim_end_matches('Z'),
        micros.rem_euclid(1_000_000)
    )
}

/// Whether a missing fixture must fail the tests (CI sets `E2E_REQUIRED=1`).
pub fn required() -> bool {
    std::env::var("E2E_REQUIRED").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Set when a scenario of this test binary failed: the shared fixture's
/// directory (API server and etcd logs) is then kept too.
pub static ANY_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether temporary directories are kept (`E2E_KEEP=1`, or after a failure).
pub fn keep_dirs() -> bool {
    ANY_FAILED.load(std::sync::atomic::Ordering::SeqCst)
        || std::env::var("E2E_KEEP").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The directory holding `k8s-fixture`, `kube-apiserver` and `etcd`.
pub fn fixture_bin_dir() -> PathBuf {
    match std::env::var_os("K8S_FIXTURE_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/k8s-fixture/bin"),
    }
}

/// `None` (with a printed reason) when the e2e prerequisites are missing and
/// the tests should skip; panics instead when `E2E_REQUIRED` is set.
pub fn prerequisites() -> Option<PathBuf> {
    let dir = fixture_bin_dir();
    let mut missing = Vec::new();
    for bin in ["k8s-fixture", "kube-apiserver", "etcd"] {
        if !dir.join(bin).is_file() {
            missing.push(dir.join(bin).display().to_string());
        }
    }
    if which("kubectl").is_none() {
        missing.push("kubectl on PATH".into());
    }
    if missing.is_empty() {
        return Some(dir);
    }
    let how = "build the API server fixture with tests/k8s-fixture/build.sh or run scripts/test.sh";
    let what = format!(
        "missing: {}; set K8S_FIXTURE_BIN to use another directory",
        missing.join(", ")
    );
    if required() {
        panic!("E2E_REQUIRED is set but the end-to-end tests cannot run: {how} ({what})");
    }
    // Once per test binary, straight to stderr so that it shows even when
    // libtest captures the output of passing tests.
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipping the end-to-end tests: {how} ({what})"
        );
    });
    None
}

/// The full path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout`
/// with `what` and the last value `describe` gives.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary directory that is kept when the test fails (or with E2E_KEEP=1).
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    pub fn new(prefix: &str) -> TestDir {
        TestDir(Some(
            tempfile::Builder::new()
                .prefix(&format!("lease-elector-e2e-{prefix}-"))
                .tempdir()
                .expect("temp dir"),
        ))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(tmp) = self.0.take()
            && (std::thread::panicking() || keep_dirs())
        {
            eprintln!("e2e: kept {}", tmp.keep().display());
        }
    }
}

/// The last `n` lines of a text file (for failure reports).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].join("\n")
}

/// A free TCP port on 127.0.0.1 (free at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Arranges for the child to get SIGKILL when the thread that spawned it ends
/// (so nothing outlives a test process that is killed).
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `signal` to `pid` (ignoring a process that is already gone).
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Whether a process with this pid still runs (zombies count as gone).
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}
