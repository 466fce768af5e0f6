//! The `lease-elector` command as a user meets it: help, settings errors and
//! their exit code, `config`, and the cluster-free `demo`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lease-elector");

/// A command with a clean environment: no stray LEASE_ELECTOR_* settings, no
/// ./config.toml picked up, and a kubeconfig pointing at `server`.
fn cmd(kubeconfig: Option<&std::path::Path>) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    if let Some(k) = kubeconfig {
        c.env("KUBECONFIG", k);
    }
    c
}

fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().expect("binary runs")
}

/// A TCP listener that counts connections: a stand-in API server address that
/// tells whether the process tried to reach the cluster.
fn watched_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            c.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (port, count)
}

fn kubeconfig_for(port: u16, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn help_documents_every_setting_with_its_environment_variable() {
    let out = run(cmd(None).arg("--help"));
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    let mut section = String::new();
    for line in shipped.lines() {
        let line = line.trim_start_matches("# ").trim();
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{}__", s.to_uppercase());
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if key.contains(' ') {
            continue;
        }
        let var = format!("LEASE_ELECTOR_{section}{}", key.to_uppercase());
        assert!(help.contains(&var), "--help does not mention {var}");
    }
    for cmd_name in ["run", "config", "demo"] {
        assert!(help.contains(cmd_name));
    }
}

#[test]
fn an_invalid_setting_exits_2_naming_field_and_layer_before_contacting_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (port, connections) = watched_server();
    let kubeconfig = kubeconfig_for(port, dir.path());
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "retry_period = \"0s\"\n").unwrap();

    let cases: Vec<(Command, &str)> = vec![
        (
            {
                let mut c = cmd(Some(&kubeconfig));
                c.arg("--config").arg(&file);
                c
            },
            "invalid setting `retry_period` (from config file",
        ),
        (
            {
                let mut c = cmd(Some(&kubeconfig));
                c.env("LEASE_ELECTOR_NAMESPACE", "Bad_NS");
                c
            },
            "invalid setting `namespace` (from environment variable LEASE_ELECTOR_NAMESPACE)",
        ),
        (
            {
                let mut c = cmd(Some(&kubeconfig));
                c.args(["--renew-deadline", "20s"]);
                c
            },
            "invalid setting `renew_deadline` (from command-line flag --renew-deadline)",
        ),
        (
            {
                let mut c = cmd(Some(&kubeconfig));
                c.args(["run", "--grace-period", "5s", "--", "true"]);
                c
            },
            "invalid setting `run.grace_period` (from command-line flag --grace-period)",
        ),
    ];
    for (mut c, expected) in cases {
        let out = run(&mut c);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "contacted the cluster"
    );
}

#[test]
fn version_prints_the_version_git_commit_and_build_date() {
    use lease_elector::metrics::{BUILD_DATE, GIT_COMMIT, VERSION};
    let out = run(cmd(None).arg("--version"));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!("lease-elector {VERSION} (commit {GIT_COMMIT}, built {BUILD_DATE})\n")
    );
    assert_eq!(VERSION, env!("CARGO_PKG_VERSION"));
    let date = BUILD_DATE.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    assert!(
        date.len() == 20 && digits.iter().all(|&i| date[i].is_ascii_digit()) && date[19] == b'Z',
        "build date {BUILD_DATE:?} is YYYY-MM-DDTHH:MM:SSZ"
    );
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(h) if h.status.success() && std::env::var_os("BUILD_GIT_COMMIT").is_none() => {
            let head = String::from_utf8(h.stdout).unwrap();
            assert_eq!(GIT_COMMIT, &head[..12], "the commit is git's HEAD");
        }
        _ => assert!(!GIT_COMMIT.is_empty()),
    }
}

/// A text log line about an unreachable API server names the request, the
/// error class and the retry, and has no escape codes off a terminal.
#[test]
fn an_unreachable_api_server_is_logged_with_the_request_its_class_and_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = kubeconfig_for(closed, dir.path());
    let mut child = cmd(Some(&kubeconfig))
        .args(["--lease", "l", "--namespace", "default", "--identity", "a"])
        .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    std::thread::sleep(Duration::from_secs(3));
    let _ = child.kill();
    let _ = child.wait();
    let text = reader.join().unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("acquire failed"))
        .unwrap_or_else(|| panic!("no acquire failure in:\n{text}"));
    assert!(
        line.contains("get Lease default/l: unreachable: ") && line.contains("; retrying in "),
        "{line}"
    );
    assert!(!text.contains('\x1b'), "no escape codes: {text:?}");
}

#[test]
fn a_usage_error_exits_2() {
    let out = run(cmd(None).arg("--no-such-flag"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_prints_each_value_with_its_origin() {
    let out = run(cmd(None).env("LEASE_ELECTOR_LEASE", "from-env").args([
        "--retry-period",
        "1s",
        "config",
    ]));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("lease = \"from-env\"  # environment variable LEASE_ELECTOR_LEASE"),
        "{text}"
    );
    assert!(
        text.contains("retry_period = \"1s\"  # command-line flag --retry-period"),
        "{text}"
    );
    assert!(
        text.contains("lease_duration = \"15s\"  # built-in default"),
        "{text}"
    );
}

#[test]
fn without_a_cluster_the_daemon_says_so_and_points_to_the_demo() {
    let out = run(cmd(Some(std::path::Path::new("/nonexistent/kubeconfig")))
        .args(["--listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lease-elector demo"), "{stderr}");
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn free_port_block() -> u16 {
    // Three consecutive free ports.
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = l.local_addr().unwrap().port();
        drop(l);
        if base < 65000 && (1..3).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

#[test]
fn the_demo_replays_the_three_failovers_serves_metrics_and_exits_0() {
    let base = free_port_block();
    let started = Instant::now();
    let child = cmd(None)
        .args(["demo", "--base-port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Scrape every candidate while the script runs.
    let mut scraped = None;
    while scraped.is_none() && started.elapsed() < Duration::from_secs(10) {
        let all: Vec<_> = (0..3)
            .filter_map(|i| http_get(base + i, "/metrics"))
            .collect();
        if all.len() == 3 {
            scraped = Some(all);
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let scraped = scraped.expect("the three /metrics endpoints answered");
    for text in &scraped {
        for name in [
            "lease_elector_is_leader",
            "lease_elector_leadership_transitions_total",
            "lease_elector_observed_leader_changes_total",
            "lease_elector_renew_duration_seconds_bucket",
            "lease_elector_renew_failures_total",
            "lease_elector_last_renew_timestamp_seconds",
            "lease_elector_leader_info",
            "lease_elector_build_info",
            "leader_election_master_status",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }
    // Fail rather than hang if the script never ends.
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(90));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let timeline = String::from_utf8(out.stdout).unwrap();
    for act in [
        "== 1.",
        "== 2.",
        "== 3.",
        "handover to",
        "takeover by",
        "gave up",
        "leaders now: 1",
    ] {
        assert!(timeline.contains(act), "missing {act:?} in\n{timeline}");
    }
}

/// The (path, body) of every request a [`fake_collector`] received.
type Received = Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A stand-in OTLP/HTTP collector: records the path and body of every POST.
fn fake_collector() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let s = s.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = conn.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    s.lock().unwrap().push((path, body));
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn spans_for_acquire_renew_and_release_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (port, seen) = fake_collector();
    let base = free_port_block();
    let out = run(cmd(None).args([
        "demo",
        "--base-port",
        &base.to_string(),
        "--log-level",
        "error",
        "--otlp-endpoint",
        &format!("http://127.0.0.1:{port}"),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "no export arrived");
    assert!(seen.iter().all(|(path, _)| path == "/v1/traces"));
    let all: Vec<u8> = seen.iter().flat_map(|(_, b)| b.clone()).collect();
    for name in ["acquire", "renew", "release", "outcome", "identity"] {
        assert!(
            all.windows(name.len()).any(|w| w == name.as_bytes()),
            "no {name} in the spans"
        );
    }
}

/// `kubectl logs` reads a pipe: text logs written there carry no ANSI escape
/// codes. The daemon talks to a stand-in server that drops every connection,
/// so it logs request failures at once.
#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _) = watched_server();
    let child = cmd(Some(&kubeconfig_for(port, dir.path())))
        .args(["--listen", "127.0.0.1:0", "--lease", "colour"])
        .env("LEASE_ELECTOR_LOG__FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "no log lines to check:\n{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in piped logs:\n{stderr}"
    );
}
