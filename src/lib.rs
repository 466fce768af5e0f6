//! # lease-elector
//!
//! Kubernetes Lease (coordination.k8s.io/v1) leader election with the
//! semantics of client-go's `tools/leaderelection`, observable through
//! Prometheus metrics, usable as a daemon, as a supervisor that runs a command
//! only while leader, or as a library.
//!
//! ```no_run
//! use std::sync::Arc;
//! use lease_elector::{backend::kube::KubeBackend, election::*, metrics::Metrics};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example(client: kube::Client) {
//! let config = ElectionConfig::new("my-controller", "default", "pod-a")
//!     .with_timings(Timings::DEFAULT)
//!     .with_release_on_cancel(true);
//! config.validate().expect("valid election settings");
//! let backend = KubeBackend::new(client, &config.lease, &config.namespace);
//! let metrics = Arc::new(Metrics::new(&config.lease, &config.namespace));
//! let (elector, mut handles) = Elector::new(backend, config, metrics);
//! let shutdown = CancellationToken::new();
//! tokio::spawn(elector.run(shutdown.clone()));
//! while let Some(event) = handles.events.recv().await {
//!     if let LeaderEvent::StartedLeading(leadership) = event {
//!         // Work until leadership.token is cancelled, then drop `leadership`.
//!         leadership.token.cancelled().await;
//!     }
//! }
//! # }
//! ```
//!
//! Modules, by responsibility, each depending only on those listed before it:
//! [`backend`] (the Lease verbs: the real Kubernetes Lease and an in-memory
//! test double), [`election`] (the state machine, I/O-free but for the
//! backend trait; reports through [`election::Reporter`]), [`metrics`] (the
//! Prometheus reporter), [`supervise`] (the `run` mode), [`http`],
//! [`telemetry`], [`candidate`] (assembles one candidate) and [`config`]
//! (the settings table, layers and origins). See docs/architecture.md.

#![warn(missing_docs)]

pub mod backend;
#[cfg(feature = "daemon")]
pub mod candidate;
#[cfg(feature = "daemon")]
pub mod config;
#[cfg(feature = "daemon")]
mod duration_serde;
pub mod election;
#[cfg(feature = "daemon")]
pub mod http;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "daemon")]
pub mod supervise;
#[cfg(feature = "daemon")]
pub mod telemetry;
