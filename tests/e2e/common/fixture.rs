//! The kube-apiserver + etcd fixture (tests/k8s-fixture), started by its
//! launcher in a temporary directory.
//!
//! The launcher gets PR_SET_PDEATHSIG, which fires when the *thread* that
//! forked it ends. Test threads end with their test, so launchers are spawned
//! from one long-lived thread of their own; it ends only with the process.
//! The launcher kills etcd and kube-apiserver when it dies.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{die_with_parent, keep_dirs, prerequisites, tail};

/// How long a fixture start may take (kube-apiserver needs ~3 s when idle;
/// much more on a busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// `DIR/fixture.json`, as the launcher writes it when ready.
#[derive(Debug, Clone, Deserialize)]
pub struct FixtureInfo {
    pub server: String,
    pub admin_kubeconfig: PathBuf,
    pub restricted_kubeconfig: PathBuf,
}

impl FixtureInfo {
    /// The API server's `host:port`.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let hostport = self
            .server
            .trim_start_matches("https://")
            .trim_end_matches('/');
        hostport
            .parse()
            .unwrap_or_else(|e| panic!("server {:?} is not host:port: {e}", self.server))
    }
}

type SpawnJob = Box<dyn FnOnce() -> std::io::Result<Child> + Send>;
type SpawnRequest = (SpawnJob, mpsc::Sender<std::io::Result<Child>>);

/// Runs spawn jobs on a thread that lives as long as the test process.
fn spawn_persistent(job: SpawnJob) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("e2e-spawner".into())
            .spawn(move || {
                for (job, reply) in rx {
                    let _ = reply.send(job());
                }
                // All senders gone: keep the thread (and its children) alive.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((job, reply_tx))
        .expect("spawner thread alive");
    reply_rx.recv().expect("spawner thread replies")
}

/// One running (or stopped) fixture on a data directory.
pub struct Fixture {
    bin_dir: PathBuf,
    /// The fixture's data directory (state, certs, etcd data, logs).
    pub dir: PathBuf,
    launcher: Option<Child>,
    /// What the last start reported.
    pub info: FixtureInfo,
}

impl Fixture {
    /// Starts a fixture in `dir` (created if needed).
    pub fn start(bin_dir: &Path, dir: &Path) -> Result<Fixture, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let (launcher, info) = launch(bin_dir, dir)?;
        Ok(Fixture {
            bin_dir: bin_dir.to_path_buf(),
            dir: dir.to_path_buf(),
            launcher: Some(launcher),
            info,
        })
    }

    /// SIGTERM to the launcher, which stops kube-apiserver then etcd; waits
    /// for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.launcher.take() {
            stop_launcher(&mut child, Duration::from_secs(30));
        }
    }

    /// Starts again on the same data directory.
    pub fn restart(&mut self) -> Result<(), String> {
        assert!(
            self.launcher.is_none(),
            "stop the fixture before restarting it"
        );
        let (launcher, info) = launch(&self.bin_dir, &self.dir)?;
        self.launcher = Some(launcher);
        self.info = info;
        Ok(())
    }

    /// The tail of the launcher's, kube-apiserver's and etcd's logs.
    pub fn log_tails(&self, n: usize) -> String {
        log_tails(&self.dir, n)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- fixture {} ---\n{}",
                self.dir.display(),
                self.log_tails(15)
            );
        }
        self.stop();
    }
}

fn log_tails(dir: &Path, n: usize) -> String {
    let mut out = String::new();
    for name in ["launcher.log", "apiserver.log", "etcd.log"] {
        out.push_str(&format!(
            "--- {} (last {n} lines) ---\n{}\n",
            dir.join(name).display(),
            tail(&dir.join(name), n)
        ));
    }
    out
}

fn stop_launcher(child: &mut Child, timeout: Duration) {
    super::signal(child.id(), libc::SIGTERM);
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn launch(bin_dir: &Path, dir: &Path) -> Result<(Child, FixtureInfo), String> {
    let launcher_log = dir.join("launcher.log");
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launcher_log)
        .map_err(|e| format!("open {}: {e}", launcher_log.display()))?;
    let program = bin_dir.join("k8s-fixture");
    let data_dir = dir.to_path_buf();
    let mut child = spawn_persistent(Box::new(move || {
        let mut cmd = Command::new(&program);
        cmd.arg("--dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        die_with_parent(&mut cmd);
        cmd.spawn()
    }))
    .map_err(|e| {
        format!(
            "cannot start {}: {e}",
            bin_dir.join("k8s-fixture").display()
        )
    })?;

    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Nobody listens any more; keep draining.
            }
        }
    });
    let start = Instant::now();
    let ready_path = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(p) = line.strip_prefix("K8S_FIXTURE_READY ") {
                    break PathBuf::from(p.trim());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait();
                return Err(format!(
                    "the fixture launcher exited before it was ready ({status:?})\n{}",
                    log_tails(dir, 30)
                ));
            }
        }
        if start.elapsed() > START_TIMEOUT {
            stop_launcher(&mut child, Duration::from_secs(10));
            return Err(format!(
                "the fixture was not ready within {START_TIMEOUT:?}\n{}",
                log_tails(dir, 30)
            ));
        }
    };
    let text = std::fs::read_to_string(&ready_path)
        .map_err(|e| format!("read {}: {e}", ready_path.display()))?;
    let info: FixtureInfo =
        serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", ready_path.display()))?;
    eprintln!(
        "e2e: fixture ready in {:.1}s at {} (dir {})",
        start.elapsed().as_secs_f64(),
        info.server,
        dir.display()
    );
    Ok((child, info))
}

/// The fixture shared by all tests of one test binary, started on first use;
/// stopped (SIGTERM, wait) by an atexit handler. `None` when the tests skip.
pub fn shared_fixture() -> Option<Arc<FixtureInfo>> {
    static SHARED: OnceLock<Result<Arc<FixtureInfo>, String>> = OnceLock::new();
    let bin_dir = prerequisites()?;
    let result = SHARED.get_or_init(|| {
        let tmp = tempfile::Builder::new()
            .prefix("lease-elector-e2e-fixture-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let dir = tmp.keep();
        let fixture = Fixture::start(&bin_dir, &dir)?;
        let info = Arc::new(fixture.info.clone());
        *SHARED_FIXTURE.lock().unwrap_or_else(|e| e.into_inner()) = Some(fixture);
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(stop_shared_fixture);
        }
        Ok(info)
    });
    match result {
        Ok(info) => Some(info.clone()),
        Err(e) => panic!("cannot start the API server fixture: {e}"),
    }
}

static SHARED_FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

extern "C" fn stop_shared_fixture() {
    let Ok(mut guard) = SHARED_FIXTURE.try_lock() else {
        return;
    };
    if let Some(mut fixture) = guard.take() {
        fixture.stop();
        if keep_dirs() {
            eprintln!("e2e: kept fixture dir {}", fixture.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&fixture.dir);
        }
        std::mem::forget(fixture);
    }
}
