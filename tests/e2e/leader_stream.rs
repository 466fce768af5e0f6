//! `/leader/stream` of real daemons against the real API server: clients of
//! the leader's and a follower's streams see a SIGTERM handover in order.

use std::time::Duration;

use crate::common::sse::{Event, EventStream};
use crate::common::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

/// SIGTERM the leader of two: its stream says `stopped_leading` and ends;
/// the follower's says `started_leading` with the next fencing token, after.
#[test]
fn streams_show_a_sigterm_handover_in_order() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-leader-stream";
    let mut sc = Scenario::new("s-leader-stream", &fx);
    let old = sc.elect(&["ls-a", "ls-b"], lease);
    let new = sc.active(lease).into_iter().find(|&i| i != old).unwrap();
    let (old_stream, new_stream) = (
        EventStream::open(sc.d(old).port),
        EventStream::open(sc.d(new).port),
    );
    sc.wait("the first event of both streams", SECS(5), || {
        (!old_stream.events().is_empty() && !new_stream.events().is_empty()).then_some(())
    });
    let first = &old_stream.events()[0];
    assert_eq!((first.id, first.name.as_str()), (1, "state"));
    assert_eq!(first.data["is_leader"], true);
    let token = first.data["fencing_token"]
        .as_i64()
        .expect("a leader's fencing token");
    let follower_first = &new_stream.events()[0];
    assert_eq!(follower_first.data["is_leader"], false);
    assert_eq!(follower_first.data["holder"], sc.d(old).identity());

    sc.sigterm(old);
    sc.wait_exit(old, SECS(15));
    sc.wait("the follower's started_leading", SECS(10), || {
        new_stream.first("started_leading")
    });
    sc.wait("the old leader's stream to end", SECS(5), || {
        old_stream.ended().then_some(())
    });

    let old_events = old_stream.events();
    let stopped = old_stream
        .first("stopped_leading")
        .unwrap_or_else(|| panic!("no stopped_leading: {:?}", names(&old_events)));
    assert_eq!(stopped.data["is_leader"], false);
    assert_eq!(stopped.data["fencing_token"], serde_json::Value::Null);
    assert!(
        old_events
            .iter()
            .skip_while(|e| e.id < stopped.id)
            .all(|e| e.data["is_leader"] == false),
        "nothing after stopped_leading says leader: {:?}",
        names(&old_events)
    );
    let ids: Vec<u64> = old_events.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ids count up from 1"
    );

    let started = new_stream.first("started_leading").unwrap();
    assert_eq!(started.data["holder"], sc.d(new).identity());
    assert_eq!(
        started.data["fencing_token"],
        token + 1,
        "the next fencing token"
    );
    assert!(
        stopped.at < started.at,
        "the old leader's stopped_leading arrived before the new leader's started_leading"
    );
    println!(
        "e2e leader stream: old {:?}, new {:?}; MEASURED stream_handover_ms={:.1} \
         (stopped_leading to started_leading, as the clients received them)",
        names(&old_events),
        names(&new_stream.events()),
        (started.at - stopped.at).as_secs_f64() * 1000.0
    );
    sc.finish();
}
