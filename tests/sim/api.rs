//! A simulated Kubernetes API server: a **test double** with fault injection.
//!
//! One Lease with an integer resourceVersion and the API server's optimistic
//! concurrency rule (a replace carrying a stale resourceVersion is a 409).
//! Each candidate talks to it through its own [`SimClient`], whose link can be
//! partitioned (silently, replies only, or loudly), made to answer 500s, or
//! have its watch cut; while the fault phase lasts every request also draws
//! latencies, losses, spurious 409s and 500s, and every watch event delays,
//! duplicates and stale copies from [`Network`]. A request that was sent is
//! applied by the server even if the client has given up on it.
//!
//! Clock-rate skew: a candidate whose clock runs at rate `r` waits
//! `leaseDurationSeconds / r` of true time, so its view of the record carries
//! that duration (whole seconds, rounded), translated back when it writes the
//! value it was shown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lease_elector::backend::{BackendError, Change, ElectionEvent, LeaseBackend};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until};

use crate::faults::Network;

/// One committed write, for the checker.
#[derive(Debug, Clone)]
pub struct Commit {
    /// When the server applied it.
    pub at: Instant,
    /// The candidate that wrote it.
    pub writer: usize,
    /// leaseTransitions after the write.
    pub transitions: i32,
}

/// The state of one candidate's link; counters, so that overlapping faults nest.
#[derive(Debug, Clone, Default)]
struct Link {
    partitioned: u32,
    replies_lost: u32,
    refused: u32,
    server_errors: u32,
    watch_down: u32,
    rate: f64,
}

impl Link {
    fn watch_cut(&self) -> bool {
        self.partitioned + self.replies_lost + self.refused + self.watch_down > 0
    }
}

struct Watcher {
    who: usize,
    queue: mpsc::UnboundedSender<(Instant, Change)>,
    last_delivery: Instant,
}

struct State {
    lease: Option<Lease>,
    version: u64,
    links: Vec<Link>,
    watchers: Vec<Watcher>,
    network: Network,
    faults_active: bool,
    conflict_storm: u32,
    /// One draw stream per candidate, so that one candidate's requests do
    /// not shift another's draws.
    rngs: Vec<StdRng>,
    commits: Vec<Commit>,
    counts: BTreeMap<&'static str, u64>,
}

/// A link fault that [`SimApiServer::link_fault`] switches on or off.
#[derive(Debug, Clone, Copy)]
pub enum LinkFault {
    Partitioned,
    RepliesLost,
    Refused,
    ServerErrors,
    WatchDown,
}

/// The simulated API server shared by all candidates of a run.
#[derive(Clone)]
pub struct SimApiServer(Arc<Mutex<State>>);

impl SimApiServer {
    /// An empty server (no Lease yet) for candidates with these clock rates.
    pub fn new(seed: u64, network: Network, clock_rates: &[f64]) -> Self {
        SimApiServer(Arc::new(Mutex::new(State {
            lease: None,
            version: 0,
            links: clock_rates
                .iter()
                .map(|&rate| Link {
                    rate,
                    ..Link::default()
                })
                .collect(),
            watchers: Vec::new(),
            network,
            faults_active: true,
            conflict_storm: 0,
            rngs: (0..clock_rates.len() as u64)
                .map(|who| StdRng::seed_from_u64(seed ^ 0x5eed_a915 ^ (who << 40)))
                .collect(),
            commits: Vec::new(),
            counts: BTreeMap::new(),
        })))
    }

    /// Candidate `who`'s connection.
    pub fn client(&self, who: usize) -> SimClient {
        SimClient {
            server: self.clone(),
            who,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the per-request faults (scheduled ones end on their own).
    pub fn stop_faults(&self) {
        self.lock().faults_active = false;
    }

    /// Every committed write so far.
    pub fn commits(&self) -> Vec<Commit> {
        self.lock().commits.clone()
    }

    /// How often each per-request fault fired.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.lock().counts.clone()
    }

    /// Starts (`on`) or ends a 409 storm.
    pub fn conflict_storm(&self, on: bool) {
        let mut s = self.lock();
        if on {
            s.conflict_storm += 1;
        } else {
            s.conflict_storm -= 1;
        }
    }

    /// Switches a fault of `who`'s link on or off; a watch that comes back re-lists.
    pub fn link_fault(&self, who: usize, fault: LinkFault, on: bool) {
        let mut s = self.lock();
        let was_cut = s.links[who].watch_cut();
        let link = &mut s.links[who];
        let counter = match fault {
            LinkFault::Partitioned => &mut link.partitioned,
            LinkFault::RepliesLost => &mut link.replies_lost,
            LinkFault::Refused => &mut link.refused,
            LinkFault::ServerErrors => &mut link.server_errors,
            LinkFault::WatchDown => &mut link.watch_down,
        };
        if on {
            *counter += 1;
        } else {
            *counter -= 1;
        }
        if was_cut && !s.links[who].watch_cut() {
            s.relist(who);
        }
    }
}

impl State {
    fn bump(&mut self, name: &'static str) {
        *self.counts.entry(name).or_default() += 1;
    }

    fn draw(&mut self, who: usize, p: f64, name: &'static str) -> bool {
        let hit = self.faults_active && p > 0.0 && self.rngs[who].random_bool(p);
        if hit {
            self.bump(name);
        }
        hit
    }

    fn latency(&mut self, who: usize, max: Duration) -> Duration {
        if self.faults_active && !max.is_zero() {
            Duration::from_secs_f64(self.rngs[who].random_range(0.0..max.as_secs_f64()))
        } else {
            Duration::ZERO
        }
    }

    /// The record as candidate `who` sees it on its clock.
    fn view(&self, who: usize, lease: &Lease) -> Lease {
        let mut lease = lease.clone();
        let rate = self.links[who].rate;
        if let Some(spec) = lease.spec.as_mut()
            && let Some(secs) = spec.lease_duration_seconds
        {
            spec.lease_duration_seconds = Some(scaled(secs, rate));
        }
        lease
    }

    fn view_change(&self, who: usize, change: &Change) -> Change {
        match change {
            Change::Applied(l) => Change::Applied(Box::new(self.view(who, l))),
            other => other.clone(),
        }
    }

    /// A written spec in true time: a duration equal to the one `who` was shown is the stored one.
    fn unview(&self, who: usize, mut spec: LeaseSpec) -> LeaseSpec {
        let rate = self.links[who].rate;
        let stored = self
            .lease
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.lease_duration_seconds);
        if let (Some(stored), Some(written)) = (stored, spec.lease_duration_seconds)
            && written == scaled(stored, rate)
        {
            spec.lease_duration_seconds = Some(stored);
        }
        spec
    }

    fn current_change(&self) -> Change {
        match &self.lease {
            Some(l) => Change::Applied(Box::new(l.clone())),
            None => Change::Deleted(Some(self.version.to_string())),
        }
    }

    fn relist(&mut self, who: usize) {
        let now = Instant::now();
        let current = self.current_change();
        let change = self.view_change(who, &current);
        for w in self.watchers.iter_mut().filter(|w| w.who == who) {
            w.last_delivery = w.last_delivery.max(now);
            let _ = w.queue.send((w.last_delivery, Change::WatchStarted));
            let _ = w.queue.send((w.last_delivery, change.clone()));
        }
    }

    fn publish(&mut self, previous: Option<Lease>) {
        let now = Instant::now();
        let current = self.current_change();
        self.watchers.retain(|w| !w.queue.is_closed());
        for i in 0..self.watchers.len() {
            let who = self.watchers[i].who;
            if self.links[who].watch_cut() {
                continue;
            }
            let delay = self.latency(who, self.network.watch_latency);
            let duplicate = self.draw(who, self.network.watch_duplicate, "watch_duplicate");
            let stale =
                previous.is_some() && self.draw(who, self.network.watch_stale, "watch_stale");
            let change = self.view_change(who, &current);
            let old = previous
                .as_ref()
                .map(|p| Change::Applied(Box::new(self.view(who, p))));
            let w = &mut self.watchers[i];
            w.last_delivery = w.last_delivery.max(now + delay);
            let at = w.last_delivery;
            let _ = w.queue.send((at, change.clone()));
            if duplicate {
                let _ = w.queue.send((at, change));
            }
            if stale && let Some(old) = old {
                let _ = w.queue.send((at, old));
            }
        }
    }

    fn store(&mut self, writer: usize, mut lease: Lease) -> Lease {
        let previous = self.lease.clone();
        self.version += 1;
        lease.metadata.resource_version = Some(self.version.to_string());
        let spec = lease.spec.clone().unwrap_or_default();
        self.commits.push(Commit {
            at: Instant::now(),
            writer,
            transitions: spec.lease_transitions.unwrap_or(0),
        });
        self.lease = Some(lease.clone());
        self.publish(previous);
        lease
    }

    /// Applies one request that reached the server.
    fn apply(&mut self, who: usize, op: Op) -> Result<Option<Lease>, BackendError> {
        let server_error = self.links[who].server_errors > 0;
        if server_error || self.draw(who, self.network.server_error, "server_error") {
            return Err(BackendError::Server {
                code: 500,
                message: "simulated".into(),
            });
        }
        let write = !matches!(op, Op::Get);
        if write && (self.conflict_storm > 0 || self.draw(who, self.network.conflict, "conflict")) {
            return Err(BackendError::Conflict("simulated".into()));
        }
        let written = match op {
            Op::Get => return Ok(self.lease.as_ref().map(|l| self.view(who, l))),
            Op::Create(lease) => {
                if self.lease.is_some() {
                    return Err(BackendError::AlreadyExists);
                }
                let spec = lease.spec.clone();
                self.store(
                    who,
                    Lease {
                        metadata: ObjectMeta {
                            name: lease.metadata.name.clone(),
                            namespace: lease.metadata.namespace.clone(),
                            ..ObjectMeta::default()
                        },
                        spec,
                    },
                )
            }
            Op::Replace(lease) => {
                let Some(current) = self.lease.clone() else {
                    return Err(BackendError::NotFound);
                };
                if current.metadata.resource_version != lease.metadata.resource_version {
                    return Err(BackendError::Conflict(
                        "resourceVersion does not match".into(),
                    ));
                }
                let spec = lease.spec.clone().map(|s| self.unview(who, s));
                let mut new = current;
                new.spec = spec;
                self.store(who, new)
            }
        };
        Ok(Some(self.view(who, &written)))
    }
}

/// The least time a request takes to reach the server.
const MIN_LATENCY: Duration = Duration::from_millis(1);

fn scaled(secs: i32, rate: f64) -> i32 {
    ((secs as f64 / rate).round() as i32).max(1)
}

enum Op {
    Get,
    Create(Lease),
    Replace(Lease),
}

/// What happens to a request on its way out.
enum Outbound {
    Refused,
    Lost,
    Arrives(Duration),
}

/// One candidate's connection to the [`SimApiServer`].
#[derive(Clone)]
pub struct SimClient {
    server: SimApiServer,
    who: usize,
}

impl SimClient {
    async fn request(&self, op: Op) -> Result<Option<Lease>, BackendError> {
        let outbound = {
            let mut s = self.server.lock();
            s.bump("requests");
            let link = s.links[self.who].clone();
            let net = s.network;
            if link.refused > 0 {
                Outbound::Refused
            } else if link.partitioned > 0 || s.draw(self.who, net.lost_request, "lost_request") {
                Outbound::Lost
            } else {
                Outbound::Arrives(s.latency(self.who, net.request_latency))
            }
        };
        let latency = match outbound {
            Outbound::Refused => {
                return Err(BackendError::Network(
                    "connection refused (simulated)".into(),
                ));
            }
            // The client's request timeout ends the wait.
            Outbound::Lost => std::future::pending().await,
            // Never instantaneous: a request loop without a pause would
            // otherwise spin at one instant and stop the paused clock.
            Outbound::Arrives(latency) => latency.max(MIN_LATENCY),
        };
        // Applied by the server even if this future is dropped meanwhile.
        let (tx, rx) = oneshot::channel();
        let server = self.server.clone();
        let who = self.who;
        tokio::spawn(async move {
            sleep(latency).await;
            let _ = tx.send(server.lock().apply(who, op));
        });
        let result = rx
            .await
            .unwrap_or_else(|_| Err(BackendError::Network("simulated server gone".into())));
        let back = {
            let mut s = self.server.lock();
            let link = s.links[self.who].clone();
            let net = s.network;
            if link.partitioned + link.replies_lost > 0
                || s.draw(self.who, net.lost_reply, "lost_reply")
            {
                None
            } else {
                Some(s.latency(self.who, net.reply_latency))
            }
        };
        match back {
            None => std::future::pending().await,
            Some(latency) => {
                sleep(latency).await;
                result
            }
        }
    }
}

impl LeaseBackend for SimClient {
    async fn get(&self) -> Result<Option<Lease>, BackendError> {
        self.request(Op::Get).await
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, BackendError> {
        self.request(Op::Create(lease.clone()))
            .await
            .map(|l| l.expect("a create answers the object"))
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, BackendError> {
        self.request(Op::Replace(lease.clone()))
            .await
            .map(|l| l.expect("a replace answers the object"))
    }

    fn watch(&self) -> mpsc::UnboundedReceiver<Change> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (queue, mut pending) = mpsc::unbounded_channel::<(Instant, Change)>();
        // Delivers in order, each event at its instant.
        tokio::spawn(async move {
            while let Some((at, change)) = pending.recv().await {
                sleep_until(at).await;
                if tx.send(change).is_err() {
                    return;
                }
            }
        });
        let mut s = self.server.lock();
        s.watchers.push(Watcher {
            who: self.who,
            queue,
            last_delivery: Instant::now(),
        });
        if !s.links[self.who].watch_cut() {
            s.relist(self.who);
        }
        rx
    }

    async fn record_event(
        &self,
        _event: ElectionEvent,
        _identity: &str,
    ) -> Result<(), BackendError> {
        Ok(())
    }
}
