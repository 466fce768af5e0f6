//! An API server restart:
//! stop the fixture (kube-apiserver and etcd), start it again on the same
//! data directory, and check that the election recovers with a single leader
//! and that no sample ever shows two leaders. It stops its fixture, so it
//! has one of its own.

use std::time::{Duration, Instant};

use crate::common::kubectl::LeaseFields;
use crate::common::*;

#[test]
fn after_an_api_server_restart_the_election_recovers_with_one_leader() {
    let Some(bin) = prerequisites() else { return };
    let dir = TestDir::new("restart-fixture");
    let mut fixture = Fixture::start(&bin, &dir.path().join("fx"))
        .unwrap_or_else(|e| panic!("cannot start the API server fixture: {e}"));
    let lease = "e2e-restart";
    let mut sc = Scenario::new("s5-apiserver-restart", &fixture.info);
    for id in ["s5-a", "s5-b", "s5-c"] {
        sc.spawn_admin(id, lease);
    }
    let first = sc.wait_single_leader(lease, Duration::from_secs(30));
    let transitions_before = LeaseFields(&sc.kubectl.lease(lease).expect("lease")).transitions();
    let server = fixture.info.server.clone();

    let t_stop = Instant::now();
    fixture.stop();
    let stopped_in = t_stop.elapsed().as_secs_f64();
    // Without the API server the leader cannot renew: it steps down after
    // renew_deadline, and nobody else can take over.
    let down = sc.wait_sample(
        first,
        t_stop,
        "the leader steps down while the API server is away",
        RENEW_DEADLINE + Duration::from_secs(3),
        |s| s.up && !s.is_leader,
    );
    // Keep the API server away for a few seconds in all.
    let away = Duration::from_secs(4);
    if let Some(rest) = away.checked_sub(t_stop.elapsed()) {
        std::thread::sleep(rest);
    }
    assert!(
        sc.leaders(lease).is_empty(),
        "no leader without the API server"
    );

    let t_start = Instant::now();
    fixture
        .restart()
        .unwrap_or_else(|e| panic!("cannot restart the fixture: {e}"));
    assert_eq!(
        fixture.info.server, server,
        "the restarted fixture moved to another port (the old one was taken meanwhile), \
         so the daemons' kubeconfigs point nowhere"
    );
    let started_in = t_start.elapsed().as_secs_f64();
    let t_up = Instant::now();
    let leader = sc.wait_single_leader(lease, Duration::from_secs(60));
    let first_led = sc
        .sampler
        .first_after(leader, t_start, |s| s.is_leader)
        .expect("sample")
        .at;
    let recovered = first_led.duration_since(t_start).as_secs_f64();
    let after_ready = first_led.saturating_duration_since(t_up).as_secs_f64();
    let rec = sc
        .kubectl
        .lease(lease)
        .expect("the Lease survived the restart");
    let rec = LeaseFields(&rec);
    assert_eq!(rec.holder(), sc.d(leader).identity());
    assert!(rec.transitions() >= transitions_before);
    println!(
        "MEASURED restart_stepdown_s={:.3} (fixture stop begun to the leader showing is_leader 0; stop took {stopped_in:.1}s) \
         restart_recovery_s={recovered:.3} (fixture start begun to the first sample showing a leader; the fixture reported ready after {started_in:.1}s, \
         the leader {after_ready:.3}s after that) \
         restart_same_leader={}",
        down.at.duration_since(t_stop).as_secs_f64(),
        leader == first
    );

    // And it stays single through two more renews.
    let mut seen = vec![sc.sampler.latest(leader).expect("sample").last_renew_ts];
    sc.wait(
        "two more renews after the restart",
        Duration::from_secs(10),
        || {
            let r = sc.sampler.latest(leader)?.last_renew_ts;
            if Some(&r) != seen.last() {
                seen.push(r);
            }
            (seen.len() >= 3).then_some(())
        },
    );
    assert_eq!(sc.wait_single_leader(lease, Duration::from_secs(5)), leader);
    sc.finish();
    drop(fixture);
}
