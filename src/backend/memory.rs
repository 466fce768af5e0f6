//! An in-memory Lease: a **test double** for the API server.
//!
//! It keeps one Lease with a resourceVersion counter and enforces the same
//! optimistic-concurrency rule as the API server (a replace with a stale
//! resourceVersion is a conflict), so the election state machine can be tested
//! deterministically under tokio's paused clock, and `lease-elector demo` can run
//! without a cluster. It is never a stand-in for the end-to-end tests.
//!
//! Each candidate gets its own [`MemoryBackend`] handle from [`MemoryLease::client`];
//! a handle can be cut off ([`MemoryBackend::set_connected`]) to play the part
//! of a closed network connection, or its watches silenced
//! ([`MemoryBackend::freeze_watches`]) to play a connection that died
//! without a word.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::mpsc;

use super::{BackendError, Change, ElectionEvent, LeaseBackend};

#[derive(Default)]
struct Store {
    lease: Option<Lease>,
    version: u64,
    watchers: Vec<Watcher>,
    events: Vec<String>,
}

struct Watcher {
    connected: Arc<AtomicBool>,
    /// Delivers nothing, ever: its connection died silently.
    frozen: bool,
    tx: mpsc::UnboundedSender<Change>,
}

impl Store {
    fn publish(&mut self, change: Change) {
        self.watchers.retain(|w| !w.tx.is_closed());
        for w in &self.watchers {
            if w.connected.load(Ordering::SeqCst) && !w.frozen {
                let _ = w.tx.send(change.clone());
            }
        }
    }

    fn store(&mut self, mut lease: Lease) -> Lease {
        self.version += 1;
        lease.metadata.resource_version = Some(self.version.to_string());
        self.lease = Some(lease.clone());
        self.publish(Change::Applied(Box::new(lease.clone())));
        lease
    }
}

/// One in-memory Lease shared by any number of candidates.
#[derive(Clone)]
pub struct MemoryLease {
    name: String,
    namespace: String,
    store: Arc<Mutex<Store>>,
}

impl MemoryLease {
    /// An empty store: the Lease does not exist yet.
    pub fn new(name: &str, namespace: &str) -> Self {
        MemoryLease {
            name: name.to_string(),
            namespace: namespace.to_string(),
            store: Arc::default(),
        }
    }

    /// A handle for one candidate, connected.
    pub fn client(&self) -> MemoryBackend {
        MemoryBackend {
            lease: self.clone(),
            connected: Arc::new(AtomicBool::new(true)),
            requests: Arc::default(),
            watches: Arc::default(),
            failure: Arc::default(),
            latency: Arc::default(),
        }
    }

    /// The stored Lease, as `kubectl get lease -o yaml` would show it.
    pub fn snapshot(&self) -> Option<Lease> {
        self.lock().lease.clone()
    }

    /// Writes a spec as an outside party would (kubectl, a Helm chart, another
    /// elector), bumping the resourceVersion and notifying watchers.
    pub fn write_spec(&self, spec: LeaseSpec) -> Lease {
        let mut store = self.lock();
        let mut lease = store.lease.clone().unwrap_or_else(|| self.blank());
        lease.spec = Some(spec);
        store.store(lease)
    }

    /// Like [`MemoryLease::write_spec`] but no watcher hears of it, as when a
    /// watch lags behind: the next write from a stale copy will conflict.
    pub fn write_spec_quietly(&self, spec: LeaseSpec) -> Lease {
        let mut store = self.lock();
        let mut lease = store.lease.clone().unwrap_or_else(|| self.blank());
        lease.spec = Some(spec);
        store.version += 1;
        lease.metadata.resource_version = Some(store.version.to_string());
        store.lease = Some(lease.clone());
        lease
    }

    /// Deletes the Lease, as `kubectl delete lease` would.
    pub fn delete(&self) {
        let mut store = self.lock();
        if store.lease.take().is_some() {
            store.version += 1;
            let version = store.version.to_string();
            store.publish(Change::Deleted(Some(version)));
        }
    }

    /// Kubernetes Events recorded so far, as "reason: message" lines.
    pub fn events(&self) -> Vec<String> {
        self.lock().events.clone()
    }

    fn blank(&self) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A poisoned lock only means a test panicked while holding it.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One candidate's connection to a [`MemoryLease`].
#[derive(Clone)]
pub struct MemoryBackend {
    lease: MemoryLease,
    connected: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    watches: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<BackendError>>>,
    latency: Arc<Mutex<std::time::Duration>>,
}

impl MemoryBackend {
    /// Cuts (`false`) or restores (`true`) this candidate's connection. While
    /// cut, every request fails with a network error and no watch event
    /// arrives; on restore the watch reports the current Lease, as a re-list
    /// after a reconnect would.
    pub fn set_connected(&self, connected: bool) {
        let was = self.connected.swap(connected, Ordering::SeqCst);
        if connected && !was {
            let store = self.lease.lock();
            let change = match &store.lease {
                Some(l) => Change::Applied(Box::new(l.clone())),
                None => Change::Deleted(Some(store.version.to_string())),
            };
            for w in &store.watchers {
                if Arc::ptr_eq(&w.connected, &self.connected) && !w.frozen {
                    let _ = w.tx.send(Change::WatchStarted);
                    let _ = w.tx.send(change.clone());
                }
            }
        }
    }

    /// Silences the watches this handle has open, for good, as a connection
    /// whose NAT or load-balancer state was lost: no event arrives and
    /// nothing says so. Requests, and watches started later, work.
    pub fn freeze_watches(&self) {
        let mut store = self.lease.lock();
        for w in &mut store.watchers {
            if Arc::ptr_eq(&w.connected, &self.connected) {
                w.frozen = true;
            }
        }
    }

    /// How many watches this handle has started.
    pub fn watch_count(&self) -> u64 {
        self.watches.load(Ordering::SeqCst)
    }

    /// Makes every request fail with `error` (e.g. a 403) until reset with
    /// `None`; the watch keeps working, as with an RBAC change.
    pub fn fail_with(&self, error: Option<BackendError>) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// Makes every get/create/replace take `latency` before it is carried
    /// out (a slow network or API server), so a test can act while a request
    /// is in flight.
    pub fn set_latency(&self, latency: std::time::Duration) {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner()) = latency;
    }

    async fn in_flight(&self) {
        let latency = *self.latency.lock().unwrap_or_else(|e| e.into_inner());
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// How many get/create/replace requests this handle has sent.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), BackendError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(e);
        }
        if self.connected.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(BackendError::Network(
                "connection refused (simulated cut)".into(),
            ))
        }
    }
}

impl LeaseBackend for MemoryBackend {
    async fn get(&self) -> Result<Option<Lease>, BackendError> {
        self.check()?;
        self.in_flight().await;
        Ok(self.lease.snapshot())
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, BackendError> {
        self.check()?;
        self.in_flight().await;
        let mut store = self.lease.lock();
        if store.lease.is_some() {
            return Err(BackendError::AlreadyExists);
        }
        let mut new = self.lease.blank();
        new.metadata.labels = lease.metadata.labels.clone();
        new.spec = lease.spec.clone();
        Ok(store.store(new))
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, BackendError> {
        self.check()?;
        self.in_flight().await;
        let mut store = self.lease.lock();
        let Some(current) = store.lease.clone() else {
            return Err(BackendError::NotFound);
        };
        if current.metadata.resource_version != lease.metadata.resource_version {
            return Err(BackendError::Conflict(
                "resourceVersion does not match".into(),
            ));
        }
        let mut new = current;
        new.spec = lease.spec.clone();
        Ok(store.store(new))
    }

    fn watch(&self) -> mpsc::UnboundedReceiver<Change> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut store = self.lease.lock();
        if self.connected.load(Ordering::SeqCst) {
            let _ = tx.send(Change::WatchStarted);
            let _ = tx.send(match &store.lease {
                Some(l) => Change::Applied(Box::new(l.clone())),
                None => Change::Deleted(Some(store.version.to_string())),
            });
        }
        store.watchers.push(Watcher {
            connected: self.connected.clone(),
            frozen: false,
            tx,
        });
        rx
    }

    async fn record_event(&self, event: ElectionEvent, identity: &str) -> Result<(), BackendError> {
        self.check()?;
        let line = format!("LeaderElection: {}", event.message(identity));
        self.lease.lock().events.push(line);
        Ok(())
    }
}
