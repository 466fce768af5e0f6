//! `lease-elector demo`: the seed's three demonstrations without a cluster.
//!
//! Three candidates run the real election code in one process over an
//! in-memory Lease (the [`MemoryLease`] test double), each serving its own
//! `/metrics` on localhost. A script then replays what the client-go example
//! shows in three terminals: the leader stops and releases, the leader dies
//! without releasing, the leader's connection is cut.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::memory::{MemoryBackend, MemoryLease};
use crate::config::{Loaded, Readiness};
use crate::election::{ElectionConfig, Elector, LeaderEvent, Status, Timings};
use crate::http::{self, HttpState};
use crate::metrics::Metrics;

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
    http_stop: CancellationToken,
    task: JoinHandle<()>,
    http: JoinHandle<()>,
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
        let metrics = Arc::new(Metrics::new(&config.lease, &config.namespace));
        let mut elector = Elector::new(backend.clone(), config, metrics.clone());
        let events = elector.events();
        let status = elector.status();
        let shutdown = CancellationToken::new();
        let listener = http::bind(([127, 0, 0, 1], port).into()).await?;
        let http_stop = CancellationToken::new();
        let http = tokio::spawn(http::serve(
            listener,
            HttpState {
                metrics,
                status: status.clone(),
                child: None,
                readiness: Readiness::Observed,
                lease_duration: SEED_TIMINGS.lease_duration,
            },
            http_stop.clone(),
        ));
        tokio::spawn(narrate(name.to_string(), self.started, events));
        let task = tokio::spawn(elector.run(shutdown.clone()));
        let c = Candidate {
            name: name.into(),
            port,
            backend,
            shutdown,
            http_stop,
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
        self.candidates[slot].http_stop.cancel();
        let http = std::mem::replace(&mut self.candidates[slot].http, tokio::spawn(async {}));
        let _ = http.await;
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
    // Keep the timeline readable: logs (and traces) only when asked for.
    let mut telemetry = None;
    let asked = matches!(
        loaded.origin("log.level"),
        crate::config::Origin::Flag(_) | crate::config::Origin::Env(_)
    );
    if asked || std::env::var_os("RUST_LOG").is_some() {
        match crate::telemetry::init(&loaded.settings) {
            Ok(t) => telemetry = Some(t),
            Err(e) => eprintln!("lease-elector: logs and traces not set up: {e:#}"),
        }
    }
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

    // 1. The leader stops and releases the Lease.
    let old = demo.await_leader(None).await;
    println!();
    demo.say(&format!(
        "== 1. {} is stopped (Ctrl-C): it releases the Lease",
        demo.candidates[old].name
    ));
    let t0 = Instant::now();
    demo.candidates[old].shutdown.cancel();
    let task = std::mem::replace(&mut demo.candidates[old].task, tokio::spawn(async {}));
    let _ = task.await;
    let new = demo.await_leader(Some(old)).await;
    demo.say(&format!(
        "handover to {} took {:.0} ms (no lease_duration wait: the Lease was released)",
        demo.candidates[new].name,
        t0.elapsed().as_secs_f64() * 1000.0
    ));
    demo.show_lease();
    demo.stop_http(old).await;
    let (name, port) = (demo.candidates[old].name.clone(), demo.candidates[old].port);
    demo.start(old, &name, port).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. The leader dies without releasing.
    let old = demo.await_leader(None).await;
    println!();
    demo.say(&format!(
        "== 2. {} crashes (kill -9): no release, the others wait for the Lease to expire",
        demo.candidates[old].name
    ));
    let t0 = Instant::now();
    demo.candidates[old].task.abort();
    demo.stop_http(old).await;
    let new = demo.await_leader(Some(old)).await;
    demo.say(&format!(
        "takeover by {} after {:.2} s (lease_duration {:?}, counted from the last renew they saw)",
        demo.candidates[new].name,
        t0.elapsed().as_secs_f64(),
        t.lease_duration
    ));
    demo.show_lease();
    let (name, port) = (demo.candidates[old].name.clone(), demo.candidates[old].port);
    demo.start(old, &name, port).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. The leader's connection is cut.
    let old = demo.await_leader(None).await;
    println!();
    demo.say(&format!(
        "== 3. {}'s connection to the API server is cut",
        demo.candidates[old].name
    ));
    let last_renew = demo.candidates[old].status.borrow().last_renew_at;
    demo.candidates[old].backend.set_connected(false);
    while demo.candidates[old].status.borrow().is_leader {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(last) = last_renew {
        demo.say(&format!(
            "{} gave up {:.2} s after its last successful renew (renew_deadline {:?})",
            demo.candidates[old].name,
            last.elapsed().as_secs_f64(),
            t.renew_deadline
        ));
    }
    let new = demo.await_leader(Some(old)).await;
    demo.say(&format!(
        "takeover by {} {:.2} s after the cut leader's last renew (lease_duration {:?})",
        demo.candidates[new].name,
        last_renew.map_or(0.0, |l| l.elapsed().as_secs_f64()),
        t.lease_duration
    ));
    demo.show_lease();
    demo.candidates[old].backend.set_connected(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    demo.say(&format!(
        "{}'s connection is back: it follows {} (is_leader = {})",
        demo.candidates[old].name,
        demo.candidates[new].name,
        demo.candidates[old].status.borrow().is_leader as u8
    ));
    let two = demo
        .candidates
        .iter()
        .filter(|c| c.status.borrow().is_leader)
        .count();
    demo.say(&format!("leaders now: {two}"));
    println!();

    if args.forever {
        demo.say("running until Ctrl-C (metrics stay up)");
        let _ = tokio::signal::ctrl_c().await;
    }
    // Followers first, so the final release is not taken up by another.
    demo.candidates.sort_by_key(|c| c.status.borrow().is_leader);
    for c in demo.candidates.drain(..) {
        c.shutdown.cancel();
        let _ = c.task.await;
        c.http_stop.cancel();
        let _ = c.http.await;
    }
    drop(telemetry); // flushes exported spans
    println!("demo finished");
    Ok(0)
}
