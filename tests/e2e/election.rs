//! The election daemon against a real kube-apiserver: failovers, hand edits,
//! RBAC and malformed Leases (the API server restart is in `restart`, on a
//! fixture of its own).
//!
//! Every test starts real `lease-elector` processes with the seed's timings
//! (6s / 3s / 1s) on a Lease of its own, in one API server fixture shared by
//! this test binary. A sampler polls every daemon's /leader and /metrics every
//! 50 ms and fails the test if two daemons of one Lease lead at one sample.
//! Measured times are printed as `MEASURED name=value` lines.

use std::time::{Duration, Instant};

use crate::common::kubectl::{Kubectl, LeaseFields, lease_object};
use crate::common::*;
use serde_json::json;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Three daemons on one Lease: exactly one leader, and kubectl shows the
/// holder every daemon reports.
#[test]
fn three_daemons_elect_exactly_one_leader_and_kubectl_agrees() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-three";
    let mut sc = Scenario::new("s1-three-daemons", &fx);
    let leader = sc.elect(&["s1-a", "s1-b", "s1-c"], lease);
    let id = sc.d(leader).identity().to_string();

    let holder = sc.kubectl.holder(lease);
    assert_eq!(
        holder, id,
        "kubectl's holderIdentity vs the daemons' leader"
    );
    for i in sc.active(lease) {
        let d = sc.d(i);
        let view = d.leader_now();
        assert_eq!(
            view.holder.as_deref(),
            Some(id.as_str()),
            "{} /leader holder",
            d.identity()
        );
        assert_eq!(
            view.is_leader,
            i == leader,
            "{} /leader is_leader",
            d.identity()
        );
        let m = d.metrics().expect("metrics");
        let info: Vec<&str> = m
            .iter()
            .filter(|l| l.name == "lease_elector_leader_info")
            .filter_map(|l| l.label("holder"))
            .collect();
        assert_eq!(
            info,
            vec![id.as_str()],
            "{} lease_elector_leader_info",
            d.identity()
        );
        assert_eq!(
            http::metric(&m, "lease_elector_is_leader", &[]),
            Some(if i == leader { 1.0 } else { 0.0 })
        );
    }

    // Still exactly one leader after the leader renewed twice more.
    let renews = |s: &Sample| s.last_renew_ts;
    let first = sc.sampler.latest(leader).map(|s| renews(&s)).unwrap_or(0.0);
    let mut seen = vec![first];
    sc.wait("two more renews by the leader", SECS(10), || {
        let r = sc.sampler.latest(leader).map(|s| renews(&s))?;
        if Some(&r) != seen.last() {
            seen.push(r);
        }
        (seen.len() >= 3).then_some(())
    });
    assert_eq!(sc.wait_single_leader(lease, SECS(5)), leader);
    println!("e2e s1: leader {id}, kubectl holder {holder:?}, every daemon agrees");
    sc.finish();
}

/// SIGTERM the leader: it releases, exits 0, and another daemon leads.
#[test]
fn sigterm_releases_the_lease_and_another_daemon_takes_over_at_once() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-sigterm";
    let mut sc = Scenario::new("s2-sigterm", &fx);
    let old = sc.elect(&["s2-a", "s2-b", "s2-c"], lease);
    let before = sc.kubectl.lease(lease).expect("lease exists");
    let transitions_before = LeaseFields(&before).transitions();

    let t_term = Instant::now();
    let t_term_wall = sc.sigterm(old);
    let status = sc.wait_exit(old, SECS(15));
    let exit_ms = (t_term.elapsed().as_secs_f64()) * 1000.0;
    assert_eq!(
        status.code(),
        Some(0),
        "the leader exits 0 on SIGTERM: {status}"
    );
    assert!(
        !sc.d(old).log_events("released the Lease").is_empty(),
        "the leader logs that it released the Lease:\n{}",
        sc.d(old).log_tail(20)
    );

    let new = sc.wait_single_leader(lease, SECS(10));
    assert_ne!(new, old);
    let after = sc.kubectl.lease(lease).expect("lease exists");
    let after = LeaseFields(&after);
    assert_eq!(after.holder(), sc.d(new).identity());
    assert_eq!(
        after.transitions(),
        transitions_before + 1,
        "one more transition"
    );
    let handover = after.acquire_time().expect("acquireTime") - t_term_wall;
    let sampled = sc
        .sampler
        .first_after(new, t_term, |s| s.is_leader)
        .expect("sampled the new leader")
        .wall
        - t_term_wall;
    println!(
        "MEASURED sigterm_handover_ms={:.1} (SIGTERM to the new holder's acquireTime) \
         sigterm_handover_sampled_ms={:.0} (first 50 ms sample showing the new leader) \
         sigterm_exit_ms={exit_ms:.0}",
        handover * 1000.0,
        sampled * 1000.0
    );
    // A released Lease is taken at once, not after lease_duration.
    assert!(
        handover < LEASE_DURATION.as_secs_f64(),
        "handover took {handover:.3}s: the release did not let the others in"
    );
    sc.finish();
}

/// SIGKILL the leader: another daemon leads no earlier than lease_duration
/// after the last renew, and within lease_duration + 1 s of the kill.
#[test]
fn after_sigkill_another_daemon_takes_over_once_lease_duration_passed() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-sigkill";
    let mut sc = Scenario::new("s3-sigkill", &fx);
    let old = sc.elect(&["s3-a", "s3-b", "s3-c"], lease);
    let old_id = sc.d(old).identity().to_string();

    let t_kill = Instant::now();
    let t_kill_wall = sc.sigkill(old);
    // What the followers last saw: the dead leader's last renew.
    let at_kill = sc.kubectl.lease(lease).expect("lease exists");
    let at_kill = LeaseFields(&at_kill);
    assert_eq!(at_kill.holder(), old_id);
    let last_renew = at_kill.renew_time().expect("renewTime");

    let new = sc.wait_single_leader(lease, SECS(15));
    let after = sc.kubectl.lease(lease).expect("lease exists");
    let after = LeaseFields(&after);
    assert_eq!(after.holder(), sc.d(new).identity());
    let acquired = after.acquire_time().expect("acquireTime");
    let sampled = sc
        .sampler
        .first_after(new, t_kill, |s| s.is_leader)
        .expect("sampled the new leader");
    let became = sc
        .d(new)
        .logged_at("became leader", t_kill_wall)
        .expect("the new leader logs 'became leader'");
    let takeover = became - t_kill_wall;
    let after_renew = acquired - last_renew;
    println!(
        "MEASURED sigkill_takeover_s={takeover:.3} (kill to the new leader's 'became leader' log line) \
         sigkill_takeover_sampled_s={:.3} (kill to the first 50 ms sample showing it) \
         sigkill_acquire_after_last_renew_s={after_renew:.3} (new acquireTime - dead leader's last renewTime)",
        sampled.wall - t_kill_wall
    );
    let ld = LEASE_DURATION.as_secs_f64();
    assert!(
        after_renew >= ld - CLOCK_TOLERANCE,
        "taken over {after_renew:.3}s after the last renew, before lease_duration ({ld}s)"
    );
    assert!(
        takeover <= ld + 1.0,
        "taken over {takeover:.3}s after the kill, later than lease_duration + 1s"
    );
    sc.finish();
}

/// Network cut between the leader and the API server (a TCP proxy): the
/// cut leader steps down within renew_deadline (+250 ms) of its last
/// successful renew, counts renew failures, another daemon takes over after
/// expiry, and after the cut heals the old leader rejoins as a follower.
#[test]
fn a_leader_cut_off_the_api_server_steps_down_before_another_takes_over() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-cut";
    let mut sc = Scenario::new("s4-network-cut", &fx);
    let proxy = Proxy::start(fx.server_addr());
    let kc = sc.kubeconfig_via(&proxy, "s4-a");
    let a = sc.spawn(DaemonSpec::new("s4-a", lease, &kc));
    assert_eq!(
        sc.wait_single_leader(lease, SECS(30)),
        a,
        "the first daemon leads"
    );
    let b = sc.spawn_admin("s4-b", lease);
    let c = sc.spawn_admin("s4-c", lease);
    assert_eq!(
        sc.wait_single_leader(lease, SECS(20)),
        a,
        "the proxied daemon still leads"
    );

    let t_cut = Instant::now();
    let t_cut_wall = wall_now();
    proxy.cut();
    let down = sc.wait_sample(a, t_cut, "the cut leader steps down", SECS(8), |s| {
        s.up && !s.is_leader
    });
    let last_renew = parse_time(
        down.status
            .as_ref()
            .and_then(|s| s.last_renew.as_deref())
            .expect("the cut leader reports its last renew"),
    );
    let prev = sc.sampler.last_before(a, down.at).expect("a sample before");
    let stopped = sc
        .d(a)
        .logged_at("stopped leading", t_cut_wall)
        .expect("the cut leader logs 'stopped leading'");
    let stepdown = stopped - last_renew;
    // The server's record right now is the cut leader's last renew that
    // reached it (nobody else may write before expiry).
    let rec = sc.kubectl.lease(lease).expect("lease exists");
    let rec = LeaseFields(&rec);
    assert_eq!(
        rec.holder(),
        "s4-a",
        "nobody took over within renew_deadline"
    );
    let stored_renew = rec.renew_time().expect("renewTime");

    let failures = sc.wait("the cut leader counts renew failures", SECS(5), || {
        let s = sc.sampler.latest(a)?;
        let n = s.failures.get("network").copied().unwrap_or(0.0)
            + s.failures.get("timeout").copied().unwrap_or(0.0);
        (n > 0.0).then_some(s.failures)
    });

    let new = sc.wait_single_leader_among(&[b, c], SECS(15));
    let taken = sc
        .sampler
        .first_after(new, t_cut, |s| s.is_leader)
        .expect("sampled the new leader");
    let after = sc.kubectl.lease(lease).expect("lease exists");
    let after = LeaseFields(&after);
    assert_eq!(after.holder(), sc.d(new).identity());
    let gap = after.acquire_time().expect("acquireTime") - stored_renew;
    println!(
        "MEASURED cut_stepdown_s={stepdown:.3} (last successful renew to the cut leader's 'stopped leading' log line; \
         sampled: last is_leader 1 at {:.3}, first is_leader 0 at {:.3}) \
         cut_takeover_s={:.3} (cut to the first sample showing the new leader) \
         cut_acquire_after_last_renew_s={gap:.3} renew_failures={failures:?}",
        prev.wall - last_renew,
        down.wall - last_renew,
        taken.wall - t_cut_wall
    );
    let bound = RENEW_DEADLINE.as_secs_f64() + 0.25;
    assert!(
        stepdown <= bound,
        "the cut leader stopped leading {stepdown:.3}s after its last successful renew (bound {bound}s)"
    );
    assert!(
        prev.wall - last_renew <= bound,
        "a sample showed the cut leader leading {:.3}s after its last successful renew (bound {bound}s)",
        prev.wall - last_renew
    );
    assert!(
        gap >= LEASE_DURATION.as_secs_f64() - CLOCK_TOLERANCE,
        "taken over {gap:.3}s after the last renew, before lease_duration"
    );

    println!(
        "MEASURED cut_proxy_connections accepted={} refused_while_cut={}",
        proxy.accepted(),
        proxy.refused()
    );
    let t_heal = Instant::now();
    proxy.heal();
    let new_id = sc.d(new).identity().to_string();
    let rejoined = sc.wait_sample(
        a,
        t_heal,
        "the healed old leader follows the new one",
        SECS(20),
        |s| s.up && !s.is_leader && s.holder() == Some(new_id.as_str()),
    );
    println!(
        "MEASURED cut_rejoin_s={:.3} (heal to the old leader reporting the new holder)",
        rejoined.at.duration_since(t_heal).as_secs_f64()
    );
    assert_eq!(
        sc.wait_single_leader(lease, SECS(10)),
        new,
        "one leader, all agree"
    );
    sc.finish();
}

/// The Lease deleted while held: recreated and led again. The holder
/// changed by hand to another identity: the leader steps down, the
/// transition is counted, and a daemon takes over once the hand-set holder
/// expires.
#[test]
fn a_deleted_or_hand_edited_lease_makes_the_leader_step_down_and_the_election_recover() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-tamper";
    let mut sc = Scenario::new("s6-tamper", &fx);
    let leader = sc.elect(&["s6-a", "s6-b", "s6-c"], lease);
    let before = sc.kubectl.lease(lease).expect("lease exists");
    let before = LeaseFields(&before);
    let (uid0, transitions0) = (before.uid().to_string(), before.transitions());

    // --- deleted while held
    let t_del = Instant::now();
    sc.kubectl.run(&["delete", "lease", lease]);
    let recreated = sc.wait("the Lease is recreated", SECS(10), || {
        sc.kubectl
            .lease(lease)
            .filter(|l| LeaseFields(l).uid() != uid0)
    });
    let recreate_s = t_del.elapsed().as_secs_f64();
    let recreated = LeaseFields(&recreated);
    assert_eq!(
        recreated.holder(),
        sc.d(leader).identity(),
        "the leader recreates the Lease at its next renew; followers wait out its term"
    );
    assert_eq!(
        recreated.transitions(),
        transitions0,
        "the recreated Lease keeps leaseTransitions (the fencing token never goes back)"
    );
    let leader2 = sc.wait_single_leader(lease, SECS(15));
    assert_eq!(sc.kubectl.holder(lease), sc.d(leader2).identity());
    let continuous = leader2 == leader
        && sc
            .sampler
            .first_after(leader, t_del, |s| s.up && !s.is_leader)
            .is_none();
    println!(
        "MEASURED delete_recreate_s={recreate_s:.3} (kubectl delete to the Lease existing again; \
         recreated by {}, leadership continuous: {continuous})",
        recreated.holder()
    );

    // --- holder changed by hand
    let lost_before = sc.sampler.latest(leader2).expect("sample").lost;
    let t_patch = Instant::now();
    let t_patch_wall = wall_now();
    sc.kubectl.run(&[
        "patch",
        "lease",
        lease,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"holderIdentity":"e2e-intruder"}}"#,
    ]);
    let down = sc.wait_sample(
        leader2,
        t_patch,
        "the leader notices the hand-set holder and steps down",
        SECS(5),
        |s| s.up && !s.is_leader,
    );
    let lost = sc.wait("the lost transition is counted", SECS(3), || {
        let s = sc.sampler.latest(leader2)?;
        (s.lost >= lost_before + 1.0).then_some(s.lost)
    });
    assert_eq!(lost, lost_before + 1.0);
    assert!(
        !sc.d(leader2).log_events("stopped leading").is_empty(),
        "a log line says why it stopped"
    );
    let leader3 = sc.wait_single_leader(lease, SECS(15));
    let after = sc.kubectl.lease(lease).expect("lease exists");
    let after = LeaseFields(&after);
    assert_eq!(after.holder(), sc.d(leader3).identity());
    assert_eq!(
        after.transitions(),
        recreated.transitions() + 1,
        "taking over from the hand-set holder counts one transition"
    );
    let takeover = after.acquire_time().expect("acquireTime") - t_patch_wall;
    println!(
        "MEASURED handedit_stepdown_ms={:.0} (kubectl patch to the first sample showing is_leader 0) \
         handedit_takeover_s={takeover:.3} (kubectl patch to the next holder's acquireTime)",
        (down.wall - t_patch_wall) * 1000.0
    );
    assert!(
        takeover >= LEASE_DURATION.as_secs_f64() - CLOCK_TOLERANCE,
        "the hand-set holder was overridden after {takeover:.3}s, before it expired"
    );
    sc.finish();
}

/// A user without update permission: a clear log line naming the missing
/// permission, renew_failures_total{reason="forbidden"} rises, no crash, no
/// false leadership. And the fixture's restricted user, whose Role grants
/// what the daemon needs on one Lease, can lead that Lease.
#[test]
fn without_update_permission_nobody_leads_and_forbidden_is_counted() {
    let Some(fx) = shared_fixture() else { return };
    let mut sc = Scenario::new("s7-rbac", &fx);
    let k = sc.kubectl.clone();
    k.run(&["create", "serviceaccount", "e2e-noupdate"]);
    k.run(&[
        "create",
        "role",
        "e2e-noupdate",
        "--verb=get,list,watch,create",
        "--resource=leases.coordination.k8s.io",
    ]);
    k.run(&[
        "create",
        "rolebinding",
        "e2e-noupdate",
        "--role=e2e-noupdate",
        "--serviceaccount=default:e2e-noupdate",
    ]);
    let token = k
        .run(&["create", "token", "e2e-noupdate", "--duration=1h"])
        .trim()
        .to_string();
    let kc = sc.kubeconfig_with_token(&token, "noupdate");
    let can = Kubectl::new(&kc).output(
        &[
            "auth",
            "can-i",
            "update",
            "leases.coordination.k8s.io/e2e-noupdate",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&can.stdout).trim(),
        "no",
        "the test user must lack update"
    );

    // A released Lease: the daemon must UPDATE it to take it.
    let lease = "e2e-noupdate";
    k.create(&lease_object(
        lease,
        json!({"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time(wall_now())}),
    ))
    .expect("create the Lease");
    let d = sc.spawn(DaemonSpec::new("s7-noupdate", lease, &kc));
    // And the fixture's restricted user on the one Lease it may use.
    let r = sc.spawn(DaemonSpec::new(
        "s7-restricted",
        "restricted-lease",
        &fx.restricted_kubeconfig,
    ));

    let line = sc.wait("a log line naming the missing permission", SECS(10), || {
        sc.d(d)
            .log_text()
            .lines()
            .find(|l| {
                l.contains("permission missing") && l.contains("update") && l.contains("forbidden")
            })
            .map(str::to_string)
    });
    println!("e2e s7: log line: {line}");
    let event = sc
        .d(d)
        .log_events("permission missing")
        .into_iter()
        .next()
        .expect("the line is JSON");
    assert_eq!(event["class"], "forbidden", "{event}");
    assert_eq!(
        event["request"],
        format!("update Lease default/{lease}"),
        "{event}"
    );
    assert!(
        event["next"]
            .as_str()
            .is_some_and(|n| n.starts_with("retrying in ")),
        "the line says what happens next: {event}"
    );
    let first = sc.wait(
        "renew_failures_total{reason=\"forbidden\"} > 0",
        SECS(10),
        || {
            let v = sc.d(d).metric(
                "lease_elector_renew_failures_total",
                &[("reason", "forbidden")],
            )?;
            (v > 0.0).then_some(v)
        },
    );
    let later = sc.wait(
        "renew_failures_total{reason=\"forbidden\"} rises",
        SECS(10),
        || {
            let v = sc.d(d).metric(
                "lease_elector_renew_failures_total",
                &[("reason", "forbidden")],
            )?;
            (v > first).then_some(v)
        },
    );
    println!("MEASURED forbidden_failures={first} then {later}");
    assert!(
        sc.d_mut(d).is_running(),
        "no crash:\n{}",
        sc.d(d).log_tail(20)
    );
    let view = sc.d(d).leader_now();
    assert!(!view.is_leader, "no false leadership: {view:?}");
    assert!(
        sc.sampler.history(d).iter().all(|s| !s.is_leader),
        "never reported leadership"
    );
    assert_eq!(sc.kubectl.holder(lease), "", "the Lease was not taken");

    assert_eq!(sc.wait_single_leader("restricted-lease", SECS(20)), r);
    assert_eq!(sc.kubectl.holder("restricted-lease"), "s7-restricted");
    sc.finish();
}

/// Malformed Leases written with kubectl: empty holder and no spec fields
/// are taken at once; a missing renewTime, and a leaseDurationSeconds of 0 or
/// missing, make candidates wait their own lease_duration from when they
/// first saw the record.
#[test]
fn malformed_leases_are_taken_at_once_or_waited_out_on_our_own_clock() {
    let Some(fx) = shared_fixture() else { return };
    let mut sc = Scenario::new("s8-malformed", &fx);
    let now = micro_time(wall_now());
    // (lease, spec, taken at once?)
    let cases = [
        (
            "e2e-bad-empty-holder",
            json!({"holderIdentity": "", "leaseDurationSeconds": 6, "renewTime": now, "leaseTransitions": 3}),
            true,
        ),
        ("e2e-bad-empty-spec", json!({}), true),
        (
            "e2e-bad-no-renewtime",
            json!({"holderIdentity": "ghost", "leaseDurationSeconds": 6}),
            false,
        ),
        (
            "e2e-bad-zero-duration",
            json!({"holderIdentity": "ghost", "leaseDurationSeconds": 0, "renewTime": now}),
            false,
        ),
        (
            "e2e-bad-no-duration",
            json!({"holderIdentity": "ghost", "renewTime": now}),
            false,
        ),
    ];
    let mut running = Vec::new();
    for (lease, spec, at_once) in &cases {
        match sc.kubectl.create(&lease_object(lease, spec.clone())) {
            Ok(_) => running.push((*lease, *at_once, spec.clone())),
            Err(e) => {
                // The API server validates some fields itself; such a Lease
                // cannot exist, so there is nothing for the daemon to handle.
                assert!(
                    e.contains("leaseDurationSeconds"),
                    "only leaseDurationSeconds may be refused; {lease}: {e}"
                );
                println!(
                    "e2e s8: the API server refuses {lease} ({spec}): {}",
                    e.trim()
                );
            }
        }
    }
    let mut first_spawn = Vec::new();
    for (n, (lease, _, _)) in running.iter().enumerate() {
        let a = sc.spawn_admin(&format!("s8-{n}-a"), lease);
        let b = sc.spawn_admin(&format!("s8-{n}-b"), lease);
        first_spawn.push((sc.d(a).spawned_wall, sc.d(b).spawned_wall));
    }
    for (n, (lease, at_once, spec)) in running.iter().enumerate() {
        let leader = sc.wait_single_leader(lease, SECS(20));
        let rec = sc.kubectl.lease(lease).expect("lease exists");
        let rec = LeaseFields(&rec);
        assert_eq!(rec.holder(), sc.d(leader).identity());
        assert_eq!(
            rec.duration(),
            Some(6),
            "the new holder writes its leaseDurationSeconds"
        );
        let (spawn_a, spawn_b) = first_spawn[n];
        let from_start = rec.acquire_time().expect("acquireTime") - spawn_a.min(spawn_b);
        println!(
            "MEASURED malformed_{}_takeover_s={from_start:.3} (first daemon spawned to acquireTime; spec {spec})",
            lease.trim_start_matches("e2e-bad-").replace('-', "_")
        );
        let ld = LEASE_DURATION.as_secs_f64();
        if *at_once {
            assert!(
                from_start < ld / 2.0,
                "{lease}: a Lease without holder is taken at once, took {from_start:.3}s"
            );
        } else {
            assert!(
                from_start >= ld - CLOCK_TOLERANCE,
                "{lease}: taken after {from_start:.3}s, before lease_duration"
            );
            let last = spawn_a.max(spawn_b);
            assert!(
                rec.acquire_time().unwrap() - last <= ld + 3.0,
                "{lease}: taken {from_start:.3}s after start, much later than lease_duration"
            );
        }
        if spec.get("leaseTransitions").is_some() {
            assert_eq!(rec.transitions(), 4, "{lease}: transitions count on");
        }
    }
    sc.finish();
}

/// Cold start against a Lease its holder released: taken at once.
#[test]
fn a_cold_start_takes_a_released_lease_at_once() {
    let Some(fx) = shared_fixture() else { return };
    let mut sc = Scenario::new("s9-cold-start", &fx);

    // Released by a daemon's SIGTERM.
    let lease = "e2e-cold";
    let first = sc.spawn_admin("s9-first", lease);
    sc.wait_single_leader(lease, SECS(20));
    sc.sigterm(first);
    assert_eq!(sc.wait_exit(first, SECS(15)).code(), Some(0));
    let rec = sc.kubectl.lease(lease).expect("lease exists");
    let rec = LeaseFields(&rec);
    assert_eq!(rec.holder(), "", "released: no holder");
    assert_eq!(rec.duration(), Some(1), "released: leaseDurationSeconds 1");
    let t = rec.transitions();
    let a = sc.spawn_admin("s9-a", lease);
    let b = sc.spawn_admin("s9-b", lease);
    let leader = sc.wait_single_leader(lease, SECS(10));
    let rec = sc.kubectl.lease(lease).expect("lease exists");
    let rec = LeaseFields(&rec);
    assert_eq!(rec.holder(), sc.d(leader).identity());
    assert_eq!(rec.transitions(), t + 1);
    let spawned = sc.d(leader).spawned_wall;
    let cold = rec.acquire_time().expect("acquireTime") - spawned;
    let sampled = sc
        .sampler
        .first_after(leader, sc.d(leader).spawned_at, |s| s.is_leader)
        .expect("sample")
        .wall
        - spawned;
    let _ = (a, b);

    // Released as written by kubectl.
    let lease2 = "e2e-cold-kubectl";
    let now = micro_time(wall_now());
    sc.kubectl
        .create(&lease_object(
            lease2,
            json!({"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now, "leaseTransitions": 7}),
        ))
        .expect("create");
    let c = sc.spawn_admin("s9-c", lease2);
    assert_eq!(sc.wait_single_leader(lease2, SECS(10)), c);
    let rec2 = sc.kubectl.lease(lease2).expect("lease exists");
    let rec2 = LeaseFields(&rec2);
    assert_eq!(rec2.holder(), "s9-c");
    assert_eq!(rec2.transitions(), 8);
    let cold2 = rec2.acquire_time().expect("acquireTime") - sc.d(c).spawned_wall;
    println!(
        "MEASURED cold_start_released_ms={:.0} (spawn to acquireTime; first sample as leader {:.0} ms) \
         cold_start_kubectl_released_ms={:.0}",
        cold * 1000.0,
        sampled * 1000.0,
        cold2 * 1000.0
    );
    let half = LEASE_DURATION.as_secs_f64() / 2.0;
    assert!(
        cold < half,
        "released Lease taken after {cold:.3}s, not at once"
    );
    assert!(
        cold2 < half,
        "released Lease taken after {cold2:.3}s, not at once"
    );
    sc.finish();
}

/// The harness itself: the sampler does flag two leaders of one Lease. (Two
/// daemons lead two different Leases; a second sampler is told they compete
/// for one.)
#[test]
fn the_sampler_flags_two_leaders_at_one_sample() {
    let Some(fx) = shared_fixture() else { return };
    let mut sc = Scenario::new("harness-self-check", &fx);
    let a = sc.spawn_admin("self-a", "e2e-self-a");
    let b = sc.spawn_admin("self-b", "e2e-self-b");
    assert_eq!(sc.wait_single_leader("e2e-self-a", SECS(20)), a);
    assert_eq!(sc.wait_single_leader("e2e-self-b", SECS(20)), b);
    let mut probe = Sampler::start_quiet();
    probe.add("self-a", "one-lease", sc.d(a).port);
    probe.add("self-b", "one-lease", sc.d(b).port);
    let v = wait_until("the probe sampler flags two leaders", SECS(5), || {
        let v = probe.violations();
        (!v.is_empty()).then_some(v)
    });
    probe.stop();
    assert!(v[0].contains("two leaders of Lease one-lease"), "{v:?}");
    println!(
        "e2e harness: the sampler flags two leaders as it should: {}",
        v[0]
    );
    sc.finish();
}
