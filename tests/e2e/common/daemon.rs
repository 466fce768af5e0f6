//! One `lease-elector` process under test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::http::{self, MetricLine};
use super::{die_with_parent, free_port, signal, tail};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lease-elector");

/// `/leader` as the daemon reports it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LeaderView {
    pub holder: Option<String>,
    pub is_leader: bool,
    pub last_renew: Option<String>,
    pub child: Option<ChildView>,
}

/// The `child` object of `/leader` in `lease-elector run`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChildView {
    pub state: String,
    pub pid: Option<u32>,
    pub starts: u64,
    pub last_exit: Option<String>,
    pub fencing_token: Option<i64>,
}

/// How to start one daemon.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    pub identity: String,
    pub lease: String,
    pub kubeconfig: PathBuf,
    /// Settings flags beyond the common ones.
    pub extra_args: Vec<String>,
    /// `Some(cmd)`: `lease-elector run ... -- cmd`.
    pub run: Option<Vec<String>>,
    /// Extra environment (never `LEASE_ELECTOR_*`).
    pub env: Vec<(String, String)>,
}

impl DaemonSpec {
    pub fn new(identity: &str, lease: &str, kubeconfig: &Path) -> DaemonSpec {
        DaemonSpec {
            identity: identity.into(),
            lease: lease.into(),
            kubeconfig: kubeconfig.into(),
            extra_args: Vec::new(),
            run: None,
            env: Vec::new(),
        }
    }
}

/// A running (or finished) daemon.
pub struct Daemon {
    pub spec: DaemonSpec,
    pub port: u16,
    pub pid: u32,
    pub log: PathBuf,
    /// Wall time just before the process was spawned.
    pub spawned_wall: f64,
    pub spawned_at: Instant,
    child: Child,
    exit: Option<ExitStatus>,
    /// Wall time of the end: just before SIGKILL, or when the exit was seen.
    pub ended_wall: Option<f64>,
}

impl Daemon {
    /// Spawns the daemon with a clean environment in `dir` and waits until
    /// its HTTP endpoint answers. Retries with another port when the chosen
    /// one was taken in between.
    pub fn spawn(spec: DaemonSpec, dir: &Path) -> Daemon {
        for attempt in 0..3 {
            let port = free_port();
            let log = dir.join(format!("{}.{attempt}.log", spec.identity));
            let mut cmd = Command::new(BIN);
            if spec.run.is_some() {
                cmd.arg("run");
            }
            cmd.args([
                "--lease",
                &spec.lease,
                "--namespace",
                "default",
                "--identity",
                &spec.identity,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--lease-duration",
                "6s",
                "--renew-deadline",
                "3s",
                "--retry-period",
                "1s",
                "--log-format",
                "json",
                "--log-level",
                "info",
            ]);
            cmd.args(&spec.extra_args);
            if let Some(run) = &spec.run {
                cmd.arg("--").args(run);
            }
            // The daemon rejects unknown LEASE_ELECTOR_* variables, and
            // several others change its defaults: start from a clean slate.
            cmd.env_clear();
            for key in ["PATH", "HOME", "TMPDIR", "LANG", "TZ"] {
                if let Some(v) = std::env::var_os(key) {
                    cmd.env(key, v);
                }
            }
            cmd.env("KUBECONFIG", &spec.kubeconfig);
            for (k, v) in &spec.env {
                assert!(
                    !k.starts_with("LEASE_ELECTOR_"),
                    "{k} would be read as a setting"
                );
                cmd.env(k, v);
            }
            let stderr = std::fs::File::create(&log).expect("create daemon log");
            let stdout = stderr.try_clone().expect("clone log handle");
            cmd.current_dir(dir)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr);
            die_with_parent(&mut cmd);
            let spawned_wall = super::wall_now();
            let spawned_at = Instant::now();
            let child = cmd.spawn().expect("spawn lease-elector");
            let mut d = Daemon {
                pid: child.id(),
                spec: spec.clone(),
                port,
                log,
                spawned_wall,
                spawned_at,
                child,
                exit: None,
                ended_wall: None,
            };
            let start = Instant::now();
            loop {
                if d.leader().is_some() {
                    return d;
                }
                if let Some(st) = d.try_exit() {
                    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                    if log.contains("cannot listen") && attempt < 2 {
                        break;
                    }
                    panic!(
                        "{} exited at start ({st}); log:\n{}",
                        spec.identity,
                        tail(&d.log, 40)
                    );
                }
                if start.elapsed() > Duration::from_secs(30) {
                    panic!(
                        "{} did not serve /leader within 30s; log:\n{}",
                        spec.identity,
                        tail(&d.log, 40)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        unreachable!("three ports in a row were taken")
    }

    pub fn identity(&self) -> &str {
        &self.spec.identity
    }

    /// `/leader`, or `None` when it does not answer.
    pub fn leader(&self) -> Option<LeaderView> {
        let (code, body) = http::get(self.port, "/leader", Duration::from_millis(500)).ok()?;
        if code != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// `/leader`, panicking when it does not answer.
    pub fn leader_now(&self) -> LeaderView {
        self.leader()
            .unwrap_or_else(|| panic!("{} does not answer /leader", self.identity()))
    }

    /// `/metrics` parsed, or `None`.
    pub fn metrics(&self) -> Option<Vec<MetricLine>> {
        let (code, body) = http::get(self.port, "/metrics", Duration::from_millis(500)).ok()?;
        (code == 200).then(|| http::parse_metrics(&body))
    }

    /// One metric value (labels must all match).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        http::metric(&self.metrics()?, name, labels)
    }

    pub fn sigterm(&self) {
        signal(self.pid, libc::SIGTERM);
    }

    /// SIGKILL and reap.
    pub fn sigkill(&mut self) {
        if self.exit.is_none() {
            self.ended_wall.get_or_insert_with(super::wall_now);
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
            if self.exit.is_some() {
                self.ended_wall.get_or_insert_with(super::wall_now);
            }
        }
        self.exit
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Waits for the process to end; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The whole log (JSON lines).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines whose message contains `needle`.
    pub fn log_events(&self, needle: &str) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
            .collect()
    }

    /// The wall time of the first log line with exactly this message at or
    /// after `after` (Unix seconds).
    pub fn logged_at(&self, message: &str, after: f64) -> Option<f64> {
        self.log_events(message)
            .iter()
            .filter(|v| v["message"].as_str() == Some(message))
            .filter_map(|v| v["timestamp"].as_str().map(super::parse_time))
            .find(|t| *t >= after)
    }

    /// This daemon's terms as leader from its log: (became leader, stopped
    /// leading) wall times; a term still open ends when the process ended,
    /// or never (`f64::INFINITY`) while it runs.
    pub fn leader_terms(&self) -> Vec<(f64, f64)> {
        let mut terms = Vec::new();
        let mut open: Option<f64> = None;
        for line in self.log_text().lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(msg), Some(ts)) = (v["message"].as_str(), v["timestamp"].as_str()) else {
                continue;
            };
            match msg {
                "became leader" => open = Some(super::parse_time(ts)),
                "stopped leading" => {
                    if let Some(start) = open.take() {
                        terms.push((start, super::parse_time(ts)));
                    }
                }
                _ => {}
            }
        }
        if let Some(start) = open {
            terms.push((start, self.ended_wall.unwrap_or(f64::INFINITY)));
        }
        terms
    }

    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.sigkill();
    }
}
