//! The seeded fault schedule of one simulation run: drawn from a seed and a
//! [`Profile`], printed when a run fails, and made simpler by [`Schedule::simpler`].

use std::fmt;
use std::time::Duration;

use lease_elector::election::{PlantedBug, Timings};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A fault with a start and a length, aimed at one candidate (or at the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Requests and watch news of the target are silently lost (nothing is refused).
    Partition,
    /// The target's requests reach the server and commit, but no reply or watch news comes back.
    RepliesLost,
    /// The target's connections are refused at once (a loud partition).
    Refused,
    /// Every request of the target gets a 500.
    ServerErrors,
    /// Every write of every candidate gets a 409.
    ConflictStorm,
    /// The target's watch is down; it re-lists when it comes back.
    WatchDown,
    /// The target's process dies (its children with it) and restarts after `length`.
    Crash,
    /// The target shuts down gracefully (releasing the Lease) and restarts after `length`.
    Terminate,
    /// The target's process is not scheduled for `length` (SIGSTOP); its child runs on.
    Pause,
}

impl FaultKind {
    /// Every kind, in the order the summary line prints them.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Partition,
        FaultKind::RepliesLost,
        FaultKind::Refused,
        FaultKind::ServerErrors,
        FaultKind::ConflictStorm,
        FaultKind::WatchDown,
        FaultKind::Crash,
        FaultKind::Terminate,
        FaultKind::Pause,
    ];

    /// The name in the summary line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::RepliesLost => "replies_lost",
            FaultKind::Refused => "refused",
            FaultKind::ServerErrors => "5xx_burst",
            FaultKind::ConflictStorm => "409_storm",
            FaultKind::WatchDown => "watch_down",
            FaultKind::Crash => "crash",
            FaultKind::Terminate => "terminate",
            FaultKind::Pause => "pause",
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// Start, from the beginning of the run.
    pub at: Duration,
    /// What happens.
    pub kind: FaultKind,
    /// The candidate it is aimed at (ignored by server-wide kinds).
    pub target: usize,
    /// How long it lasts (for crashes and terminations: until the restart).
    pub length: Duration,
}

/// Per-request faults, drawn for every request while the fault phase lasts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Network {
    /// Upper bound of the latency from client to server.
    pub request_latency: Duration,
    /// Upper bound of the latency from server to client.
    pub reply_latency: Duration,
    /// Upper bound of a watch event's delivery delay.
    pub watch_latency: Duration,
    /// Probability that a request never arrives (the client times out).
    pub lost_request: f64,
    /// Probability that a request commits but its reply is lost.
    pub lost_reply: f64,
    /// Probability of a 500.
    pub server_error: f64,
    /// Probability that a write gets a 409 although nothing changed.
    pub conflict: f64,
    /// Probability that a watch event is delivered twice.
    pub watch_duplicate: f64,
    /// Probability that a watch event is followed by a stale copy of the previous state.
    pub watch_stale: f64,
}

/// What a family of runs draws from.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Base timings (each candidate's are scaled by its clock rate).
    pub timings: Timings,
    /// The supervisor's grace period (run mode).
    pub grace: Duration,
    /// Smallest and largest number of candidates.
    pub candidates: (usize, usize),
    /// Clock rates are drawn from [1 - skew, 1 + skew].
    pub rate_skew: f64,
    /// Candidate 1's clock runs this much faster, beyond the bound (the checker's teeth).
    pub fast_follower: Option<f64>,
    /// Share of runs in run mode (simulated supervisor and child).
    pub run_mode_share: f64,
    /// Whether a paused candidate may be a run-mode one (issue 10, defect 2).
    pub pause_in_run_mode: bool,
    /// Length of the fault phase.
    pub faults_end: Duration,
    /// Most scheduled faults in one run.
    pub max_faults: usize,
    /// Upper bound of the reply latencies drawn (a run draws its own bound
    /// below it).
    pub reply_latency_max: Duration,
    /// A broken rule planted in the real elector (the checker's teeth).
    pub planted_bug: Option<PlantedBug>,
}

impl Profile {
    /// What CI runs: every fault kind, clock rates within ±5 %.
    pub fn ci() -> Self {
        Profile {
            timings: Timings::DEFAULT,
            grace: Duration::from_secs(3),
            candidates: (2, 4),
            rate_skew: 0.05,
            fast_follower: None,
            run_mode_share: 0.5,
            // Issue 10, defect 2: the validity kill and the watchdog stop a
            // paused parent's child in time.
            pause_in_run_mode: true,
            faults_end: Duration::from_secs(30),
            max_faults: 6,
            reply_latency_max: Duration::from_millis(300),
            planted_bug: None,
        }
    }
}

/// Everything one run does, drawn from its seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The seed it was drawn from.
    pub seed: u64,
    /// Base timings.
    pub timings: Timings,
    /// The supervisor's grace period.
    pub grace: Duration,
    /// Whether candidates run a (simulated) child while leading.
    pub run_mode: bool,
    /// Each candidate's clock rate (1.0 = true time); its length is the number of candidates.
    pub clock_rates: Vec<f64>,
    /// The clock-rate bound the election is assumed to hold under (rates in 1 ± this).
    pub rate_bound: f64,
    /// Per-request faults during the fault phase.
    pub network: Network,
    /// Scheduled faults, by start.
    pub faults: Vec<Fault>,
    /// When all faults stop.
    pub faults_end: Duration,
    /// A broken rule planted in the real elector (the checker's teeth).
    pub planted_bug: Option<PlantedBug>,
}

fn secs(rng: &mut StdRng, lo: f64, hi: f64) -> Duration {
    Duration::from_secs_f64(rng.random_range(lo..hi))
}

fn maybe(rng: &mut StdRng, hi: f64) -> f64 {
    if rng.random_bool(0.5) {
        rng.random_range(0.0..hi)
    } else {
        0.0
    }
}

fn maybe_latency(rng: &mut StdRng, hi_ms: u64) -> Duration {
    if rng.random_bool(0.5) {
        Duration::from_millis(rng.random_range(1..hi_ms))
    } else {
        Duration::ZERO
    }
}

impl Schedule {
    /// The schedule of `seed` under `profile`.
    pub fn draw(seed: u64, profile: &Profile) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rng.random_range(profile.candidates.0..=profile.candidates.1);
        let mut clock_rates: Vec<f64> = (0..n)
            .map(|_| 1.0 + rng.random_range(-profile.rate_skew..=profile.rate_skew))
            .collect();
        if let Some(fast) = profile.fast_follower {
            clock_rates[1] = fast;
        }
        let run_mode = rng.random_bool(profile.run_mode_share);
        let network = Network {
            request_latency: maybe_latency(&mut rng, 300),
            reply_latency: maybe_latency(&mut rng, profile.reply_latency_max.as_millis() as u64),
            watch_latency: maybe_latency(&mut rng, 500),
            lost_request: maybe(&mut rng, 0.1),
            lost_reply: maybe(&mut rng, 0.1),
            server_error: maybe(&mut rng, 0.1),
            conflict: maybe(&mut rng, 0.1),
            watch_duplicate: maybe(&mut rng, 0.2),
            watch_stale: maybe(&mut rng, 0.2),
        };
        let end = profile.faults_end.as_secs_f64();
        let ld = profile.timings.lease_duration.as_secs_f64();
        let kinds: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|k| *k != FaultKind::Pause || !run_mode || profile.pause_in_run_mode)
            .collect();
        let count = rng.random_range(0..=profile.max_faults);
        let mut faults: Vec<Fault> = (0..count)
            .map(|_| {
                let kind = kinds[rng.random_range(0..kinds.len())];
                let at = secs(&mut rng, 0.0, end - 1.0);
                let length = match kind {
                    // Longer than lease_duration, sometimes much longer.
                    FaultKind::Pause => secs(&mut rng, ld * 0.5, ld * 2.5),
                    FaultKind::Crash | FaultKind::Terminate => secs(&mut rng, 0.0, 10.0),
                    _ => secs(&mut rng, 0.2, 20.0),
                };
                let length = length.min(profile.faults_end - at);
                Fault {
                    at,
                    kind,
                    target: rng.random_range(0..n),
                    length,
                }
            })
            .collect();
        faults.sort_by_key(|f| f.at);
        Schedule {
            seed,
            timings: profile.timings,
            grace: profile.grace,
            run_mode,
            clock_rates,
            rate_bound: profile.rate_skew,
            network,
            faults,
            faults_end: profile.faults_end,
            planted_bug: profile.planted_bug,
        }
    }

    /// This schedule with `mask`'s faults removed and network faults switched off.
    pub fn masked(&self, mask: &Mask) -> Schedule {
        let mut s = self.clone();
        s.faults = (0..self.faults.len())
            .filter(|i| !mask.faults.contains(i))
            .map(|i| self.faults[i])
            .collect();
        for &i in &mask.network {
            NETWORK_OFF[i](&mut s.network);
        }
        s
    }

    /// Masks one step simpler than `mask` for this schedule, for shrinking a
    /// failure: one scheduled fault fewer, or one per-request fault switched off.
    pub fn simpler(&self, mask: &Mask) -> Vec<Mask> {
        let mut out = Vec::new();
        for i in (0..self.faults.len()).filter(|i| !mask.faults.contains(i)) {
            let mut m = mask.clone();
            m.faults.push(i);
            out.push(m);
        }
        for i in (0..NETWORK_OFF.len()).filter(|i| !mask.network.contains(i)) {
            let mut m = mask.clone();
            m.network.push(i);
            if self.masked(&m).network != self.masked(mask).network {
                out.push(m);
            }
        }
        out
    }

    /// How long after the send instant of its last successful renew a leader
    /// may act: lease_duration shortened by the clock-rate bound on both
    /// sides (a follower's fast clock, the leader's slow one).
    pub fn validity(&self) -> Duration {
        self.timings
            .lease_duration
            .mul_f64(1.0 - 2.0 * self.rate_bound)
    }

    /// The slowest clock rate (stretches every bound).
    pub fn slowest_rate(&self) -> f64 {
        self.clock_rates
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }

    /// How long after the faults stop a leader must exist:
    /// lease_duration + renew_deadline + retry_period (with its jitter) on the
    /// slowest clock, plus the largest latencies of requests still in flight.
    pub fn liveness_bound(&self) -> Duration {
        let t = self.timings;
        let n = self.network;
        (t.lease_duration + t.renew_deadline + t.retry_period.mul_f64(1.2))
            .div_f64(self.slowest_rate())
            + n.request_latency
            + n.reply_latency
            + n.watch_latency
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.timings;
        writeln!(
            f,
            "seed={} mode={} timings={:?}/{:?}/{:?} grace={:?} faults_end={:?}",
            self.seed,
            if self.run_mode { "run" } else { "library" },
            t.lease_duration,
            t.renew_deadline,
            t.retry_period,
            self.grace,
            self.faults_end
        )?;
        writeln!(f, "  clock_rates={:.3?}", self.clock_rates)?;
        writeln!(f, "  network={:?}", self.network)?;
        for (i, x) in self.faults.iter().enumerate() {
            writeln!(
                f,
                "  f{i:<2} at {:>7.3}s {:<12} c{} for {:.3}s",
                x.at.as_secs_f64(),
                x.kind.name(),
                x.target,
                x.length.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

const NETWORK_OFF: [fn(&mut Network); 9] = [
    |n| n.request_latency = Duration::ZERO,
    |n| n.reply_latency = Duration::ZERO,
    |n| n.watch_latency = Duration::ZERO,
    |n| n.lost_request = 0.0,
    |n| n.lost_reply = 0.0,
    |n| n.server_error = 0.0,
    |n| n.conflict = 0.0,
    |n| n.watch_duplicate = 0.0,
    |n| n.watch_stale = 0.0,
];

/// What shrinking took away from a drawn schedule: scheduled faults by index
/// (`f3`) and per-request faults switched off (`n5`, in [`Network`]'s field
/// order). Written as `SIM_MASK=f3,n5` to replay a shrunk schedule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mask {
    pub faults: Vec<usize>,
    pub network: Vec<usize>,
}

impl Mask {
    /// Parses `f3,n5`; unknown items are an error.
    pub fn parse(text: &str) -> Result<Mask, String> {
        let mut m = Mask::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, index) = item.split_at(1);
            let index: usize = index
                .parse()
                .map_err(|_| format!("bad SIM_MASK item {item:?}"))?;
            match kind {
                "f" => m.faults.push(index),
                "n" if index < NETWORK_OFF.len() => m.network.push(index),
                _ => return Err(format!("bad SIM_MASK item {item:?}")),
            }
        }
        Ok(m)
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .faults
            .iter()
            .map(|i| format!("f{i}"))
            .chain(self.network.iter().map(|i| format!("n{i}")))
            .collect();
        write!(f, "{}", items.join(","))
    }
}
