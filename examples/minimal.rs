//! The smallest useful elector: compete for a Lease, work while leading,
//! print who leads, release the Lease on Ctrl-C.
//!
//!     cargo run --example minimal -- pod-a        # needs a kubeconfig
//!
//! Run it twice with different identities: one works, the other waits, and
//! stopping the first (Ctrl-C) hands over at once.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lease_elector::backend::kube::KubeBackend;
use lease_elector::election::{ElectionConfig, Elector};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let identity = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "minimal-a".into());
    let config = ElectionConfig::builder("minimal-example", "default", &identity).build()?;
    let client = kube::Client::try_default().await?;
    let backend = KubeBackend::new(client, &config.lease, &config.namespace);
    let (elector, handles) = Elector::new(backend, config, Arc::new(()));

    let mut changes = handles.leader_changes();
    tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            println!("leader: {:?} (us: {})", change.holder, change.is_leader);
        }
    });

    let shutdown = CancellationToken::new();
    let on_ctrl_c = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });

    elector
        .run_while_leader(handles.events, shutdown, |leadership| async move {
            // Dropped as soon as leadership.token is cancelled.
            loop {
                println!("working (fencing token {})", leadership.fencing_token);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
        .await;
    Ok(())
}
