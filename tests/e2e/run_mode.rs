//! End-to-end test of `lease-elector run` (issue 5) against a real
//! kube-apiserver: three supervisors whose children append timestamped lines
//! to one shared file. Through SIGKILL of the leader, a network cut of the
//! leader and SIGTERM of the leader, no two children are ever alive at the
//! same time, the cut leader's child is gone before lease_duration after its
//! last successful renew, and every new child gets a larger fencing token.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::kubectl::LeaseFields;
use crate::common::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The supervised child: `start` once, `alive` every 100 ms, `stop` on
/// SIGTERM. Each line: `<unix time> <identity> <fencing token> <pid> <kind>`.
const CHILD: &str = r#"
f="$E2E_RUN_FILE"
me="$LEASE_ELECTOR_IDENTITY $LEASE_ELECTOR_FENCING_TOKEN $$"
echo "$(date +%s.%N) $me start" >> "$f"
trap 'echo "$(date +%s.%N) $me stop" >> "$f"; exit 0' TERM
while :; do
  echo "$(date +%s.%N) $me alive" >> "$f"
  sleep 0.1
done
"#;

/// One child instance as the file shows it.
#[derive(Debug, Clone)]
struct Interval {
    identity: String,
    token: i64,
    pid: u32,
    first: f64,
    last: f64,
    started: bool,
    stopped: bool,
    lines: usize,
}

/// Reads the shared file into child intervals, ordered by their first line.
/// Lines without a timestamp (a `date` killed by the group's SIGTERM in the
/// middle of a command substitution) are skipped.
fn intervals(path: &Path) -> Vec<Interval> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut by: BTreeMap<(String, i64, u32), Interval> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [t, id, token, pid, kind] = f[..] else {
            continue;
        };
        let (Ok(t), Ok(token), Ok(pid)) =
            (t.parse::<f64>(), token.parse::<i64>(), pid.parse::<u32>())
        else {
            continue;
        };
        let iv = by
            .entry((id.to_string(), token, pid))
            .or_insert_with(|| Interval {
                identity: id.into(),
                token,
                pid,
                first: t,
                last: t,
                started: false,
                stopped: false,
                lines: 0,
            });
        iv.first = iv.first.min(t);
        iv.last = iv.last.max(t);
        iv.lines += 1;
        match kind {
            "start" => iv.started = true,
            "stop" => iv.stopped = true,
            _ => {}
        }
    }
    let mut v: Vec<Interval> = by.into_values().collect();
    v.sort_by(|a, b| a.first.total_cmp(&b.first));
    v
}

#[test]
fn run_mode_children_never_overlap() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-run";
    let mut sc = Scenario::new("run-supervised-children", &fx);
    let file = sc.dir.join("children.log");
    std::fs::write(&file, "").unwrap();

    // Every supervisor reaches the API server through a proxy of its own, so
    // whichever leads can be cut off.
    let mut proxies = Vec::new();
    let mut ids = Vec::new();
    for name in ["run-a", "run-b", "run-c"] {
        let proxy = Proxy::start(fx.server_addr());
        let kc = sc.kubeconfig_via(&proxy, name);
        let mut spec = DaemonSpec::new(name, lease, &kc);
        spec.run = Some(vec!["sh".into(), "-c".into(), CHILD.into()]);
        spec.extra_args = vec!["--grace-period".into(), "2s".into()];
        spec.env = vec![("E2E_RUN_FILE".into(), file.display().to_string())];
        ids.push(sc.spawn(spec));
        proxies.push(proxy);
    }

    // The child runs on the leader only, and /leader and /metrics say so.
    let child_of = |sc: &Scenario, i: usize, what: &str| {
        sc.wait(what, SECS(10), || {
            let v = sc.d(i).leader()?;
            let c = v.child.clone()?;
            (v.is_leader && c.state == "running" && c.pid.is_some()).then_some(c)
        })
    };
    let l1 = sc.wait_single_leader(lease, SECS(30));
    let c1 = child_of(&sc, l1, "the first leader's child runs");
    let pid1 = c1.pid.unwrap();
    assert_eq!(c1.starts, 1);
    let transitions = LeaseFields(&sc.kubectl.lease(lease).expect("lease")).transitions();
    assert_eq!(
        c1.fencing_token,
        Some(transitions),
        "fencing token = leaseTransitions"
    );
    sc.wait("the child's start line", SECS(5), || {
        intervals(&file)
            .iter()
            .find(|iv| iv.pid == pid1 && iv.started)
            .cloned()
    });
    for &i in &ids {
        let m = sc.d(i).metrics().expect("metrics");
        let running = http::metric(&m, "lease_elector_child_running", &[]);
        let starts = http::metric(&m, "lease_elector_child_starts_total", &[]);
        if i == l1 {
            assert_eq!(
                (running, starts),
                (Some(1.0), Some(1.0)),
                "leader's child metrics"
            );
        } else {
            assert_eq!(
                (running, starts),
                (Some(0.0), Some(0.0)),
                "follower's child metrics"
            );
            let c = sc.d(i).leader_now().child.expect("child object in /leader");
            assert_eq!((c.state.as_str(), c.pid), ("idle", None));
        }
    }
    println!("e2e run: /leader child of the leader: {c1:?}");

    // --- SIGKILL of the leader: its child dies with it (PDEATHSIG).
    let t_kill = Instant::now();
    sc.sigkill(l1);
    sc.wait("the killed leader's child is gone", SECS(3), || {
        (!process_running(pid1)).then_some(())
    });
    let rest: Vec<usize> = ids.iter().copied().filter(|&i| i != l1).collect();
    let l2 = sc.wait_single_leader_among(&rest, SECS(15));
    let c2 = child_of(&sc, l2, "the second leader's child runs");
    println!(
        "MEASURED run_sigkill_takeover_s={:.3}",
        t_kill.elapsed().as_secs_f64()
    );

    // --- network cut of the leader: it stops its child before anyone else
    // can take the Lease.
    let t_cut = Instant::now();
    proxies[l2].cut();
    let down = sc.wait_sample(l2, t_cut, "the cut leader steps down", SECS(8), |s| {
        s.up && !s.is_leader
    });
    let last_renew = parse_time(
        down.status
            .as_ref()
            .and_then(|s| s.last_renew.as_deref())
            .expect("last renew"),
    );
    let stopped = sc.wait("the cut leader's child stopped", SECS(5), || {
        let v = sc.d(l2).leader()?;
        let c = v.child?;
        let m = sc.d(l2).metric("lease_elector_child_running", &[])?;
        (c.state == "idle" && c.last_exit.is_some() && m == 0.0).then_some(c)
    });
    assert!(
        !process_running(c2.pid.unwrap()),
        "the cut leader's child is gone"
    );
    let other: Vec<usize> = rest.iter().copied().filter(|&i| i != l2).collect();
    let l3 = sc.wait_single_leader_among(&other, SECS(15));
    let c3 = child_of(&sc, l3, "the third leader's child runs");
    let cut_child = intervals(&file)
        .into_iter()
        .find(|iv| iv.pid == c2.pid.unwrap())
        .expect("the cut leader's child wrote lines");
    println!(
        "MEASURED run_cut_child_last_line_after_renew_s={:.3} (bound: lease_duration {}s) \
         run_cut_stepdown_s={:.3} (last renew to 'stopped leading') run_cut_takeover_s={:.3} cut_child_exit={:?}",
        cut_child.last - last_renew,
        LEASE_DURATION.as_secs(),
        sc.d(l2)
            .logged_at("stopped leading", last_renew)
            .expect("the cut leader logs 'stopped leading'")
            - last_renew,
        t_cut.elapsed().as_secs_f64(),
        stopped.last_exit
    );
    assert!(
        cut_child.last < last_renew + LEASE_DURATION.as_secs_f64(),
        "the cut leader's child wrote at {:.3}, after last renew {last_renew:.3} + lease_duration",
        cut_child.last
    );
    assert!(
        cut_child.stopped,
        "the cut leader's child got SIGTERM and wrote stop"
    );
    let t_heal = Instant::now();
    proxies[l2].heal();
    let l3_id = sc.d(l3).identity().to_string();
    sc.wait_sample(l2, t_heal, "the healed supervisor follows", SECS(20), |s| {
        s.up && !s.is_leader && s.holder() == Some(l3_id.as_str())
    });

    // --- SIGTERM of the leader: child stopped first, then the Lease released;
    // the healed supervisor takes over at once with a new child.
    let t_term = Instant::now();
    sc.sigterm(l3);
    let st = sc.wait_exit(l3, SECS(15));
    assert_eq!(st.code(), Some(0), "SIGTERM: exit 0");
    assert!(!process_running(c3.pid.unwrap()), "the child went with it");
    let l4 = sc.wait_single_leader_among(&[l2], SECS(10));
    let c4 = child_of(&sc, l4, "the fourth child runs");
    assert_eq!(c4.starts, 2, "the healed supervisor's second child");
    let m = sc.d(l4).metrics().expect("metrics");
    assert_eq!(
        http::metric(&m, "lease_elector_child_starts_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        http::metric(&m, "lease_elector_child_running", &[]),
        Some(1.0)
    );
    assert!(
        http::metric_sum(&m, "lease_elector_child_exits_total", &[]) >= 1.0,
        "the cut child's exit is counted"
    );
    println!(
        "MEASURED run_sigterm_handover_s={:.3}",
        t_term.elapsed().as_secs_f64()
    );

    // Wrap up: stop the last one so its child writes its stop line.
    sc.sigterm(l4);
    assert_eq!(sc.wait_exit(l4, SECS(15)).code(), Some(0));
    assert!(!process_running(c4.pid.unwrap()));

    // --- the file: four children, one after the other, tokens rising.
    let ivs = intervals(&file);
    for iv in &ivs {
        println!(
            "e2e run: child {} token {} pid {}: {:.3} .. {:.3} ({} lines, start {}, stop {})",
            iv.identity, iv.token, iv.pid, iv.first, iv.last, iv.lines, iv.started, iv.stopped
        );
    }
    let pids: Vec<u32> = ivs.iter().map(|iv| iv.pid).collect();
    assert_eq!(
        pids,
        vec![pid1, c2.pid.unwrap(), c3.pid.unwrap(), c4.pid.unwrap()],
        "the children in order"
    );
    assert!(
        ivs.iter().all(|iv| iv.started),
        "every child wrote its start line"
    );
    assert!(
        !ivs[0].stopped,
        "the SIGKILLed leader's child had no chance to write stop"
    );
    assert!(
        ivs[1..].iter().all(|iv| iv.stopped),
        "the others got SIGTERM"
    );
    let mut gaps = Vec::new();
    for w in ivs.windows(2) {
        assert!(
            w[0].last < w[1].first,
            "children overlap: {:?} and {:?}",
            w[0],
            w[1]
        );
        assert!(
            w[1].token > w[0].token,
            "fencing tokens must grow: {:?} then {:?}",
            w[0],
            w[1]
        );
        gaps.push(format!("{:.3}", w[1].first - w[0].last));
    }
    println!(
        "MEASURED run_child_gaps_s={} (last line of one child to the first of the next: SIGKILL, cut, SIGTERM)",
        gaps.join(",")
    );
    sc.finish();
    drop(proxies);
}

/// Issue 10, defect 2: a leader's lease-elector is stopped (SIGSTOP of it
/// alone; its child runs on in its own process group). It cannot stop its
/// child, so the watchdog process kills the child's group by the
/// leadership's validity instant (last renew sent + 0.9 × lease_duration),
/// before the other candidate may take over and start its own.
#[test]
fn a_stopped_supervisors_child_is_killed_before_the_next_leader_starts_one() {
    let Some(fx) = shared_fixture() else { return };
    let lease = "e2e-run-stop";
    let mut sc = Scenario::new("run-stopped-supervisor", &fx);
    let file = sc.dir.join("children.log");
    std::fs::write(&file, "").unwrap();
    let mut ids = Vec::new();
    for name in ["stop-a", "stop-b"] {
        let mut spec = DaemonSpec::new(name, lease, &fx.admin_kubeconfig);
        spec.run = Some(vec!["sh".into(), "-c".into(), CHILD.into()]);
        spec.extra_args = vec!["--grace-period".into(), "2s".into()];
        spec.env = vec![("E2E_RUN_FILE".into(), file.display().to_string())];
        ids.push(sc.spawn(spec));
    }
    let l1 = sc.wait_single_leader(lease, SECS(30));
    let pid1 = sc.wait("the first leader's child runs", SECS(10), || {
        let c = sc.d(l1).leader()?.child?;
        (c.state == "running").then_some(c.pid?)
    });
    sc.wait("the child's lines", SECS(5), || {
        intervals(&file)
            .iter()
            .find(|iv| iv.pid == pid1 && iv.lines > 2)
            .cloned()
    });

    let t_stop = sc.sigstop(l1);
    // A renew already on its way may still land: read the record after it.
    std::thread::sleep(Duration::from_millis(500));
    let renewed = LeaseFields(&sc.kubectl.lease(lease).expect("lease"))
        .renew_time()
        .expect("renewTime");
    let l2 = ids[1 - l1];
    sc.wait_single_leader_among(&[l2], SECS(20));
    let pid2 = sc.wait("the second leader's child runs", SECS(10), || {
        let c = sc.d(l2).leader()?.child?;
        (c.state == "running").then_some(c.pid?)
    });
    sc.wait("the stopped leader's child is gone", SECS(1), || {
        (!process_running(pid1)).then_some(())
    });
    sc.wait("the second child's lines", SECS(5), || {
        intervals(&file)
            .iter()
            .find(|iv| iv.pid == pid2 && iv.started)
            .cloned()
    });
    let ivs = intervals(&file);
    let first = ivs.iter().find(|iv| iv.pid == pid1).expect("first child");
    let second = ivs.iter().find(|iv| iv.pid == pid2).expect("second child");
    println!(
        "MEASURED run_stopped_child_last_line_after_renew_s={:.3} (validity {:.1}s, lease_duration {}s) \
         stop_to_second_child_s={:.3} gap_s={:.3}",
        first.last - renewed,
        LEASE_DURATION.as_secs_f64() * 0.9,
        LEASE_DURATION.as_secs(),
        second.first - t_stop,
        second.first - first.last
    );
    assert!(
        !first.stopped,
        "the stopped supervisor could not have sent the stop signal: {first:?}"
    );
    assert!(
        first.last < renewed + LEASE_DURATION.as_secs_f64(),
        "the stopped leader's child wrote at {:.3}, after its last renew {renewed:.3} + lease_duration",
        first.last
    );
    assert!(
        first.last < second.first,
        "children overlap: {first:?} and {second:?}"
    );

    // Resumed, the old leader notices it lost and follows.
    sc.sigcont(l1);
    let l2_id = sc.d(l2).identity().to_string();
    sc.wait("the resumed supervisor follows", SECS(20), || {
        let v = sc.d(l1).leader()?;
        (!v.is_leader && v.holder.as_deref() == Some(l2_id.as_str())).then_some(())
    });
    assert!(process_running(pid2), "the new leader's child runs on");
    // The resumed daemon logs its term's end late, so the logs' terms
    // overlap by design; the samples (taken while it answered) must not.
    sc.assert_no_overlap();
}
