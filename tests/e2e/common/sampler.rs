//! Polls every daemon's `/leader` and `/metrics` every 50 ms for the whole
//! test, keeps a timestamped history per daemon, and records a violation when
//! two daemons of one Lease report leadership at the same sample.
//!
//! A sweep asks the daemons one after the other, a few milliseconds apart, so
//! a handover that happens *during* a sweep could look like two leaders. When
//! a sweep shows two, the one asked first is asked again: if it still leads,
//! it led both before and after the other one was seen leading, which is an
//! overlap. (A candidate cannot lose and regain a Lease within milliseconds
//! while another holds it.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::daemon::LeaderView;
use super::http::{self, MetricLine};
use super::wall_now;

pub const PERIOD: Duration = Duration::from_millis(50);

/// What one poll of one daemon returned.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the answers were in (monotonic and wall clock).
    pub at: Instant,
    pub wall: f64,
    /// Whether both endpoints answered.
    pub up: bool,
    /// `/leader` is_leader or `lease_elector_is_leader` 1.
    pub is_leader: bool,
    pub status: Option<LeaderView>,
    /// `lease_elector_is_leader`.
    pub metric_is_leader: Option<f64>,
    /// `lease_elector_renew_failures_total` by reason.
    pub failures: BTreeMap<String, f64>,
    /// `lease_elector_leadership_transitions_total{direction="lost"}`.
    pub lost: f64,
    pub last_renew_ts: f64,
}

impl Sample {
    pub fn holder(&self) -> Option<&str> {
        self.status.as_ref().and_then(|s| s.holder.as_deref())
    }
}

struct Target {
    name: String,
    group: String,
    port: u16,
    active: bool,
}

#[derive(Default)]
struct State {
    targets: Vec<Target>,
    history: Vec<Vec<Sample>>,
    violations: Vec<String>,
    sweeps: u64,
    handovers_mid_sweep: u64,
}

/// The sampling thread and what it has seen.
pub struct Sampler {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start() -> Sampler {
        Sampler::start_with(true)
    }

    /// A sampler that does not print the violations it records (for the
    /// harness's self-check, where they are expected).
    pub fn start_quiet() -> Sampler {
        Sampler::start_with(false)
    }

    fn start_with(loud: bool) -> Sampler {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("e2e-sampler".into())
            .spawn(move || run(st, sp, loud))
            .expect("spawn sampler");
        Sampler {
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a daemon; returns its index (the same as the scenario's).
    pub fn add(&self, name: &str, group: &str, port: u16) -> usize {
        let mut s = self.lock();
        s.targets.push(Target {
            name: name.into(),
            group: group.into(),
            port,
            active: true,
        });
        s.history.push(Vec::new());
        s.targets.len() - 1
    }

    /// Stops polling a daemon that has exited.
    pub fn retire(&self, index: usize) {
        self.lock().targets[index].active = false;
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn sweeps(&self) -> u64 {
        self.lock().sweeps
    }

    pub fn handovers_mid_sweep(&self) -> u64 {
        self.lock().handovers_mid_sweep
    }

    /// The latest sample of a daemon.
    pub fn latest(&self, index: usize) -> Option<Sample> {
        self.lock().history[index].last().cloned()
    }

    /// All samples of a daemon.
    pub fn history(&self, index: usize) -> Vec<Sample> {
        self.lock().history[index].clone()
    }

    /// The first sample taken after `since` that satisfies `pred`.
    pub fn first_after(
        &self,
        index: usize,
        since: Instant,
        pred: impl Fn(&Sample) -> bool,
    ) -> Option<Sample> {
        self.lock().history[index]
            .iter()
            .find(|s| s.at >= since && pred(s))
            .cloned()
    }

    /// The last sample taken before `before`.
    pub fn last_before(&self, index: usize, before: Instant) -> Option<Sample> {
        self.lock().history[index]
            .iter()
            .rev()
            .find(|s| s.at < before)
            .cloned()
    }

    /// A compact timeline of leadership flips, for failure reports.
    pub fn timeline(&self) -> String {
        let s = self.lock();
        let mut out = String::new();
        for (i, t) in s.targets.iter().enumerate() {
            out.push_str(&format!("  {} [{}]:", t.name, t.group));
            let mut last: Option<(bool, bool)> = None;
            for smp in &s.history[i] {
                let key = (smp.up, smp.is_leader);
                if last != Some(key) {
                    out.push_str(&format!(
                        " {:.3}={}",
                        smp.wall,
                        match key {
                            (false, _) => "down",
                            (true, true) => "LEADER",
                            (true, false) => "follower",
                        }
                    ));
                    last = Some(key);
                }
            }
            out.push('\n');
        }
        out
    }

    /// Stops the thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

fn poll(port: u16) -> Sample {
    let timeout = Duration::from_millis(400);
    let status = http::get(port, "/leader", timeout)
        .ok()
        .filter(|(c, _)| *c == 200)
        .and_then(|(_, b)| serde_json::from_str::<LeaderView>(&b).ok());
    let metrics: Option<Vec<MetricLine>> = http::get(port, "/metrics", timeout)
        .ok()
        .filter(|(c, _)| *c == 200)
        .map(|(_, b)| http::parse_metrics(&b));
    let m = metrics.as_deref().unwrap_or(&[]);
    let metric_is_leader = http::metric(m, "lease_elector_is_leader", &[]);
    let mut failures = BTreeMap::new();
    for line in m
        .iter()
        .filter(|l| l.name == "lease_elector_renew_failures_total")
    {
        if let Some(r) = line.label("reason") {
            failures.insert(r.to_string(), line.value);
        }
    }
    let transitions = |d: &str| {
        http::metric(
            m,
            "lease_elector_leadership_transitions_total",
            &[("direction", d)],
        )
        .unwrap_or(0.0)
    };
    Sample {
        at: Instant::now(),
        wall: wall_now(),
        up: status.is_some() && metrics.is_some(),
        is_leader: status.as_ref().is_some_and(|s| s.is_leader) || metric_is_leader == Some(1.0),
        metric_is_leader,
        failures,
        lost: transitions("lost"),
        last_renew_ts: http::metric(m, "lease_elector_last_renew_timestamp_seconds", &[])
            .unwrap_or(0.0),
        status,
    }
}

/// (index, name, group, port, sample)
type Polled = (usize, String, String, u16, Sample);

fn run(state: Arc<Mutex<State>>, stop: Arc<AtomicBool>, loud: bool) {
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let targets: Vec<(usize, String, String, u16)> = {
            let s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.targets
                .iter()
                .enumerate()
                .filter(|(_, t)| t.active)
                .map(|(i, t)| (i, t.name.clone(), t.group.clone(), t.port))
                .collect()
        };
        let samples: Vec<Polled> = targets
            .into_iter()
            .map(|(i, n, g, p)| (i, n, g, p, poll(p)))
            .collect();

        // Leaders per Lease, in the order they were asked.
        let mut groups: BTreeMap<&str, Vec<&Polled>> = BTreeMap::new();
        for entry in &samples {
            if entry.4.is_leader {
                groups.entry(entry.2.as_str()).or_default().push(entry);
            }
        }
        let mut violations = Vec::new();
        let mut handovers = 0;
        for (group, leaders) in &groups {
            if leaders.len() < 2 {
                continue;
            }
            let first = leaders[0];
            let again = poll(first.3);
            if again.is_leader {
                let names: Vec<String> = leaders
                    .iter()
                    .map(|e| {
                        format!(
                            "{} (is_leader {:?}, metric {:?}, holder {:?}, at {:.3})",
                            e.1,
                            e.4.status.as_ref().map(|s| s.is_leader),
                            e.4.metric_is_leader,
                            e.4.holder(),
                            e.4.wall
                        )
                    })
                    .collect();
                violations.push(format!(
                    "two leaders of Lease {group} at one sample: {}; {} still leads at {:.3}",
                    names.join(", "),
                    first.1,
                    again.wall
                ));
            } else {
                handovers += 1;
            }
        }

        {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            for (i, _, _, _, smp) in samples {
                s.history[i].push(smp);
            }
            if loud {
                for v in &violations {
                    eprintln!("e2e sampler: VIOLATION: {v}");
                }
            }
            s.violations.extend(violations);
            s.handovers_mid_sweep += handovers;
            s.sweeps += 1;
        }

        next += PERIOD;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}
