//! End-to-end test of the optional Pod label (`run.label_pod`): the leader's
//! Pod carries `lease-elector.io/leader=true`, so a Service can select it.
//! There is no kubelet on the fixture, so the Pods stay Pending; their
//! objects are all the label needs.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

const LABEL: &str = "lease-elector.io/leader";

fn pod(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "example.invalid/none"}]}
    })
}

#[test]
fn the_leaders_pod_is_labelled_and_the_label_follows_leadership() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-label";
    let mut sc = Scenario::new("label-pod", &fx);
    let pods = ["label-pod-a", "label-pod-b"];
    for name in pods {
        sc.kubectl.create(&pod(name)).expect("pod object created");
    }
    let label_of = |sc: &Scenario, name: &str| {
        sc.kubectl
            .run(&[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.metadata.labels.lease-elector\\.io/leader}",
            ])
            .trim()
            .to_string()
    };
    for name in pods {
        let mut spec = DaemonSpec::new(name, lease, &sc.admin());
        spec.extra_args = vec!["--label-pod".into(), "true".into()];
        spec.env = vec![("POD_NAME".into(), name.into())];
        sc.spawn(spec);
    }
    let leader = sc.wait_single_leader(lease, Duration::from_secs(30));
    let (lead_pod, other_pod) = (pods[leader], pods[1 - leader]);
    sc.wait(
        &format!("{LABEL}=true on {lead_pod}"),
        Duration::from_secs(10),
        || (label_of(&sc, lead_pod) == "true").then_some(()),
    );
    sc.wait(
        &format!("{LABEL}=false on {other_pod}"),
        Duration::from_secs(10),
        || (label_of(&sc, other_pod) == "false").then_some(()),
    );

    // The leader leaves: the other Pod gets the label.
    sc.sigterm(leader);
    sc.wait_exit(leader, Duration::from_secs(15));
    sc.wait(
        &format!("{LABEL}=true on {other_pod}"),
        Duration::from_secs(15),
        || (label_of(&sc, other_pod) == "true").then_some(()),
    );
    println!("MEASURED label_pod: {other_pod} labelled leader after the handover");
    sc.finish();
}
