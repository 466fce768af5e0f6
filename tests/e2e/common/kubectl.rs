//! kubectl against the fixture, as an operator would use it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::parse_time;

/// kubectl with one kubeconfig, in namespace `default`.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.into(),
        }
    }

    /// Runs kubectl; the raw output.
    pub fn output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["-n", "default"])
            .args(args)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns stdout; panics on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args, None);
        assert!(
            out.status.success(),
            "kubectl {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl create -f -` with a JSON object; the server's error if refused.
    pub fn create(&self, object: &Value) -> Result<String, String> {
        let out = self.output(&["create", "-f", "-"], Some(&object.to_string()));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The Lease as JSON, `None` when it does not exist.
    pub fn lease(&self, name: &str) -> Option<Value> {
        let out = self.output(&["get", "lease", name, "-o", "json"], None);
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).expect("kubectl prints JSON"));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "kubectl get lease {name}: {err}"
        );
        None
    }

    /// `kubectl get lease NAME -o jsonpath='{.spec.holderIdentity}'`.
    pub fn holder(&self, name: &str) -> String {
        self.run(&[
            "get",
            "lease",
            name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    }
}

/// Fields of a Lease object as kubectl printed it.
pub struct LeaseFields<'a>(pub &'a Value);

impl LeaseFields<'_> {
    pub fn holder(&self) -> &str {
        self.0["spec"]["holderIdentity"].as_str().unwrap_or("")
    }
    pub fn transitions(&self) -> i64 {
        self.0["spec"]["leaseTransitions"].as_i64().unwrap_or(0)
    }
    pub fn duration(&self) -> Option<i64> {
        self.0["spec"]["leaseDurationSeconds"].as_i64()
    }
    pub fn renew_time(&self) -> Option<f64> {
        self.0["spec"]["renewTime"].as_str().map(parse_time)
    }
    pub fn acquire_time(&self) -> Option<f64> {
        self.0["spec"]["acquireTime"].as_str().map(parse_time)
    }
    pub fn uid(&self) -> &str {
        self.0["metadata"]["uid"].as_str().unwrap_or("")
    }
}

/// A Lease object for `kubectl create`.
pub fn lease_object(name: &str, spec: Value) -> Value {
    serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    })
}

/// Writes a copy of `base` (a JSON kubeconfig as the fixture writes them)
/// with another server URL and/or bearer token.
pub fn derive_kubeconfig(base: &Path, out: &Path, server: Option<&str>, token: Option<&str>) {
    let text = std::fs::read_to_string(base).expect("read kubeconfig");
    let mut v: Value = serde_json::from_str(&text).expect("the fixture writes JSON kubeconfigs");
    if let Some(server) = server {
        for c in v["clusters"].as_array_mut().expect("clusters") {
            c["cluster"]["server"] = Value::String(server.into());
        }
    }
    if let Some(token) = token {
        for u in v["users"].as_array_mut().expect("users") {
            u["user"]["token"] = Value::String(token.into());
        }
    }
    std::fs::write(out, serde_json::to_string_pretty(&v).unwrap()).expect("write kubeconfig");
}
