//! Prometheus metrics of one candidate.
//!
//! Every series exists from start-up (counters at 0, one series per label
//! value), so alerts built on `increase()` and `sum()` see the candidate before
//! anything happens. The `lease` and `namespace` labels name the Lease; pod and
//! identity labels are left to the scrape.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use std::time::Duration;

use crate::backend::BackendError;
use crate::election::{Reporter, Timings, Verb};

/// Latency buckets for a renew request: 1 ms to 10 s.
pub const RENEW_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// API verbs counted in `lease_elector_api_requests_total`.
pub const API_VERBS: [Verb; 5] = Verb::ALL;

/// Outcomes counted in `lease_elector_child_exits_total`.
pub const CHILD_OUTCOMES: [&str; 3] = ["success", "failure", "signaled"];

/// The metrics of one candidate, in a registry of its own ([`Metrics::new`])
/// or in the caller's ([`Metrics::register`]). As an [`election::Reporter`](Reporter)
/// it is what `Elector::new` takes as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    /// `lease_elector_is_leader`: 1 while this candidate acts as leader.
    pub is_leader: IntGauge,
    /// `lease_elector_leadership_transitions_total{direction}`.
    pub transitions: IntCounterVec,
    /// `lease_elector_observed_leader_changes_total`.
    pub observed_leader_changes: IntCounter,
    /// `lease_elector_identity_conflicts_total`.
    pub identity_conflicts: IntCounter,
    /// `lease_elector_renew_duration_seconds`.
    pub renew_duration: Histogram,
    /// `lease_elector_renew_failures_total{reason}`.
    pub renew_failures: IntCounterVec,
    /// `lease_elector_last_renew_timestamp_seconds`.
    pub last_renew_timestamp: Gauge,
    /// `lease_elector_lease_duration_seconds` (configured).
    pub lease_duration: Gauge,
    /// `lease_elector_leader_info{holder}`: one series, the holder observed now.
    leader_info: IntGaugeVec,
    /// `lease_elector_api_requests_total{verb}`.
    pub api_requests: IntCounterVec,
    /// client-go's `leader_election_master_status{name}`.
    pub master_status: IntGauge,
    /// `lease_elector_child_running` (run mode).
    pub child_running: IntGauge,
    /// `lease_elector_child_starts_total` (run mode).
    pub child_starts: IntCounter,
    /// `lease_elector_child_exits_total{outcome}` (run mode).
    pub child_exits: IntCounterVec,
    current_holder: std::sync::Mutex<String>,
}

/// A metric's name and help text.
type Doc = (&'static str, &'static str);

const IS_LEADER: Doc = (
    "lease_elector_is_leader",
    "1 while this candidate holds the Lease and acts as leader, else 0.",
);
const TRANSITIONS: Doc = (
    "lease_elector_leadership_transitions_total",
    "Times this candidate acquired or lost leadership.",
);
const OBSERVED_LEADER_CHANGES: Doc = (
    "lease_elector_observed_leader_changes_total",
    "Changes of the Lease holder seen by this candidate.",
);
const IDENTITY_CONFLICTS: Doc = (
    "lease_elector_identity_conflicts_total",
    "Times another process was seen renewing the Lease under this candidate's identity.",
);
const RENEW_DURATION: Doc = (
    "lease_elector_renew_duration_seconds",
    "Duration of the leader's renew requests, successful or not.",
);
const RENEW_FAILURES: Doc = (
    "lease_elector_renew_failures_total",
    "Failed attempts to acquire or renew the Lease, by reason.",
);
const LAST_RENEW_TIMESTAMP: Doc = (
    "lease_elector_last_renew_timestamp_seconds",
    "Unix time of this candidate's last successful acquire or renew (0 if never).",
);
const LEASE_DURATION: Doc = (
    "lease_elector_lease_duration_seconds",
    "Configured lease duration of this candidate.",
);
const LEADER_INFO: Doc = (
    "lease_elector_leader_info",
    "Always 1; the holder label names the Lease holder this candidate observes (empty if none).",
);
const API_REQUESTS: Doc = (
    "lease_elector_api_requests_total",
    "Requests sent to the API server, by verb.",
);
const MASTER_STATUS: Doc = (
    "leader_election_master_status",
    "client-go compatible: 1 if this candidate is the leader, 0 if backup.",
);
const CHILD_RUNNING: Doc = (
    "lease_elector_child_running",
    "1 while the supervised child process runs (lease-elector run).",
);
const CHILD_STARTS: Doc = (
    "lease_elector_child_starts_total",
    "Supervised child processes started (lease-elector run).",
);
const CHILD_EXITS: Doc = (
    "lease_elector_child_exits_total",
    "Supervised child processes that ended, by outcome (lease-elector run).",
);
/// This build: the crate version, the git commit (12 hex digits, or what
/// `BUILD_GIT_COMMIT` said at build time, or `unknown`) and the build date
/// (RFC 3339, UTC; `SOURCE_DATE_EPOCH` at build time), stamped by build.rs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// See [`VERSION`].
pub const GIT_COMMIT: &str = env!("LE_BUILD_GIT_COMMIT");
/// See [`VERSION`].
pub const BUILD_DATE: &str = env!("LE_BUILD_DATE");
/// What `lease-elector --version` prints after the program name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LE_BUILD_GIT_COMMIT"),
    ", built ",
    env!("LE_BUILD_DATE"),
    ")"
);

const BUILD_INFO: Doc = (
    "lease_elector_build_info",
    "Always 1; labels: the lease-elector version, git commit and build date.",
);

/// Builds metrics labelled with the Lease and registers them.
struct Factory<'a> {
    registry: &'a Registry,
    lease: &'a str,
    namespace: &'a str,
}

type Made<C> = prometheus::Result<C>;

impl Factory<'_> {
    fn opts(&self, (name, help): Doc) -> Opts {
        Opts::new(name, help)
            .const_label("lease", self.lease)
            .const_label("namespace", self.namespace)
    }

    fn register<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> Made<C> {
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn int_gauge(&self, doc: Doc) -> Made<IntGauge> {
        self.register(IntGauge::with_opts(self.opts(doc))?)
    }

    fn gauge(&self, doc: Doc) -> Made<Gauge> {
        self.register(Gauge::with_opts(self.opts(doc))?)
    }

    fn counter(&self, doc: Doc) -> Made<IntCounter> {
        self.register(IntCounter::with_opts(self.opts(doc))?)
    }

    /// A counter with one label, a series per value from start-up.
    fn counter_vec(&self, doc: Doc, label: &str, values: &[&str]) -> Made<IntCounterVec> {
        let c = IntCounterVec::new(self.opts(doc), &[label])?;
        for value in values {
            c.with_label_values(&[value]);
        }
        self.register(c)
    }

    /// A gauge with the given labels, its one series at 1.
    fn info(&self, opts: Opts, labels: &[(&str, &str)]) -> Made<IntGaugeVec> {
        let (names, values): (Vec<&str>, Vec<&str>) = labels.iter().copied().unzip();
        let g = IntGaugeVec::new(opts, &names)?;
        g.with_label_values(&values).set(1);
        self.register(g)
    }

    fn histogram(&self, (name, help): Doc, buckets: &[f64]) -> Made<Histogram> {
        let opts = HistogramOpts::new(name, help)
            .const_label("lease", self.lease)
            .const_label("namespace", self.namespace)
            .buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts)?)
    }
}

impl Metrics {
    /// Every metric for the Lease `lease` in `namespace`, in a registry of
    /// its own (what the daemon serves on `/metrics`).
    ///
    /// ```
    /// let metrics = lease_elector::metrics::Metrics::new("my-controller", "default");
    /// assert!(metrics.encode().contains("lease_elector_is_leader"));
    /// ```
    pub fn new(lease: &str, namespace: &str) -> Self {
        Self::register(&Registry::new(), lease, namespace)
            .expect("the metric names are valid and a new registry holds none of them")
    }

    /// Every metric for the Lease `lease` in `namespace`, registered into the
    /// caller's `registry` (e.g. the one a controller already serves). Fails
    /// when the registry already holds one of them with the same labels,
    /// such as the metrics of another elector for the same Lease.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lease_elector::metrics::Metrics;
    ///
    /// let registry = prometheus::Registry::new();
    /// let metrics = Arc::new(Metrics::register(&registry, "my-controller", "default")?);
    /// assert!(registry.gather().iter().any(|f| f.name() == "lease_elector_is_leader"));
    /// // Hand `metrics` to `Elector::new` (or `ElectionConfig::builder(..).reporter(..)`).
    /// # Ok::<(), prometheus::Error>(())
    /// ```
    pub fn register(registry: &Registry, lease: &str, namespace: &str) -> prometheus::Result<Self> {
        let f = Factory {
            registry,
            lease,
            namespace,
        };
        let master = Opts::new(MASTER_STATUS.0, MASTER_STATUS.1).const_label("name", lease);
        let build = Opts::new(BUILD_INFO.0, BUILD_INFO.1);
        f.info(
            build,
            &[
                ("version", VERSION),
                ("commit", GIT_COMMIT),
                ("build_date", BUILD_DATE),
            ],
        )?;
        Ok(Metrics {
            is_leader: f.int_gauge(IS_LEADER)?,
            transitions: f.counter_vec(TRANSITIONS, "direction", &["acquired", "lost"])?,
            observed_leader_changes: f.counter(OBSERVED_LEADER_CHANGES)?,
            identity_conflicts: f.counter(IDENTITY_CONFLICTS)?,
            renew_duration: f.histogram(RENEW_DURATION, &RENEW_BUCKETS)?,
            renew_failures: f.counter_vec(RENEW_FAILURES, "reason", &BackendError::REASONS)?,
            last_renew_timestamp: f.gauge(LAST_RENEW_TIMESTAMP)?,
            lease_duration: f.gauge(LEASE_DURATION)?,
            leader_info: f.info(f.opts(LEADER_INFO), &[("holder", "")])?,
            api_requests: f.counter_vec(API_REQUESTS, "verb", &API_VERBS.map(Verb::as_str))?,
            master_status: f.register(IntGauge::with_opts(master)?)?,
            child_running: f.int_gauge(CHILD_RUNNING)?,
            child_starts: f.counter(CHILD_STARTS)?,
            child_exits: f.counter_vec(CHILD_EXITS, "outcome", &CHILD_OUTCOMES)?,
            current_holder: std::sync::Mutex::new(String::new()),
            registry: registry.clone(),
        })
    }

    /// The registry these metrics are in (their own, or the caller's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Flips both leader gauges (ours and client-go's) together.
    pub fn set_leader(&self, leader: bool) {
        self.is_leader.set(leader as i64);
        self.master_status.set(leader as i64);
    }

    /// Moves the single `lease_elector_leader_info` series to `holder`.
    pub fn set_holder(&self, holder: &str) {
        let mut current = self
            .current_holder
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *current != holder {
            let _ = self.leader_info.remove_label_values(&[current.as_str()]);
            self.leader_info.with_label_values(&[holder]).set(1);
            *current = holder.to_string();
        }
    }

    /// Counts one API request.
    pub fn api_request(&self, verb: &str) {
        self.api_requests.with_label_values(&[verb]).inc();
    }

    /// The text exposition of every metric in [`Metrics::registry`].
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

/// The election's reports, as Prometheus metrics.
impl Reporter for Metrics {
    fn configured(&self, timings: &Timings) {
        self.lease_duration
            .set(timings.lease_duration.as_secs_f64());
    }

    fn request(&self, verb: Verb) {
        self.api_requests.with_label_values(&[verb.as_str()]).inc();
    }

    fn request_failed(&self, error: &BackendError) {
        self.renew_failures
            .with_label_values(&[error.reason()])
            .inc();
    }

    fn renew_took(&self, elapsed: Duration) {
        self.renew_duration.observe(elapsed.as_secs_f64());
    }

    fn became_leader(&self) {
        self.set_leader(true);
        self.transitions.with_label_values(&["acquired"]).inc();
    }

    fn stopped_leading(&self) {
        self.set_leader(false);
        self.transitions.with_label_values(&["lost"]).inc();
    }

    fn holder_changed(&self, holder: &str) {
        if !holder.is_empty() {
            self.observed_leader_changes.inc();
        }
        self.set_holder(holder);
    }

    fn renewed(&self, unix_seconds: f64) {
        self.last_renew_timestamp.set(unix_seconds);
    }

    fn identity_conflict(&self) {
        self.identity_conflicts.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_metric_is_exported_at_start_up() {
        let text = Metrics::new("l", "ns").encode();
        for name in [
            "lease_elector_is_leader{",
            "lease_elector_leadership_transitions_total{direction=\"acquired\"",
            "lease_elector_leadership_transitions_total{direction=\"lost\"",
            "lease_elector_observed_leader_changes_total{",
            "lease_elector_identity_conflicts_total{",
            "lease_elector_renew_duration_seconds_bucket{",
            "lease_elector_renew_failures_total{",
            "lease_elector_last_renew_timestamp_seconds{",
            "lease_elector_lease_duration_seconds{",
            "lease_elector_leader_info{holder=\"\"",
            "lease_elector_api_requests_total{",
            "lease_elector_build_info{build_date=",
            "leader_election_master_status{name=\"l\"}",
            "lease_elector_child_running{",
            "lease_elector_child_starts_total{",
            "lease_elector_child_exits_total{",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        for reason in BackendError::REASONS {
            assert!(
                text.contains(&format!("reason=\"{reason}\"")),
                "missing reason {reason}"
            );
        }
    }

    #[test]
    fn build_info_carries_the_version_commit_and_build_date() {
        let text = Metrics::new("l", "ns").encode();
        let want = format!(
            "lease_elector_build_info{{build_date=\"{BUILD_DATE}\",commit=\"{GIT_COMMIT}\",version=\"{VERSION}\"}} 1"
        );
        assert!(text.contains(&want), "no {want} in\n{text}");
    }

    #[test]
    fn leader_info_keeps_a_single_series() {
        let m = Metrics::new("l", "ns");
        m.set_holder("a");
        m.set_holder("b");
        let text = m.encode();
        assert_eq!(
            text.matches("lease_elector_leader_info{").count(),
            1,
            "{text}"
        );
        assert!(text.contains("holder=\"b\""));
    }
}
