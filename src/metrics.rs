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

use crate::backend::BackendError;

/// Latency buckets for a renew request: 1 ms to 10 s.
pub const RENEW_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// API verbs counted in `lease_elector_api_requests_total`.
pub const API_VERBS: [&str; 5] = ["get", "create", "update", "watch", "event"];

/// Outcomes counted in `lease_elector_child_exits_total`.
pub const CHILD_OUTCOMES: [&str; 3] = ["success", "failure", "signaled"];

/// The metrics of one candidate, in a registry of its own.
pub struct Metrics {
    registry: Registry,
    /// `lease_elector_is_leader`: 1 while this candidate acts as leader.
    pub is_leader: IntGauge,
    /// `lease_elector_leadership_transitions_total{direction}`.
    pub transitions: IntCounterVec,
    /// `lease_elector_observed_leader_changes_total`.
    pub observed_leader_changes: IntCounter,
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

impl Metrics {
    /// Registers every metric for the Lease `lease` in `namespace`.
    pub fn new(lease: &str, namespace: &str) -> Self {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| {
            Opts::new(name, help)
                .const_label("lease", lease)
                .const_label("namespace", namespace)
        };
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .expect("metric names are unique and valid");
        };

        let is_leader = IntGauge::with_opts(opts(
            "lease_elector_is_leader",
            "1 while this candidate holds the Lease and acts as leader, else 0.",
        ))
        .expect("valid metric");
        let transitions = IntCounterVec::new(
            opts(
                "lease_elector_leadership_transitions_total",
                "Times this candidate acquired or lost leadership.",
            ),
            &["direction"],
        )
        .expect("valid metric");
        let observed_leader_changes = IntCounter::with_opts(opts(
            "lease_elector_observed_leader_changes_total",
            "Changes of the Lease holder seen by this candidate.",
        ))
        .expect("valid metric");
        let renew_duration = Histogram::with_opts(
            HistogramOpts::new(
                "lease_elector_renew_duration_seconds",
                "Duration of the leader's renew requests, successful or not.",
            )
            .const_label("lease", lease)
            .const_label("namespace", namespace)
            .buckets(RENEW_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let renew_failures = IntCounterVec::new(
            opts(
                "lease_elector_renew_failures_total",
                "Failed attempts to acquire or renew the Lease, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let last_renew_timestamp = Gauge::with_opts(opts(
            "lease_elector_last_renew_timestamp_seconds",
            "Unix time of this candidate's last successful acquire or renew (0 if never).",
        ))
        .expect("valid metric");
        let lease_duration = Gauge::with_opts(opts(
            "lease_elector_lease_duration_seconds",
            "Configured lease duration of this candidate.",
        ))
        .expect("valid metric");
        let leader_info = IntGaugeVec::new(
            opts(
                "lease_elector_leader_info",
                "Always 1; the holder label names the Lease holder this candidate observes (empty if none).",
            ),
            &["holder"],
        )
        .expect("valid metric");
        let api_requests = IntCounterVec::new(
            opts(
                "lease_elector_api_requests_total",
                "Requests sent to the API server, by verb.",
            ),
            &["verb"],
        )
        .expect("valid metric");
        let master_status = IntGauge::with_opts(
            Opts::new(
                "leader_election_master_status",
                "client-go compatible: 1 if this candidate is the leader, 0 if backup.",
            )
            .const_label("name", lease),
        )
        .expect("valid metric");
        let child_running = IntGauge::with_opts(opts(
            "lease_elector_child_running",
            "1 while the supervised child process runs (lease-elector run).",
        ))
        .expect("valid metric");
        let child_starts = IntCounter::with_opts(opts(
            "lease_elector_child_starts_total",
            "Supervised child processes started (lease-elector run).",
        ))
        .expect("valid metric");
        let child_exits = IntCounterVec::new(
            opts(
                "lease_elector_child_exits_total",
                "Supervised child processes that ended, by outcome (lease-elector run).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "lease_elector_build_info",
                "Always 1; the version label is the lease-elector version.",
            ),
            &["version"],
        )
        .expect("valid metric");

        for direction in ["acquired", "lost"] {
            transitions.with_label_values(&[direction]);
        }
        for reason in BackendError::REASONS {
            renew_failures.with_label_values(&[reason]);
        }
        for verb in API_VERBS {
            api_requests.with_label_values(&[verb]);
        }
        for outcome in CHILD_OUTCOMES {
            child_exits.with_label_values(&[outcome]);
        }
        leader_info.with_label_values(&[""]).set(1);
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        reg(Box::new(is_leader.clone()));
        reg(Box::new(transitions.clone()));
        reg(Box::new(observed_leader_changes.clone()));
        reg(Box::new(renew_duration.clone()));
        reg(Box::new(renew_failures.clone()));
        reg(Box::new(last_renew_timestamp.clone()));
        reg(Box::new(lease_duration.clone()));
        reg(Box::new(leader_info.clone()));
        reg(Box::new(api_requests.clone()));
        reg(Box::new(master_status.clone()));
        reg(Box::new(child_running.clone()));
        reg(Box::new(child_starts.clone()));
        reg(Box::new(child_exits.clone()));
        reg(Box::new(build_info));

        Metrics {
            registry,
            is_leader,
            transitions,
            observed_leader_changes,
            renew_duration,
            renew_failures,
            last_renew_timestamp,
            lease_duration,
            leader_info,
            api_requests,
            master_status,
            child_running,
            child_starts,
            child_exits,
            current_holder: std::sync::Mutex::new(String::new()),
        }
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

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
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
            "lease_elector_renew_duration_seconds_bucket{",
            "lease_elector_renew_failures_total{",
            "lease_elector_last_renew_timestamp_seconds{",
            "lease_elector_lease_duration_seconds{",
            "lease_elector_leader_info{holder=\"\"",
            "lease_elector_api_requests_total{",
            "lease_elector_build_info{version=",
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
