//! End-to-end test of `examples/controller.rs`: two copies of the example
//! (a kube-runtime Controller run only while leading) against the real API
//! server. Exactly one reconciles; when it is killed, the other takes over.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

const NAMESPACE: &str = "e2e-controller";
const BY: &str = "example.lease-elector.dev/reconciled-by";
const CONFIGMAPS: [&str; 2] = ["example-a", "example-b"];
/// The example's lease duration, in seconds (renew deadline 4 s, retry 1 s).
const LEASE_SECONDS: &str = "6";

/// Builds the example (as the e2e test binary was built: `--features daemon`,
/// so nothing but the example compiles) and returns its path.
fn build_example() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "--locked",
            "--features",
            "daemon",
            "--example",
            "controller",
        ])
        .args(["--message-format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build --example controller");
    assert!(
        out.status.success(),
        "cargo build --example controller failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "controller")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the example's executable")
}

/// One copy of the example, killed when dropped.
struct Copy {
    identity: String,
    log: PathBuf,
    child: Child,
}

impl Copy {
    fn spawn(bin: &Path, identity: &str, kubeconfig: &Path, dir: &Path) -> Copy {
        let log = dir.join(format!("{identity}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(bin);
        cmd.args([identity, NAMESPACE, LEASE_SECONDS])
            .env_clear()
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("spawn the controller example");
        Copy {
            identity: identity.into(),
            log,
            child,
        }
    }

    /// The ConfigMaps this copy says it reconciled.
    fn reconciled(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("reconciled "))
            .map(str::to_string)
            .collect()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `reconciled-by` annotation of every ConfigMap, when they all agree.
fn reconciled_by(sc: &Scenario) -> Option<String> {
    let by: Vec<String> = CONFIGMAPS
        .iter()
        .map(|name| {
            let path = format!(
                "jsonpath={{.metadata.annotations.{}}}",
                BY.replace('.', "\\.")
            );
            let out = sc.kubectl.output(
                &["-n", NAMESPACE, "get", "configmap", name, "-o", &path],
                None,
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    (!by[0].is_empty() && by.iter().all(|b| *b == by[0])).then(|| by[0].clone())
}

fn setup(sc: &Scenario) {
    sc.kubectl
        .create(&json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}
        }))
        .expect("namespace created");
    for name in CONFIGMAPS {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {"key": "value"}
        });
        let out = sc.kubectl.output(
            &["-n", NAMESPACE, "create", "-f", "-"],
            Some(&cm.to_string()),
        );
        assert!(
            out.status.success(),
            "configmap {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn only_the_leaders_controller_reconciles_and_the_other_takes_over_when_it_dies() {
    let Some(fx) = shared_fixture() else { return };
    let bin = build_example();
    let sc = Scenario::new("controller-example", &fx);
    setup(&sc);
    let mut copies =
        ["controller-a", "controller-b"].map(|id| Copy::spawn(&bin, id, &sc.admin(), &sc.dir));
    let first = sc.wait(
        "every ConfigMap reconciled",
        Duration::from_secs(30),
        || reconciled_by(&sc),
    );
    let leader = copies
        .iter()
        .position(|c| c.identity == first)
        .expect("one of ours");
    let other = 1 - leader;
    std::thread::sleep(Duration::from_secs(3)); // time for a second reconciler to show
    assert!(
        !copies[leader].reconciled().is_empty(),
        "the leader logs its reconciles"
    );
    assert_eq!(
        copies[other].reconciled(),
        Vec::<String>::new(),
        "the follower reconciles nothing"
    );

    copies[leader].kill();
    let killed = Instant::now();
    let second = sc.wait("the other copy takes over", Duration::from_secs(30), || {
        reconciled_by(&sc).filter(|by| *by != first)
    });
    assert_eq!(second, copies[other].identity);
    assert!(
        copies[other]
            .reconciled()
            .iter()
            .all(|l| l.contains(&second))
    );
    println!(
        "MEASURED controller_example: {second} reconciled every ConfigMap {:.1} s after {first} was killed (lease {LEASE_SECONDS} s)",
        killed.elapsed().as_secs_f64()
    );
    copies[other].kill();
    sc.finish();
}
