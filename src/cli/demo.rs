//! `lease-elector demo`: the seed's three demonstrations without a cluster.
//!
//! Three candidates run the real election code in one process over an
//! in-memory Lease (the [`MemoryLease`] test double), each serving its own
//! `/metrics` on localhost. A script then replays what the client-go example
//! shows in three terminals: the leader stops and releases, the leader dies
//! without releasing, the leader's connection is cut.

use std::time::Duration;

use lease_elector::backend::memory::{MemoryBackend, MemoryLease};
use lease_elector::candidate::{self, Server};
use lease_elector::config::{Loaded, Origin};
use lease_elector::election::{ElectionConfig, LeaderEvent, Status, Timings};
use lease_elector::http::{self, Readiness};
use lease_elector::telemetry;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Options of `lease-elector demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Keep the candidates running after the script, until Ctrl-C.
    #[arg(long)]
    pub forever: bool,
    /// First of three localhost ports serving each candidate's /metrics.
    #[arg(long, default_value_t = 9101, value_name = "PORT")]
    pub base_port: u16,
}

/// The seed's timings: 6s / 3s / 1s.
const SEED_TIMINGS: Timings = Timings {
    lease_duration: Duration::from_secs(6),
    renew_deadline: Duration::from_secs(3),
    retry_period: Duration::from_secs(1),
};

struct Candidate {
    name: String,
    port: u16,
    backend: MemoryBackend,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    http: Option<Server>,
    status: watch::Receiver<Status>,
}

struct Demo {
    store: MemoryLease,
    started: Instant,
    candidates: Vec<Candidate>,
}

impl Demo {
    fn say(&self, line: &str) {
        let t = self.started.elapsed().as_secs_f64();
        println!("[{t:7.3}s] {line}");
    }

    async fn start(&mut self, slot: usize, name: &str, port: u16) -> anyhow::Result<()> {
        let backend = self.store.client();
        let config = ElectionConfig {
            lease: "demo".into(),
            namespace: "default".into(),
            identity: name.into(),
            timings: SEED_TIMINGS,
            release_on_cancel: true,
        };
        let listener = http::bind(([127, 0, 0, 1], port).into()).await?;
        let candidate = candidate::candidate(backend.clone(), config);
        let http = Some(candidate.serve(listener, Readiness::Observed, None));
        let status = candidate.handles.status.clone();
        let shutdown = CancellationToken::new();
        tokio::spawn(narrate(
            name.to_string(),
            self.started,
            candidate.handles.events,
        ));
        let task = tokio::spawn(candidate.elector.run(shutdown.clone()));
        let c = Candidate {
            name: name.into(),
            port,
            backend,
            shutdown,
            task,
            http,
            status,
        };
        if slot < self.candidates.len() {
            self.candidates[slot] = c;
        } else {
            self.candidates.push(c);
        }
        self.say(&format!(
            "{name}: started, metrics on http://127.0.0.1:{port}/metrics"
        ));
        Ok(())
    }

    /// Waits until some candidate other than `not` leads; returns its slot.
    /// (A crashed candidate's status stays frozen as it was: skipped.)
    async fn await_leader(&self, not: Option<usize>) -> usize {
        loop {
            let leader = self
                .candidates
                .iter()
                .enumerate()
                .position(|(i, c)| Some(i) != not && c.status.borrow().is_leader);
            if let Some(i) = leader {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn show_lease(&self) {
        let holder = self
            .store
            .snapshot()
            .and_then(|l| l.spec)
            .map(|s| {
                format!(
                    "holder={:?} transitions={}",
                    s.holder_identity.unwrap_or_default(),
                    s.lease_transitions.unwrap_or(0)
                )
            })
            .unwrap_or_else(|| "absent".into());
        self.say(&format!("kubectl get lease demo  ->  {holder}"));
    }

    async fn stop_http(&mut self, slot: usize) {
        if let Some(server) = self.candidates[slot].http.take() {
            server.stop().await;
        }
    }

    /// Stops candidate `slot` as Ctrl-C would, and waits until it has released.
    async fn stop(&mut self, slot: usize) {
        self.candidates[slot].shutdown.cancel();
        let task = std::mem::replace(&mut self.candidates[slot].task, tokio::spawn(async {}));
        let _ = task.await;
    }

    /// Starts candidate `slot` again under its old name and port.
    async fn restart(&mut self, slot: usize) -> anyhow::Result<()> {
        let (name, port) = (
            self.candidates[slot].name.clone(),
            self.candidates[slot].port,
        );
        self.start(slot, &name, port).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    }

    fn name(&self, slot: usize) -> &str {
        &self.candidates[slot].name
    }
}

async fn narrate(name: String, started: Instant, mut events: mpsc::UnboundedReceiver<LeaderEvent>) {
    while let Some(e) = events.recv().await {
        let t = started.elapsed().as_secs_f64();
        match e {
            LeaderEvent::StartedLeading(l) => println!(
                "[{t:7.3}s] {name}: became leader (fencing token {})",
                l.fencing_token
            ),
            LeaderEvent::StoppedLeading => println!("[{t:7.3}s] {name}: stopped leading"),
            LeaderEvent::NewLeader(_) => {}
        }
    }
}

/// Runs the scripted demonstration.
pub async fn run(args: DemoArgs, loaded: &Loaded) -> anyhow::Result<i32> {
    let telemetry = logs_if_asked(loaded);
    let t = SEED_TIMINGS;
    let mut demo = Demo {
        store: MemoryLease::new("demo", "default"),
        started: Instant::now(),
        candidates: Vec::new(),
    };
    println!(
        "lease-elector demo: three candidates, one in-memory Lease, lease_duration {:?}, renew_deadline {:?}, retry_period {:?}\n",
        t.lease_duration, t.renew_deadline, t.retry_period
    );
    let names = ["candidate-a", "candidate-b", "candidate-c"];
    for (i, name) in names.iter().enumerate() {
        demo.start(i, name, args.base_port + i as u16).await?;
        if i == 0 {
            demo.await_leader(None).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    demo.show_lease();

    release(&mut demo).await?;
    crash(&mut demo).await?;
    cut(&mut demo).await;

    if args.forever {
        demo.say("running until Ctrl-C (metrics stay up)");
        let _ = tokio::signal::ctrl_c().await;
    }
    // Followers first, so the final release is not taken up by another.
    demo.candidates.sort_by_key(|c| c.status.borrow().is_leader);
    for c in demo.candidates.drain(..) {
        c.shutdown.cancel();
        let _ = c.task.await;
        if let Some(server) = c.http {
            server.stop().await;
        }
    }
    if let Some(t) = telemetry {
        t.flush().await; // exports the spans left
    }
    println!("demo finished");
    Ok(0)
}

/// Keeps the timeline readable: logs (and traces) only when asked for.
fn logs_if_asked(loaded: &Loaded) -> Option<telemetry::Telemetry> {
    let asked = matches!(loaded.origin("log.level"), Origin::Flag(_) | Origin::Env(_));
    if !asked && std::env::var_os("RUST_LOG").is_none() {
        return None;
    }
    match telemetry::init(&loaded.settings.log, &loaded.settings.otel) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("lease-elector: logs and traces not set up: {e:#}");
            None
        }
    }
}

/// 1. The leader stops and releases the Lease.
async fn release(demo: &mut Demo) -> anyhow::Result<()> {
    let old = demo.await_leader(None).await;
    println!();
    demo.say(&format!(
        "== 1. {} is stopped (Ctrl-C): it releases the Lease",
        demo.name(old)
    ));
    let t0 = Instant::now();
    demo.stop(old).await;
    let new = demo.await_leader(Some(old)).await;
    demo.say(&format!(
        "handover to {} took {:.0} ms (no lease_duration wait: the Lease was released)",
        demo.name(new),
        t0.elapsed().as_secs_f64() * 1000.0
    ));
    demo.show_lease();
    demo.stop_http(old).await;
    demo.restart(old).await
}

/// 2. The leader dies without releasing.
async fn crash(demo: &mut Demo) -> anyhow::Result<()> {
    let old = demo.await_leader(None).await;
    println!();
    demo.say(&format!(
        "== 2. {} crashes (kill -9): no release, the others wait for the Lease to expire",
        demo.name(old)
    ));
    let t0 = Instant::now();
    demo.candidates[old].task.abort();
    demo.stop_http(old).await;
    let new = demo.await_leader(Some(old)).await;
    demo.say(&format!(
        "takeover by {} after {:.2} s (lease_duration {:?}, counted from the last renew they saw)",
        demo.name(new),
        t0.elapsed().as_secs_f64(),
        SEED_TIMINGS.lease_duration
    ));
    demo.show_lease();
    demo.restart(old).await
}

/// 3. The leader's connection is cut.
async fn cut(demo: &mut Demo) {
    let t = SEED_TIMINGS;
    let old = demo.await_leader(None).await;
    println!();
    demo.say(&format!(
        "== 3. {}'s connection to the API server is cut",
        demo.name(old)
    ));
    let last_renew = demo.candidates[old].status.borrow().last_renew_at;
    demo.candidates[old].backend.set_connected(false);
    while demo.candidates[old].status.borrow().is_leader {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(last) = last_renew {
        demo.say(&format!(
            "{} gave up {:.2} s after its last successful renew (renew_deadline {:?})",
            demo.name(old),
            last.elapsed().as_secs_f64(),
            t.renew_deadline
        ));
    }
    let new = demo.await_leader(Some(old)).await;
    demo.say(&format!(
        "takeover by {} {:.2} s after the cut leader's last renew (lease_duration {:?})",
        demo.name(new),
        last_renew.map_or(0.0, |l| l.elapsed().as_secs_f64()),
        t.lease_duration
    ));
    demo.show_lease();
    demo.candidates[old].backend.set_connected(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    demo.say(&format!(
        "{}'s connection is back: it follows {} (is_leader = {})",
        demo.name(old),
        demo.name(new),
        demo.candidates[old].status.borrow().is_leader as u8
    ));
    let two = demo
        .candidates
        .iter()
        .filter(|c| c.status.borrow().is_leader)
        .count();
    demo.say(&format!("leaders now: {two}"));
    println!();
}
