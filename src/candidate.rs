//! One function that assembles a candidate: an [`Elector`] over a backend,
//! its [`Metrics`] as the reporter, and the HTTP endpoints on a listener. The
//! daemon, the demo and the tests all build candidates through it.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::LeaseBackend;
use crate::election::{ElectionConfig, Elector, Handles};
use crate::http::{self, HttpState, Readiness};
use crate::metrics::Metrics;
use crate::supervise::ChildStatus;

/// An elector, its receivers and its metrics, not yet running.
pub struct Candidate<B: LeaseBackend> {
    /// The election; run it with [`Elector::run`].
    pub elector: Elector<B>,
    /// Its receivers (drop `events` when not read).
    pub handles: Handles,
    /// Its metrics, which it reports into.
    pub metrics: Arc<Metrics>,
    lease_duration: Duration,
}

/// The HTTP endpoints of a candidate, served in the background.
pub struct Server {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops accepting, lets open requests finish, and waits.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Builds a candidate for `config` over `backend`.
pub fn candidate<B: LeaseBackend>(backend: B, config: ElectionConfig) -> Candidate<B> {
    let metrics = Arc::new(Metrics::new(&config.lease, &config.namespace));
    let lease_duration = config.timings.lease_duration;
    let (elector, handles) = Elector::new(backend, config, metrics.clone());
    Candidate {
        elector,
        handles,
        metrics,
        lease_duration,
    }
}

impl<B: LeaseBackend> Candidate<B> {
    /// Serves `/metrics`, `/healthz`, `/readyz` and `/leader` on `listener`,
    /// with the supervised child's status in `/leader` when there is one.
    pub fn serve(
        &self,
        listener: TcpListener,
        readiness: Readiness,
        child: Option<watch::Receiver<ChildStatus>>,
    ) -> Server {
        let state = HttpState {
            metrics: self.metrics.clone(),
            status: self.handles.status.clone(),
            child,
            readiness,
            lease_duration: self.lease_duration,
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(http::serve(listener, state, stop.clone()));
        Server { stop, task }
    }
}
