//! Where the Lease lives.
//!
//! The election never talks to Kubernetes directly: it goes through
//! [`LeaseBackend`], a handful of verbs on one Lease object. [`kube::KubeBackend`]
//! implements them against a real API server; [`memory::MemoryLease`] is an
//! in-memory test double used by the state-machine tests and by `lease-elector
//! demo`.

pub mod connection;
pub mod kube;
pub mod memory;
pub mod watch_backoff;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::mpsc;

/// What a backend reports about the Lease between requests.
#[derive(Debug, Clone)]
pub enum Change {
    /// The Lease was created or modified (or re-listed after a watch restart).
    Applied(Box<Lease>),
    /// The Lease was deleted, or found absent, as of this resourceVersion
    /// (when known), so that news older than our own create can be told apart.
    Deleted(Option<String>),
    /// A watch request was (re)started: counted as an API request.
    WatchStarted,
}

/// Kubernetes Events the elector records on the Lease, as client-go does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionEvent {
    /// `"<identity> became leader"`
    BecameLeader,
    /// `"<identity> stopped leading"`
    StoppedLeading,
}

impl ElectionEvent {
    /// The event message for a candidate, worded as client-go words it.
    pub fn message(self, identity: &str) -> String {
        match self {
            ElectionEvent::BecameLeader => format!("{identity} became leader"),
            ElectionEvent::StoppedLeading => format!("{identity} stopped leading"),
        }
    }
}

/// Why a request to the backend failed.
///
/// Each variant maps to one `reason` label of
/// `lease_elector_renew_failures_total` (see [`BackendError::reason`]), so the
/// label set stays small and fixed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// Someone else wrote the Lease since we read it (HTTP 409 on update).
    #[error("conflict: the Lease was modified by someone else ({0})")]
    Conflict(String),
    /// The Lease already exists (HTTP 409 on create).
    #[error("the Lease already exists")]
    AlreadyExists,
    /// The Lease does not exist (HTTP 404).
    #[error("the Lease does not exist")]
    NotFound,
    /// RBAC refused the request (HTTP 401/403); the message names the verb.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The API server rejected the object, or returned one we cannot use.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The API server answered with a 5xx or another unexpected status.
    #[error("server error (HTTP {code}): {message}")]
    Server {
        /// HTTP status code.
        code: u16,
        /// Message from the API server.
        message: String,
    },
    /// The API server could not be reached.
    #[error("network: {0}")]
    Network(String),
    /// No answer within the per-request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl BackendError {
    /// Every value [`BackendError::reason`] can return, for pre-registering metrics.
    pub const REASONS: [&'static str; 7] = [
        "timeout",
        "conflict",
        "forbidden",
        "not_found",
        "server_error",
        "network",
        "invalid",
    ];

    /// The metric label for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            BackendError::Conflict(_) | BackendError::AlreadyExists => "conflict",
            BackendError::NotFound => "not_found",
            BackendError::Forbidden(_) => "forbidden",
            BackendError::Invalid(_) => "invalid",
            BackendError::Server { .. } => "server_error",
            BackendError::Network(_) => "network",
            BackendError::Timeout(_) => "timeout",
        }
    }
}

/// The verbs the election needs on its one Lease.
///
/// Writes are optimistic: [`LeaseBackend::replace`] must carry the
/// `metadata.resourceVersion` it was given and fail with
/// [`BackendError::Conflict`] when the stored object has moved on. That check
/// is what makes two simultaneous takeovers impossible.
pub trait LeaseBackend: Send + Sync + 'static {
    /// Reads the Lease; `Ok(None)` when it does not exist.
    fn get(&self) -> impl Future<Output = Result<Option<Lease>, BackendError>> + Send;

    /// Creates the Lease; [`BackendError::AlreadyExists`] if someone was first.
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<Lease, BackendError>> + Send;

    /// Replaces the Lease if its resourceVersion still matches.
    fn replace(&self, lease: &Lease) -> impl Future<Output = Result<Lease, BackendError>> + Send;

    /// Starts following the Lease. Implementations reconnect by themselves and
    /// report the current object after every reconnect.
    fn watch(&self) -> mpsc::UnboundedReceiver<Change>;

    /// Records a Kubernetes Event on the Lease (best effort).
    fn record_event(
        &self,
        event: ElectionEvent,
        identity: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}
