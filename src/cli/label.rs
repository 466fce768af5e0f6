//! `run.label_pod`: the own Pod's `lease-elector.io/leader` label follows
//! leadership.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use lease_elector::election::Status;
use tokio::sync::watch;
use tracing::warn;

/// Keeps `lease-elector.io/leader` on the own Pod in step with leadership.
pub async fn label_pod(
    client: kube::Client,
    namespace: String,
    mut status: watch::Receiver<Status>,
) {
    let Ok(pod) = std::env::var("POD_NAME") else {
        warn!("run.label_pod is set but POD_NAME is not; not labelling");
        return;
    };
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, &namespace);
    let mut last: Option<bool> = None;
    loop {
        let leader = status.borrow_and_update().is_leader;
        if last != Some(leader) {
            let patch = serde_json::json!({"metadata": {"labels": {"lease-elector.io/leader": leader.to_string()}}});
            match pods
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => last = Some(leader),
                Err(e) => {
                    warn!(error = %e, pod, "cannot label the Pod");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            }
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}
