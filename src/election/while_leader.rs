//! [`Elector::run_while_leader`]: the election and the leader's work in one
//! future, the work started for every term and stopped with it.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::Elector;
use super::api::{LeaderEvent, Leadership};
use crate::backend::LeaseBackend;

impl<B: LeaseBackend> Elector<B> {
    /// Runs the election until `shutdown` is cancelled and, for every term
    /// this candidate wins, `work(leadership)` until that term ends.
    ///
    /// - The work's future is dropped the moment `leadership.token` is
    ///   cancelled (renew deadline missed, Lease taken, resignation,
    ///   shutdown), which is before any other candidate may take over. Work
    ///   that must finish cleanly should watch the token itself and return;
    ///   anything it spawned must stop on the token too.
    /// - The [`Leadership`] is dropped only after the future is done (and
    ///   every clone of the `Arc` given to it), so a release on shutdown
    ///   happens after the work stopped.
    /// - A term won again later starts `work` afresh with a new leadership
    ///   (and a larger `fencing_token` when another holder came between).
    /// - Work that returns while still leading leaves this candidate leader
    ///   until the term ends, as client-go's OnStartedLeading does; call
    ///   [`Resigner::resign`](super::Resigner::resign) to hand over instead.
    ///
    /// `events` is [`Handles::events`](super::Handles::events) of this
    /// elector; the status and the resigner stay with the caller.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use lease_elector::backend::kube::KubeBackend;
    /// use lease_elector::election::{ElectionConfig, Elector};
    /// use tokio_util::sync::CancellationToken;
    ///
    /// # async fn example(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let config = ElectionConfig::builder("my-controller", "default", "pod-a").build()?;
    /// let backend = KubeBackend::new(client, &config.lease, &config.namespace);
    /// let (elector, handles) = Elector::new(backend, config, Arc::new(()));
    /// let shutdown = CancellationToken::new();
    /// elector
    ///     .run_while_leader(handles.events, shutdown, |leadership| async move {
    ///         println!("leading, fencing token {}", leadership.fencing_token);
    ///         leadership.token.cancelled().await; // the work goes here
    ///     })
    ///     .await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_while_leader<F, Fut>(
        self,
        events: mpsc::UnboundedReceiver<LeaderEvent>,
        shutdown: CancellationToken,
        work: F,
    ) where
        F: FnMut(Arc<Leadership>) -> Fut,
        Fut: Future<Output = ()>,
    {
        tokio::join!(self.run(shutdown), every_term(events, work));
    }
}

/// Runs `work` for each leadership in `events`, until the elector is gone.
async fn every_term<F, Fut>(mut events: mpsc::UnboundedReceiver<LeaderEvent>, mut work: F)
where
    F: FnMut(Arc<Leadership>) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(event) = events.recv().await {
        if let LeaderEvent::StartedLeading(leadership) = event {
            one_term(leadership, &mut work).await;
        }
    }
}

/// Runs one term's work until the term ends, then drops the leadership.
async fn one_term<F, Fut>(leadership: Leadership, work: &mut F)
where
    F: FnMut(Arc<Leadership>) -> Fut,
    Fut: Future<Output = ()>,
{
    let leadership = Arc::new(leadership);
    let token = leadership.token.clone();
    let term = work(leadership.clone());
    tokio::select! {
        biased;
        () = token.cancelled() => {}
        () = term => {
            info!("the leader's work returned; leading until the term ends");
            token.cancelled().await;
        }
    }
    drop(leadership);
}
