//! [`ElectionConfig::builder`]: an election's settings, checked before use.

use std::time::Duration;

use super::settings::{ElectionConfig, InvalidElection, Timings};

/// Builds an [`ElectionConfig`] field by field; [`ElectionBuilder::build`]
/// checks it as client-go checks its `LeaderElectionConfig` (and as the
/// daemon checks its settings): lease_duration > renew_deadline >
/// [`JITTER_FACTOR`](super::JITTER_FACTOR) × retry_period > 0, lease_duration
/// in whole seconds, a non-empty identity, a valid Lease name and namespace.
///
/// ```
/// use std::time::Duration;
/// use lease_elector::election::ElectionConfig;
///
/// let config = ElectionConfig::builder("my-controller", "default", "pod-a")
///     .lease_duration(Duration::from_secs(15))
///     .renew_deadline(Duration::from_secs(10))
///     .retry_period(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(config.identity, "pod-a");
/// # Ok::<(), lease_elector::election::InvalidElection>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the ElectionConfig"]
pub struct ElectionBuilder {
    config: ElectionConfig,
}

impl ElectionConfig {
    /// Starts a builder for candidate `identity` of the Lease `lease` in
    /// `namespace`, with client-go's default timings ([`Timings::DEFAULT`])
    /// and release on shutdown.
    ///
    /// ```
    /// use lease_elector::election::ElectionConfig;
    ///
    /// let config = ElectionConfig::builder("my-controller", "default", "pod-a").build()?;
    /// assert!(config.release_on_cancel);
    /// # Ok::<(), lease_elector::election::InvalidElection>(())
    /// ```
    pub fn builder(lease: &str, namespace: &str, identity: &str) -> ElectionBuilder {
        ElectionBuilder {
            config: ElectionConfig::new(lease, namespace, identity),
        }
    }
}

impl ElectionBuilder {
    /// How long a record stays valid after a candidate saw it change
    /// (client-go's LeaseDuration; default 15 s). Whole seconds.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use lease_elector::election::ElectionConfig;
    /// let b = ElectionConfig::builder("l", "default", "a").lease_duration(Duration::from_secs(30));
    /// assert_eq!(b.build()?.timings.lease_duration, Duration::from_secs(30));
    /// # Ok::<(), lease_elector::election::InvalidElection>(())
    /// ```
    pub fn lease_duration(mut self, d: Duration) -> Self {
        self.config.timings.lease_duration = d;
        self
    }

    /// How long the leader keeps acting without a successful renew
    /// (client-go's RenewDeadline; default 10 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use lease_elector::election::ElectionConfig;
    /// let b = ElectionConfig::builder("l", "default", "a").renew_deadline(Duration::from_secs(5));
    /// assert_eq!(b.build()?.timings.renew_deadline, Duration::from_secs(5));
    /// # Ok::<(), lease_elector::election::InvalidElection>(())
    /// ```
    pub fn renew_deadline(mut self, d: Duration) -> Self {
        self.config.timings.renew_deadline = d;
        self
    }

    /// The leader's renew interval and the followers' retry interval after
    /// errors (client-go's RetryPeriod; default 2 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use lease_elector::election::ElectionConfig;
    /// let b = ElectionConfig::builder("l", "default", "a").retry_period(Duration::from_secs(1));
    /// assert_eq!(b.build()?.timings.retry_period, Duration::from_secs(1));
    /// # Ok::<(), lease_elector::election::InvalidElection>(())
    /// ```
    pub fn retry_period(mut self, d: Duration) -> Self {
        self.config.timings.retry_period = d;
        self
    }

    /// All three timings at once.
    ///
    /// ```
    /// # use lease_elector::election::{ElectionConfig, Timings};
    /// let b = ElectionConfig::builder("l", "default", "a").timings(Timings::DEFAULT);
    /// assert_eq!(b.build()?.timings, Timings::DEFAULT);
    /// # Ok::<(), lease_elector::election::InvalidElection>(())
    /// ```
    pub fn timings(mut self, timings: Timings) -> Self {
        self.config.timings = timings;
        self
    }

    /// Whether a shutdown while leading writes an empty holder, so another
    /// candidate takes over at once (client-go's ReleaseOnCancel; default
    /// true). Without it the others wait for the Lease to expire.
    ///
    /// ```
    /// # use lease_elector::election::ElectionConfig;
    /// let b = ElectionConfig::builder("l", "default", "a").release_on_cancel(false);
    /// assert!(!b.build()?.release_on_cancel);
    /// # Ok::<(), lease_elector::election::InvalidElection>(())
    /// ```
    pub fn release_on_cancel(mut self, release: bool) -> Self {
        self.config.release_on_cancel = release;
        self
    }

    /// The checked configuration, or the first rule it breaks, named by
    /// field ([`ElectionConfig::validate`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use lease_elector::election::{ElectionConfig, InvalidElection};
    /// let err = ElectionConfig::builder("l", "default", "a")
    ///     .renew_deadline(Duration::from_secs(20)) // longer than lease_duration
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, InvalidElection::Relation { larger: ("lease_duration", _), .. }));
    /// ```
    pub fn build(self) -> Result<ElectionConfig, InvalidElection> {
        self.config.validate()?;
        Ok(self.config)
    }
}
