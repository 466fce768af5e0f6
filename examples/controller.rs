//! A kube-runtime `Controller` over the ConfigMaps of one namespace that runs
//! only on the leader: every candidate competes for the Lease, the leader runs
//! the controller, and the controller is stopped (its future dropped, its
//! reconciles aborted) the moment leadership ends, before another candidate
//! may take the Lease.
//!
//!     cargo run --example controller -- IDENTITY [NAMESPACE] [LEASE_SECONDS]
//!
//! Each reconcile annotates the ConfigMap with the identity and fencing token
//! of the leader that reconciled it and prints
//! `reconciled NAMESPACE/NAME as IDENTITY (fencing token N)`. The e2e test
//! (tests/e2e/controller_example.rs) runs two copies against a real API server:
//! exactly one reconciles, and when it is killed the other takes over.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use lease_elector::backend::kube::KubeBackend;
use lease_elector::election::{ElectionConfig, Elector, Leadership};
use tokio_util::sync::CancellationToken;

/// Annotations written by each reconcile.
const BY: &str = "example.lease-elector.dev/reconciled-by";
const TOKEN: &str = "example.lease-elector.dev/fencing-token";

/// What every reconcile of one term shares: the API and the term's leadership.
/// Holding the leadership here means the Lease is not released on shutdown
/// before the last reconcile task of the term is gone.
struct Term {
    api: Api<ConfigMap>,
    identity: String,
    leadership: Arc<Leadership>,
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("patching the ConfigMap: {0}")]
    Patch(#[from] kube::Error),
}

async fn reconcile(cm: Arc<ConfigMap>, term: Arc<Term>) -> Result<Action, ReconcileError> {
    if term.leadership.token.is_cancelled() {
        return Ok(Action::await_change()); // no longer leader: write nothing
    }
    let name = cm.name_any();
    let fencing = term.leadership.fencing_token.to_string();
    let annotations = cm.metadata.annotations.as_ref();
    let current = (
        annotations.and_then(|a| a.get(BY)),
        annotations.and_then(|a| a.get(TOKEN)),
    );
    if current != (Some(&term.identity), Some(&fencing)) {
        let patch = serde_json::json!({
            "metadata": { "annotations": { BY: term.identity, TOKEN: fencing } }
        });
        let params = PatchParams::default();
        term.api
            .patch(&name, &params, &Patch::Merge(&patch))
            .await?;
    }
    println!(
        "reconciled {}/{name} as {} (fencing token {fencing})",
        cm.namespace().unwrap_or_default(),
        term.identity
    );
    Ok(Action::requeue(Duration::from_secs(60)))
}

fn error_policy(_cm: Arc<ConfigMap>, error: &ReconcileError, _term: Arc<Term>) -> Action {
    eprintln!("reconcile failed: {error}");
    Action::requeue(Duration::from_secs(2))
}

/// The controller for one term; returns when its watch ends.
async fn run_controller(api: Api<ConfigMap>, identity: String, leadership: Arc<Leadership>) {
    println!(
        "{identity}: leading (fencing token {}), starting the controller",
        leadership.fencing_token
    );
    let term = Arc::new(Term {
        api: api.clone(),
        identity,
        leadership,
    });
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, term)
        .for_each(|_| async {})
        .await;
}

/// `IDENTITY [NAMESPACE] [LEASE_SECONDS]`: renew_deadline is 2/3 and
/// retry_period 1/6 of the lease duration (client-go's 15/10/2 for 15).
fn config_from_args() -> Result<ElectionConfig, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let identity = args
        .next()
        .ok_or("usage: controller IDENTITY [NAMESPACE] [LEASE_SECONDS]")?;
    let namespace = args.next().unwrap_or_else(|| "default".into());
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(15);
    let lease = Duration::from_secs(seconds);
    Ok(
        ElectionConfig::builder("controller-example", &namespace, &identity)
            .lease_duration(lease)
            .renew_deadline(lease * 2 / 3)
            .retry_period(lease / 6)
            .build()?,
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = config_from_args()?;
    let client = kube::Client::try_default().await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &config.namespace);
    let identity = config.identity.clone();
    let backend = KubeBackend::new(client, &config.lease, &config.namespace);
    let (elector, handles) = Elector::new(backend, config, Arc::new(()));

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });

    elector
        .run_while_leader(handles.events, shutdown, |leadership| {
            let (api, identity) = (api.clone(), identity.clone());
            async move {
                let token = leadership.token.clone();
                run_controller(api, identity.clone(), leadership).await;
                token.cancelled().await; // the watch ended early: idle until the term ends
            }
        })
        .await;
    println!("{identity}: stopped");
    Ok(())
}
