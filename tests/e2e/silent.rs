//! Connections that die silently: lost NAT/conntrack or load-balancer state
//! between a daemon and the API server. Nothing is refused or closed, bytes
//! are just held; only new connections get through.

use std::time::Instant;

use crate::common::kubectl::LeaseFields;
use crate::common::*;

const SECS: fn(u64) -> std::time::Duration = std::time::Duration::from_secs;

/// A follower whose open connections froze (its watch among them) still
/// takes a released Lease over at once: it notices its quiet watch, reads
/// the Lease on a new connection and watches again, well before the leader
/// releases. Without that it would miss the release and act only at its
/// expiry timer, on a dead pooled connection.
///
/// The freeze comes lease_duration / 2 before the SIGTERM: long enough for a
/// follower to notice a watch quiet for 2 × retry_period and re-read, short
/// enough that its expiry timer (lease_duration after the last renew it
/// heard) has not fired, so only a follower that recovered takes over within
/// retry_period of the release.
#[test]
fn a_follower_whose_connections_froze_takes_over_a_released_lease_at_once() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-frozen";
    let mut sc = Scenario::new("s10-frozen", &fx);
    let leader = sc.spawn_admin("s10-a", lease);
    assert_eq!(sc.wait_single_leader(lease, SECS(30)), leader);
    let proxy = Proxy::start(fx.server_addr());
    let kc = sc.kubeconfig_via(&proxy, "s10-b");
    let follower = sc.spawn(DaemonSpec::new("s10-b", lease, &kc));
    let started = Instant::now();
    sc.wait_sample(
        follower,
        started,
        "the proxied follower sees the leader",
        SECS(20),
        |s| s.up && !s.is_leader && s.holder() == Some("s10-a"),
    );
    // A few renews heard through the proxy: the follower's connections are
    // established and idle in its pool.
    std::thread::sleep(2 * RETRY_PERIOD);

    proxy.freeze();
    std::thread::sleep(LEASE_DURATION / 2);
    let t_term = Instant::now();
    let t_term_wall = sc.sigterm(leader);
    let status = sc.wait_exit(leader, SECS(15));
    assert_eq!(status.code(), Some(0), "the leader exits 0 on SIGTERM");

    let new = sc.wait_single_leader_among(&[follower], SECS(15));
    let after = sc.kubectl.lease(lease).expect("lease exists");
    let after = LeaseFields(&after);
    assert_eq!(after.holder(), "s10-b");
    let takeover = after.acquire_time().expect("acquireTime") - t_term_wall;
    let sampled = sc
        .sampler
        .first_after(new, t_term, |s| s.is_leader)
        .expect("sampled the new leader")
        .wall
        - t_term_wall;
    println!(
        "MEASURED frozen_follower_takeover_ms={:.1} (SIGTERM to the frozen follower's acquireTime) \
         frozen_follower_takeover_sampled_ms={:.0} proxy_connections accepted={}",
        takeover * 1000.0,
        sampled * 1000.0,
        proxy.accepted()
    );
    let bound = RETRY_PERIOD.as_secs_f64();
    assert!(
        takeover < bound,
        "the frozen follower took over {takeover:.3}s after the release (bound: retry_period, \
         {bound}s): it missed the release on its watch\n{}",
        sc.d(follower).log_tail(20)
    );
    proxy.heal();
    sc.finish();
}
