//! `/leader/stream`'s events, one behaviour per test, under tokio's paused
//! clock (the keep-alive instants are exact).

use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

fn status() -> Status {
    Status {
        identity: "a".into(),
        lease: "test".into(),
        namespace: "default".into(),
        holder: None,
        is_leader: false,
        fencing_token: None,
        lease_transitions: 0,
        last_renew: None,
        observed: true,
        last_renew_at: None,
    }
}

/// One event as a client parses it.
#[derive(Debug)]
struct Event {
    id: u64,
    name: String,
    data: Value,
}

fn parse(chunk: &Bytes) -> Event {
    let text = std::str::from_utf8(chunk).unwrap();
    assert!(
        text.ends_with("\n\n"),
        "an event ends with a blank line: {text:?}"
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} in {text:?}"))
            .to_string()
    };
    Event {
        id: field("id: ").parse().unwrap(),
        name: field("event: "),
        data: serde_json::from_str(&field("data: ")).unwrap(),
    }
}

async fn next_event(feed: &mut Feed) -> Event {
    parse(&feed.next_chunk().await.expect("stream open"))
}

fn leading(s: &mut Status, token: i32) {
    s.is_leader = true;
    s.holder = Some("a".into());
    s.fencing_token = Some(token);
}

#[tokio::test(start_paused = true)]
async fn the_current_state_is_sent_at_once() {
    let (_tx, rx) = watch::channel(status());
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    let chunk = feed.next_chunk().await.unwrap();
    assert!(chunk.starts_with(b"retry: 1000\n"), "{chunk:?}");
    let event = parse(&chunk);
    assert_eq!((event.id, event.name.as_str()), (1, "state"));
    assert_eq!(event.data["identity"], "a");
    assert_eq!(event.data["is_leader"], false);
    assert_eq!(event.data["holder"], Value::Null);
    assert!(
        event.data.get("child").is_none(),
        "no child outside run mode"
    );
}

#[tokio::test(start_paused = true)]
async fn becoming_leader_is_a_started_leading_event_with_the_fencing_token() {
    let (tx, rx) = watch::channel(status());
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    next_event(&mut feed).await;
    tx.send_modify(|s| leading(s, 3));
    let event = next_event(&mut feed).await;
    assert_eq!((event.id, event.name.as_str()), (2, "started_leading"));
    assert_eq!(event.data["fencing_token"], 3);
    assert_eq!(event.data["holder"], "a");
}

#[tokio::test(start_paused = true)]
async fn stepping_down_is_a_stopped_leading_event() {
    let (tx, rx) = watch::channel(status());
    tx.send_modify(|s| leading(s, 3));
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    next_event(&mut feed).await;
    tx.send_modify(|s| {
        s.is_leader = false;
        s.fencing_token = None;
    });
    let event = next_event(&mut feed).await;
    assert_eq!(event.name, "stopped_leading");
    assert_eq!(event.data["is_leader"], false);
    assert_eq!(event.data["fencing_token"], Value::Null);
}

#[tokio::test(start_paused = true)]
async fn a_new_holder_is_a_leader_changed_event() {
    let (tx, rx) = watch::channel(status());
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    next_event(&mut feed).await;
    tx.send_modify(|s| {
        s.holder = Some("b".into());
        s.lease_transitions = 1;
    });
    let event = next_event(&mut feed).await;
    assert_eq!(event.name, "leader_changed");
    assert_eq!(event.data["holder"], "b");
    assert_eq!(event.data["lease_transitions"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_renew_alone_sends_no_event() {
    let (tx, rx) = watch::channel(status());
    tx.send_modify(|s| leading(s, 1));
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    next_event(&mut feed).await;
    tx.send_modify(|s| s.last_renew = Some("2026-12-02T00:00:00Z".into()));
    let chunk = feed.next_chunk().await.unwrap();
    assert_eq!(&chunk[..], KEEPALIVE_COMMENT, "only the keep-alive follows");
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_gets_a_keep_alive_comment_every_15_seconds() {
    let (_tx, rx) = watch::channel(status());
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    next_event(&mut feed).await;
    let start = Instant::now();
    for n in 1..=2 {
        let chunk = feed.next_chunk().await.unwrap();
        assert_eq!(&chunk[..], b": keep-alive\n\n");
        assert_eq!(Instant::now() - start, KEEPALIVE * n);
    }
    assert_eq!(KEEPALIVE, Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn a_slow_client_skips_to_the_latest_state() {
    let (tx, rx) = watch::channel(status());
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    next_event(&mut feed).await;
    for holder in ["b", "c", "d"] {
        tx.send_modify(|s| s.holder = Some(holder.into()));
    }
    let event = next_event(&mut feed).await;
    assert_eq!((event.id, event.data["holder"].as_str()), (2, Some("d")));
}

#[tokio::test(start_paused = true)]
async fn a_missed_step_down_and_new_term_is_one_started_leading_event() {
    let (tx, rx) = watch::channel(status());
    tx.send_modify(|s| leading(s, 1));
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    next_event(&mut feed).await;
    tx.send_modify(|s| s.is_leader = false);
    tx.send_modify(|s| leading(s, 2));
    let event = next_event(&mut feed).await;
    assert_eq!(event.name, "started_leading");
    assert_eq!(event.data["fencing_token"], 2);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_does_not_hold_up_the_status() {
    let (tx, rx) = watch::channel(status());
    let _unread = Feed::new(rx, None, CancellationToken::new());
    for n in 0..10_000 {
        tx.send_modify(|s| s.lease_transitions = n);
    }
    assert_eq!(tx.borrow().lease_transitions, 9_999);
}

#[tokio::test(start_paused = true)]
async fn the_child_state_is_an_event_in_run_mode() {
    let (_tx, rx) = watch::channel(status());
    let (child_tx, child_rx) = watch::channel(ChildStatus {
        state: "idle",
        ..ChildStatus::default()
    });
    let mut feed = Feed::new(rx, Some(child_rx), CancellationToken::new());
    let first = next_event(&mut feed).await;
    assert_eq!(first.data["child"]["state"], "idle");
    child_tx.send_modify(|c| {
        c.state = "running";
        c.pid = Some(42);
    });
    let event = next_event(&mut feed).await;
    assert_eq!(event.name, "child");
    assert_eq!(event.data["child"]["state"], "running");
    assert_eq!(event.data["child"]["pid"], 42);
}

#[tokio::test(start_paused = true)]
async fn the_stream_ends_after_the_last_state_once_the_elector_is_gone() {
    let (tx, rx) = watch::channel(status());
    tx.send_modify(|s| leading(s, 1));
    let mut feed = Feed::new(rx, None, CancellationToken::new());
    next_event(&mut feed).await;
    tx.send_modify(|s| s.is_leader = false);
    drop(tx);
    assert_eq!(next_event(&mut feed).await.name, "stopped_leading");
    assert!(feed.next_chunk().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_stream_ends_when_the_server_stops() {
    let (_tx, rx) = watch::channel(status());
    let stop = CancellationToken::new();
    let mut feed = Feed::new(rx, None, stop.clone());
    next_event(&mut feed).await;
    stop.cancel();
    assert!(feed.next_chunk().await.is_none());
}
