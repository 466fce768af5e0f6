//! # lease-elector
//!
//! Kubernetes Lease (coordination.k8s.io/v1) leader election with the
//! semantics of client-go's `tools/leaderelection`, observable through
//! Prometheus metrics, usable as a daemon, as a supervisor that runs a command
//! only while leader, or as a library.
//!
//! As a library (default features: no daemon dependencies, no Kubernetes
//! version chosen), a controller runs its work only while it leads:
//!
//! ```no_run
//! use std::sync::Arc;
//! use lease_elector::backend::kube::KubeBackend;
//! use lease_elector::election::{ElectionConfig, Elector};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let config = ElectionConfig::builder("my-controller", "default", "pod-a").build()?;
//! let backend = KubeBackend::new(client, &config.lease, &config.namespace);
//! let (elector, handles) = Elector::new(backend, config, Arc::new(()));
//! let shutdown = CancellationToken::new(); // cancel it on SIGTERM
//! elector
//!     .run_while_leader(handles.events, shutdown, |leadership| async move {
//!         // Work here; this future is dropped when leadership.token is cancelled.
//!         leadership.token.cancelled().await;
//!     })
//!     .await;
//! # Ok(())
//! # }
//! ```
//!
//! Features: none by default (the election, the kube and in-memory backends);
//! `metrics`, the Prometheus reporter (`metrics::Metrics`, into the caller's
//! `prometheus::Registry` or its own); `daemon`, everything the
//! `lease-elector` binary needs (settings, HTTP endpoints, OpenTelemetry,
//! `run` mode). Examples: `examples/minimal.rs`, `examples/controller.rs`.
//!
//! Modules, by responsibility, each depending only on those listed before it:
//! [`backend`] (the Lease verbs: the real Kubernetes Lease and an in-memory
//! test double), [`election`] (the state machine, I/O-free but for the
//! backend trait; reports through [`election::Reporter`]), `metrics` (the
//! Prometheus reporter), `supervise` (the `run` mode), `http`,
//! `telemetry`, `candidate` (assembles one candidate) and `config`
//! (the settings table, layers and origins); all but the first two need a
//! feature. See docs/architecture.md.

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
