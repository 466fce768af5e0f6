//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, `/leader` and
//! `/leader/stream` (Server-Sent Events, in [`stream`]).

pub mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::election::Status;
use crate::metrics::Metrics;
use crate::supervise::ChildStatus;

/// Extra time past lease_duration before a leader that stopped renewing is
/// reported unhealthy (client-go's HealthzAdaptor takes such a timeout too).
pub const HEALTHZ_MARGIN: Duration = Duration::from_secs(20);

/// `[http]`: where `/metrics`, `/healthz`, `/readyz`, `/leader` and
/// `/leader/stream` are served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address, `host:port`.
    pub listen: ListenAddr,
    /// When `/readyz` reports ready.
    pub readiness: Readiness,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: ListenAddr(SocketAddr::from(([0, 0, 0, 0], 9890))),
            readiness: Readiness::Observed,
        }
    }
}

/// When the process counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// Ready once the Lease has been read (the default; keeps PDBs meaningful).
    Observed,
    /// Ready only while leader, for active/passive Services.
    Leader,
}

/// A listen address such as `0.0.0.0:9890`, parsed when the settings load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(ListenAddr).map_err(|_| {
            D::Error::custom(format!("{text:?} is not an address such as 0.0.0.0:9890"))
        })
    }
}

/// What the endpoints read from.
#[derive(Clone)]
pub struct HttpState {
    /// The candidate's metrics.
    pub metrics: Arc<Metrics>,
    /// The candidate's live status.
    pub status: watch::Receiver<Status>,
    /// The supervised child, in `lease-elector run`.
    pub child: Option<watch::Receiver<ChildStatus>>,
    /// When `/readyz` answers 200.
    pub readiness: Readiness,
    /// The configured lease duration.
    pub lease_duration: Duration,
}

/// A response body: whole (`text`) or streamed (`/leader/stream`).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Serialize)]
struct LeaderBody<'a> {
    #[serde(flatten)]
    status: &'a Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    child: Option<ChildStatus>,
}

impl HttpState {
    fn respond<T>(&self, req: &Request<T>, stop: &CancellationToken) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        }
        let status = self.status.borrow().clone();
        match req.uri().path() {
            "/metrics" => with_type(
                text(StatusCode::OK, self.metrics.encode()),
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            "/healthz" | "/livez" => self.health(&status),
            "/readyz" => self.readiness(&status),
            "/leader" => {
                let body = LeaderBody {
                    status: &status,
                    child: self.child.as_ref().map(|c| c.borrow().clone()),
                };
                let json = serde_json::to_string(&body).expect("status serialises");
                with_type(text(StatusCode::OK, json), "application/json")
            }
            "/leader/stream" => self.leader_stream(req.method() == Method::HEAD, stop),
            _ => text(
                StatusCode::NOT_FOUND,
                "try /metrics, /healthz, /readyz, /leader or /leader/stream\n",
            ),
        }
    }

    /// `text/event-stream` of the leader state, until the elector is gone.
    fn leader_stream(&self, head: bool, stop: &CancellationToken) -> Response<Body> {
        let body = if head {
            Empty::new().boxed_unsync()
        } else {
            let feed = stream::Feed::new(self.status.clone(), self.child.clone(), stop.clone());
            StreamBody::new(stream::body(feed)).boxed_unsync()
        };
        let mut r = with_type(Response::new(body), "text/event-stream");
        let headers = r.headers_mut();
        let no_cache = hyper::header::HeaderValue::from_static("no-cache");
        headers.insert(hyper::header::CACHE_CONTROL, no_cache);
        // nginx would otherwise buffer the events.
        let no = hyper::header::HeaderValue::from_static("no");
        headers.insert("x-accel-buffering", no);
        r
    }

    /// 500 only for a leader whose renews have stalled well past lease_duration.
    fn health(&self, status: &Status) -> Response<Body> {
        let stalled = status.is_leader
            && status
                .last_renew_at
                .is_some_and(|t| Instant::now() - t > self.lease_duration + HEALTHZ_MARGIN);
        if stalled {
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "leader has not renewed the Lease for longer than lease_duration\n",
            )
        } else {
            text(StatusCode::OK, "ok\n")
        }
    }

    fn readiness(&self, status: &Status) -> Response<Body> {
        let ready = match self.readiness {
            Readiness::Observed => status.observed,
            Readiness::Leader => status.is_leader,
        };
        if ready {
            text(StatusCode::OK, "ok\n")
        } else if !status.observed {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the Lease has not been read yet\n",
            )
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, "not the leader\n")
        }
    }
}

fn with_type(mut r: Response<Body>, content_type: &'static str) -> Response<Body> {
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = code;
    r
}

/// Binds `addr` (so a port conflict is reported before the election starts).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` is cancelled, then lets open requests finish.
pub async fn serve(listener: TcpListener, state: HttpState, shutdown: CancellationToken) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    continue;
                }
            },
        };
        let (state, stop) = (state.clone(), shutdown.clone());
        let service = service_fn(move |req: Request<Incoming>| {
            let resp = state.respond(&req, &stop);
            async move { Ok::<_, Infallible>(resp) }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    // The port is free at once (a restarted candidate binds it again).
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
}

#[cfg(test)]
mod tests;
