//! The HTTP connections to the API server, kept honest.
//!
//! A connection can die without a word: NAT/conntrack or load-balancer
//! state lost on the way, no FIN, no RST. kube's default client has no read
//! timeout, no TCP keepalive and keeps idle connections pooled for 90 s, so a
//! request sent on such a connection, or a watch reading from it, waits for
//! minutes. The client built here bounds every stage instead (the rules are
//! in [`Connections::derive`]). It speaks HTTP/1.1, as kube's own client
//! does (its TLS connector offers only HTTP/1.1), so there are no HTTP/2
//! pings to set.
//!
//! Compared with kube's default stack it leaves out kube's retry of
//! 429/503/504 (the election retries on its own clock, every retry_period)
//! and its tracing layer; authentication (tokens, refreshed or not, client
//! certificates), the TLS settings and extra headers come from the same
//! `kube::Config` through kube's own layers.

use std::time::Duration;

use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ClientBuilder, ConfigExt};
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

use super::kube::WATCH_TIMEOUT;

/// Timeouts and keepalive of the connections, derived from the election's
/// timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// Writing a request.
    pub write_timeout: Duration,
    /// No byte read for this long on a connection with a request on it.
    pub read_timeout: Duration,
    /// An idle pooled connection is dropped after this long, not reused.
    pub pool_idle_timeout: Duration,
    /// TCP keepalive: first probe after this much silence...
    pub keepalive_idle: Duration,
    /// ...then one probe every interval...
    pub keepalive_interval: Duration,
    /// ...and the connection is dropped after this many unanswered.
    pub keepalive_retries: u32,
    /// TCP_USER_TIMEOUT: sent data unacknowledged for this long drops the
    /// connection (keepalive never probes while data is outstanding).
    pub user_timeout: Duration,
}

impl Connections {
    /// The rules, from the election's `retry_period` and `request_timeout`:
    ///
    /// - connect, TLS handshake and write within `request_timeout`, the
    ///   bound the election puts on a whole request anyway;
    /// - an idle pooled connection lives 2 × retry_period: a leader renews
    ///   every retry_period and keeps reusing its connection, while a
    ///   follower, which hears through its watch and rarely sends anything,
    ///   takes a fresh one for its acquire or check instead of finding out
    ///   the slow way that its old one died;
    /// - TCP keepalive from retry_period (at least 1 s) of silence, one probe
    ///   per retry_period, three: a connection whose peer stopped answering
    ///   is dropped after 4 × retry_period, even a watch with no news due
    ///   (no holder) or an idle pooled one; TCP_USER_TIMEOUT the same span
    ///   (at least request_timeout) for data sent and never acknowledged;
    /// - the read timeout is above the longest healthy silence on a
    ///   connection, a watch without news until the server closes it after
    ///   WATCH_TIMEOUT: it is the last resort behind a proxy that answers
    ///   keepalives for a dead upstream. A quiet watch is caught earlier, by
    ///   the election's quiet-watch check (2 × retry_period at most).
    pub fn derive(retry_period: Duration, request_timeout: Duration) -> Self {
        let probe = retry_period.max(Duration::from_secs(1));
        let retries = 3;
        Connections {
            connect_timeout: request_timeout,
            write_timeout: request_timeout,
            read_timeout: WATCH_TIMEOUT + Duration::from_secs(30),
            pool_idle_timeout: 2 * retry_period,
            keepalive_idle: probe,
            keepalive_interval: probe,
            keepalive_retries: retries,
            user_timeout: (probe * (1 + retries)).max(request_timeout),
        }
    }

    /// A kube client for `config` whose connections follow these rules.
    pub fn client(&self, config: &kube::Config) -> Result<kube::Client, kube::Error> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(self.keepalive_idle));
        tcp.set_keepalive_interval(Some(self.keepalive_interval));
        tcp.set_keepalive_retries(Some(self.keepalive_retries));
        tcp.set_tcp_user_timeout(Some(self.user_timeout));
        let tls = config.rustls_https_connector_with_connector(tcp)?;
        let mut timed = TimeoutConnector::new(tls);
        timed.set_connect_timeout(Some(self.connect_timeout));
        timed.set_read_timeout(Some(self.read_timeout));
        timed.set_write_timeout(Some(self.write_timeout));
        // The read timeout counts from the request, not from when the
        // pooled connection went idle.
        timed.set_reset_reader_on_write(true);
        let http: HttpClient<_, Body> = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(timed);
        let http = http.map_err(|e| -> BoxError { Box::new(e) });
        let inner = ClientBuilder::new(http, config.default_namespace.clone())
            .with_layer(&config.extra_headers_layer()?);
        let base_uri = config.base_uri_layer();
        Ok(match config.auth_layer()? {
            Some(auth) => inner.with_layer(&auth).with_layer(&base_uri).build(),
            None => inner.with_layer(&base_uri).build(),
        })
    }
}

// The tests serve HTTP with hyper and tokio's net and io-util: the daemon's features.
#[cfg(all(test, feature = "daemon"))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const SECS: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_leaders_connection_outlives_the_pause_between_two_renews_a_followers_idle_one_does_not() {
        let c = Connections::derive(SECS(2), SECS(5));
        assert_eq!(c.pool_idle_timeout, SECS(4));
        assert_eq!(
            Connections::derive(MS(300), SECS(1)).pool_idle_timeout,
            MS(600)
        );
    }

    #[test]
    fn connect_and_write_are_bounded_like_a_whole_request() {
        let c = Connections::derive(SECS(2), SECS(5));
        assert_eq!((c.connect_timeout, c.write_timeout), (SECS(5), SECS(5)));
    }

    #[test]
    fn keepalive_drops_a_silent_peer_after_four_retry_periods_and_probes_at_most_every_second() {
        let c = Connections::derive(SECS(2), SECS(5));
        let span = c.keepalive_idle + c.keepalive_retries * c.keepalive_interval;
        assert_eq!(span, SECS(8));
        assert_eq!(c.user_timeout, SECS(8));
        let fast = Connections::derive(MS(200), SECS(1));
        assert_eq!(
            (fast.keepalive_idle, fast.keepalive_interval),
            (SECS(1), SECS(1))
        );
    }

    #[test]
    fn unacknowledged_data_is_given_at_least_request_timeout() {
        let c = Connections::derive(SECS(1), SECS(5));
        assert_eq!(c.user_timeout, SECS(5));
    }

    #[test]
    fn the_read_timeout_never_cuts_a_healthy_quiet_watch() {
        let c = Connections::derive(SECS(2), SECS(5));
        assert!(c.read_timeout > WATCH_TIMEOUT);
    }

    /// An HTTP/1.1 server answering `{}` to every request; counts connections.
    async fn server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf).await {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        if n == 0 || conn.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn the_built_client_reuses_a_connection_only_within_the_pool_idle_timeout() {
        let (url, accepted) = server().await;
        let config = kube::Config::new(url.parse().expect("url"));
        let c = Connections::derive(MS(100), SECS(1));
        let client = c.client(&config).expect("client");
        let get = || async {
            let request = hyper::Request::get("/version")
                .body(Vec::new())
                .expect("request");
            client.request_text(request).await.expect("answer")
        };
        get().await;
        tokio::time::sleep(MS(50)).await;
        get().await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "reused within 200 ms");
        tokio::time::sleep(c.pool_idle_timeout + MS(200)).await;
        get().await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "idle too long: a new one"
        );
    }
}
