//! The HTTP layer over a real socket on 127.0.0.1.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::*;

fn status() -> Status {
    Status {
        identity: "a".into(),
        lease: "test".into(),
        namespace: "default".into(),
        holder: Some("b".into()),
        is_leader: false,
        fencing_token: None,
        lease_transitions: 2,
        last_renew: None,
        observed: true,
        last_renew_at: None,
    }
}

/// Serves `status` on an ephemeral port; returns the address.
async fn serving(status: watch::Receiver<Status>) -> (SocketAddr, CancellationToken) {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = HttpState {
        metrics: Arc::new(Metrics::new("test", "default")),
        status,
        child: None,
        readiness: Readiness::Observed,
        lease_duration: Duration::from_secs(15),
    };
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state, stop.clone()));
    (addr, stop)
}

/// Sends a GET and reads until the response holds `until` `n` times.
async fn read_until(addr: SocketAddr, path: &str, until: &str, n: usize) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches(until).count() < n {
        let read = conn.read(&mut buf).await.unwrap();
        assert!(read > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..read]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn leader_stream_is_an_uncached_event_stream_that_starts_with_the_state() {
    let (_tx, rx) = watch::channel(status());
    let (addr, stop) = serving(rx).await;
    let response = read_until(addr, "/leader/stream", "\n\n", 1).await;
    let lower = response.to_ascii_lowercase();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        lower.contains("content-type: text/event-stream"),
        "{response}"
    );
    assert!(lower.contains("cache-control: no-cache"), "{response}");
    assert!(
        response.contains("id: 1\nevent: state\ndata: {"),
        "{response}"
    );
    assert!(response.contains(r#""holder":"b""#), "{response}");
    stop.cancel();
}

#[tokio::test]
async fn leader_stream_sends_a_change_on_the_open_connection() {
    let (tx, rx) = watch::channel(status());
    let (addr, stop) = serving(rx).await;
    let reader = tokio::spawn(read_until(addr, "/leader/stream", "event: ", 2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send_modify(|s| {
        s.is_leader = true;
        s.holder = Some("a".into());
        s.fencing_token = Some(3);
    });
    let response = reader.await.unwrap();
    assert!(
        response.contains("id: 2\nevent: started_leading\n"),
        "{response}"
    );
    assert!(response.contains(r#""fencing_token":3"#), "{response}");
    stop.cancel();
}

#[tokio::test]
async fn leader_still_answers_one_json_document() {
    let (_tx, rx) = watch::channel(status());
    let (addr, stop) = serving(rx).await;
    let response = read_until(addr, "/leader", "}", 1).await;
    assert!(response.contains("application/json"), "{response}");
    assert!(response.contains(r#""fencing_token":null"#), "{response}");
    stop.cancel();
}
