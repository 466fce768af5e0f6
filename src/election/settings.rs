//! What an election is configured with, and the rules those values obey.

use std::time::Duration;

/// The largest random stretch of a retry after a failed request: retries wait
/// between 1 and this many retry periods, so candidates that failed together
/// do not retry in lockstep. The leader's renew_deadline must leave room for it.
pub const JITTER_FACTOR: f64 = 1.2;

/// Where an elector's retry jitter comes from: numbers uniform in [0, 1),
/// `rand::random` unless a test injects a seeded stream.
pub(super) struct Jitter(Box<dyn FnMut() -> f64 + Send + Sync>);

impl Jitter {
    /// The default: the thread's random number generator.
    pub fn random() -> Self {
        Jitter(Box::new(rand::random::<f64>))
    }

    /// Draws from `source`, which must give numbers in [0, 1).
    pub fn from_fn(source: impl FnMut() -> f64 + Send + Sync + 'static) -> Self {
        Jitter(Box::new(source))
    }

    /// `d` stretched by a random factor in [1, [`JITTER_FACTOR`]), so
    /// candidates that failed together do not retry in lockstep.
    pub fn jittered(&mut self, d: Duration) -> Duration {
        let u = (self.0)().clamp(0.0, 1.0);
        d.mul_f64(1.0 + u * (JITTER_FACTOR - 1.0))
    }
}

/// The clock-rate bound the safety argument assumes: any two candidates'
/// monotonic clocks run at rates within 1 ± this of true time.
pub const CLOCK_RATE_BOUND: f64 = 0.05;

/// A deliberately broken rule, for showing that the simulation's checker
/// finds what breaks safety. Never for production use.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// The renew deadline and the term's validity run from when a renew's
    /// reply arrived instead of when it was sent: a slow reply stretches
    /// the term past what the followers allow.
    RenewDeadlineFromReply,
}

/// The timing of an election, validated as client-go validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a record stays valid after a candidate saw it change.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renew.
    pub renew_deadline: Duration,
    /// The leader's renew interval and the followers' retry interval after errors.
    pub retry_period: Duration,
}

impl Timings {
    /// client-go's defaults: 15s / 10s / 2s.
    pub const DEFAULT: Timings = Timings {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };

    /// How long after sending a successful renew this leader's term is
    /// certainly its own: lease_duration minus a margin of 2 ×
    /// [`CLOCK_RATE_BOUND`] × lease_duration (10 %).
    ///
    /// A follower that saw the renew waits lease_duration on its clock, at
    /// least lease_duration / 1.05 of true time after the renew was sent; this
    /// leader's validity, measured on a clock as slow as 0.95, lasts at most
    /// 0.9 × lease_duration / 0.95 ≈ 0.947 × lease_duration of true time, so
    /// about 0.005 × lease_duration (75 ms of the default 15 s) is left for
    /// the kill to land. Renews carry no jitter (only retries after errors),
    /// so there is none to subtract.
    pub fn validity(&self) -> Duration {
        self.lease_duration.mul_f64(1.0 - 2.0 * CLOCK_RATE_BOUND)
    }

    /// The bound on one API request: max(1s, renew_deadline / 2), as client-go.
    pub fn request_timeout(&self) -> Duration {
        (self.renew_deadline / 2).max(Duration::from_secs(1))
    }

    /// client-go's rules: lease_duration > renew_deadline >
    /// [`JITTER_FACTOR`] × retry_period > 0, and lease_duration in whole
    /// seconds (the Lease stores leaseDurationSeconds).
    pub fn validate(&self) -> Result<(), InvalidElection> {
        if self.retry_period.is_zero() {
            return Err(InvalidElection::field(
                "retry_period",
                "must be greater than zero",
            ));
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err(InvalidElection::Relation {
                larger: ("renew_deadline", self.renew_deadline),
                smaller: ("retry_period", self.retry_period),
                factor: JITTER_FACTOR,
            });
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(InvalidElection::Relation {
                larger: ("lease_duration", self.lease_duration),
                smaller: ("renew_deadline", self.renew_deadline),
                factor: 1.0,
            });
        }
        if self.lease_duration.subsec_nanos() != 0 {
            return Err(InvalidElection::field(
                "lease_duration",
                "must be whole seconds (the Lease stores leaseDurationSeconds)",
            ));
        }
        Ok(())
    }
}

/// A value an election cannot run with, named by its settings key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidElection {
    /// One value is unusable by itself.
    #[error("`{field}` {message}")]
    Field {
        /// The settings key (`identity`, `retry_period`, ...).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Two values break a rule between them: `larger` must be greater than
    /// `factor` × `smaller`.
    #[error("`{}` ({:?}) must be greater than {} x `{}` ({:?})", larger.0, larger.1, factor, smaller.0, smaller.1)]
    Relation {
        /// The key and value that must be the larger.
        larger: (&'static str, Duration),
        /// The key and value that must be the smaller.
        smaller: (&'static str, Duration),
        /// 1, or [`JITTER_FACTOR`].
        factor: f64,
    },
}

impl InvalidElection {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        InvalidElection::Field {
            field,
            message: message.into(),
        }
    }
}

/// Everything an [`Elector`](super::Elector) needs besides its backend.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Lease name (for logs and metrics).
    pub lease: String,
    /// Lease namespace (for logs and metrics).
    pub namespace: String,
    /// This candidate's identity, written as holderIdentity.
    pub identity: String,
    /// Timing of the election.
    pub timings: Timings,
    /// Write an empty holder on shutdown so another candidate takes over at once.
    pub release_on_cancel: bool,
}

impl ElectionConfig {
    /// A candidate `identity` for the Lease `lease` in `namespace`, with
    /// client-go's default timings and release on cancel. The same values come
    /// from the daemon's settings through `Settings::election`.
    pub fn new(lease: &str, namespace: &str, identity: &str) -> Self {
        ElectionConfig {
            lease: lease.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            timings: Timings::DEFAULT,
            release_on_cancel: true,
        }
    }

    /// Sets the timings.
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// Sets whether the Lease is released on shutdown.
    pub fn with_release_on_cancel(mut self, release: bool) -> Self {
        self.release_on_cancel = release;
        self
    }

    /// Checks the timings, the identity and the Lease's name and namespace,
    /// in that order, as the daemon does before it touches the cluster.
    pub fn validate(&self) -> Result<(), InvalidElection> {
        self.timings.validate()?;
        if self.identity.trim().is_empty() {
            return Err(InvalidElection::field("identity", "must not be empty"));
        }
        if self.identity.len() > 253 {
            return Err(InvalidElection::field(
                "identity",
                "must be at most 253 characters",
            ));
        }
        if let Err(why) = dns1123_subdomain(&self.lease) {
            let message = format!("{:?} is not a valid Lease name: {why}", self.lease);
            return Err(InvalidElection::field("lease", message));
        }
        if let Err(why) = dns1123_label(&self.namespace) {
            let message = format!("{:?} is not a valid namespace: {why}", self.namespace);
            return Err(InvalidElection::field("namespace", message));
        }
        Ok(())
    }
}

fn dns1123_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters, digits and '-' are allowed");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(s.as_bytes()[0]) || !alnum(s.as_bytes()[s.len() - 1]) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

fn dns1123_subdomain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    for part in s.split('.') {
        if part.is_empty() {
            return Err("must not contain empty parts between dots");
        }
        dns1123_label(part).map_err(|_| {
            "only lowercase letters, digits, '-' and '.' are allowed, each part starting and ending with a letter or digit"
        })?;
    }
    Ok(())
}
