//! One test's world: a temporary directory, its daemons, the sampler watching
//! them, and kubectl as admin.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::daemon::{Daemon, DaemonSpec};
use super::fixture::FixtureInfo;
use super::kubectl::{Kubectl, derive_kubeconfig};
use super::proxy::Proxy;
use super::sampler::{Sample, Sampler};
use super::{keep_dirs, wall_now};

pub struct Scenario {
    pub name: String,
    pub fx: FixtureInfo,
    pub kubectl: Kubectl,
    pub dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    daemons: Vec<Daemon>,
    retired: Vec<bool>,
    pub sampler: Sampler,
    started: Instant,
    finished: bool,
}

impl Scenario {
    pub fn new(name: &str, fx: &FixtureInfo) -> Scenario {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("lease-elector-e2e-{name}-"))
            .tempdir()
            .expect("temp dir");
        println!("e2e {name}: started (dir {})", tmp.path().display());
        Scenario {
            name: name.into(),
            fx: fx.clone(),
            kubectl: Kubectl::new(&fx.admin_kubeconfig),
            dir: tmp.path().to_path_buf(),
            tmp: Some(tmp),
            daemons: Vec::new(),
            retired: Vec::new(),
            sampler: Sampler::start(),
            started: Instant::now(),
            finished: false,
        }
    }

    /// The admin kubeconfig.
    pub fn admin(&self) -> PathBuf {
        self.fx.admin_kubeconfig.clone()
    }

    /// A kubeconfig like the admin's that goes through `proxy`.
    pub fn kubeconfig_via(&self, proxy: &Proxy, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.kubeconfig"));
        derive_kubeconfig(&self.fx.admin_kubeconfig, &path, Some(&proxy.url()), None);
        path
    }

    /// A kubeconfig like the admin's with another bearer token.
    pub fn kubeconfig_with_token(&self, token: &str, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.kubeconfig"));
        derive_kubeconfig(&self.fx.admin_kubeconfig, &path, None, Some(token));
        path
    }

    /// Starts a daemon; its index.
    pub fn spawn(&mut self, spec: DaemonSpec) -> usize {
        let d = Daemon::spawn(spec, &self.dir);
        let i = self
            .sampler
            .add(d.identity(), &d.spec.lease.clone(), d.port);
        assert_eq!(i, self.daemons.len());
        self.daemons.push(d);
        self.retired.push(false);
        i
    }

    /// Starts one admin daemon per identity on `lease` and waits for the
    /// single leader; returns its index.
    pub fn elect(&mut self, identities: &[&str], lease: &str) -> usize {
        for id in identities {
            self.spawn_admin(id, lease);
        }
        self.wait_single_leader(lease, std::time::Duration::from_secs(30))
    }

    /// Starts a daemon with the admin kubeconfig.
    pub fn spawn_admin(&mut self, identity: &str, lease: &str) -> usize {
        let spec = DaemonSpec::new(identity, lease, &self.fx.admin_kubeconfig);
        self.spawn(spec)
    }

    pub fn d(&self, i: usize) -> &Daemon {
        &self.daemons[i]
    }

    pub fn d_mut(&mut self, i: usize) -> &mut Daemon {
        &mut self.daemons[i]
    }

    /// Indices of the daemons that have not been stopped, on `lease`.
    pub fn active(&self, lease: &str) -> Vec<usize> {
        (0..self.daemons.len())
            .filter(|&i| !self.retired[i] && self.daemons[i].spec.lease == lease)
            .collect()
    }

    /// SIGKILL; the wall time just before the signal.
    pub fn sigkill(&mut self, i: usize) -> f64 {
        let t = wall_now();
        self.daemons[i].sigkill();
        self.retire(i);
        t
    }

    /// SIGTERM; the wall time just before the signal.
    pub fn sigterm(&mut self, i: usize) -> f64 {
        let t = wall_now();
        self.daemons[i].sigterm();
        t
    }

    /// SIGSTOP of the daemon alone (its child and watchdog run on in their own
    /// process groups). It no longer answers, and what it answers right after
    /// SIGCONT is stale, so the sampler stops judging it. The wall time just
    /// before the signal.
    pub fn sigstop(&mut self, i: usize) -> f64 {
        let t = wall_now();
        super::signal(self.daemons[i].pid, libc::SIGSTOP);
        self.retire(i);
        t
    }

    /// SIGCONT after [`Scenario::sigstop`].
    pub fn sigcont(&mut self, i: usize) {
        super::signal(self.daemons[i].pid, libc::SIGCONT);
    }

    /// Waits for a daemon to exit (after a signal) and stops sampling it.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> ExitStatus {
        let st = self.daemons[i].wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {timeout:?}; log:\n{}",
                self.daemons[i].identity(),
                self.daemons[i].log_tail(30)
            )
        });
        self.retire(i);
        st
    }

    fn retire(&mut self, i: usize) {
        self.retired[i] = true;
        self.sampler.retire(i);
    }

    /// Panics if the sampler saw two leaders of one Lease.
    pub fn assert_no_overlap(&self) {
        let v = self.sampler.violations();
        assert!(
            v.is_empty(),
            "{}: leadership overlapped:\n{}",
            self.name,
            v.join("\n")
        );
    }

    /// Polls `f` every 50 ms (checking for overlaps meanwhile) until it gives
    /// `Some`, or fails after `timeout`.
    pub fn wait<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            self.assert_no_overlap();
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > timeout {
                panic!(
                    "{}: timed out after {timeout:?} waiting for: {what}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the sampler to record, for daemon `i`, a sample taken after
    /// `since` that satisfies `pred`; returns the first such sample.
    pub fn wait_sample(
        &self,
        i: usize,
        since: Instant,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Sample) -> bool,
    ) -> Sample {
        self.wait(what, timeout, || self.sampler.first_after(i, since, &pred))
    }

    /// The active daemons of `lease` that lead per their latest sample.
    pub fn leaders(&self, lease: &str) -> Vec<usize> {
        self.active(lease)
            .into_iter()
            .filter(|&i| self.sampler.latest(i).is_some_and(|s| s.is_leader))
            .collect()
    }

    /// Waits until exactly one active daemon of `lease` leads and every
    /// active daemon of it reports that one as holder (per samples taken
    /// after this call began). Returns the leader's index.
    pub fn wait_single_leader(&self, lease: &str, timeout: Duration) -> usize {
        self.wait_single_leader_among(&self.active(lease), timeout)
    }

    /// As [`Scenario::wait_single_leader`], over the daemons `among` only
    /// (e.g. leaving out one that is cut off the API server).
    pub fn wait_single_leader_among(&self, among: &[usize], timeout: Duration) -> usize {
        let since = Instant::now();
        let names: Vec<&str> = among.iter().map(|&i| self.daemons[i].identity()).collect();
        self.wait(
            &format!("a single leader among {names:?} that each of them reports"),
            timeout,
            || {
                let mut latest = Vec::new();
                for &i in among {
                    let s = self.sampler.latest(i).filter(|s| s.at >= since && s.up)?;
                    latest.push((i, s));
                }
                let leaders: Vec<usize> = latest
                    .iter()
                    .filter(|(_, s)| s.is_leader)
                    .map(|(i, _)| *i)
                    .collect();
                let [leader] = leaders[..] else { return None };
                let id = self.daemons[leader].identity().to_string();
                latest
                    .iter()
                    .all(|(_, s)| s.holder() == Some(id.as_str()))
                    .then_some(leader)
            },
        )
    }

    /// Stops the sampler and checks the whole run for overlaps: at every
    /// sample, and between the leadership terms the daemons' logs show.
    pub fn finish(mut self) {
        self.sampler.stop();
        self.finished = true;
        self.assert_no_overlap();
        let (terms, min_gap) = self.assert_log_terms_disjoint();
        println!(
            "e2e {}: passed in {:.1}s; {} sweeps of every daemon, no two leaders at any sample \
             ({} handovers seen mid-sweep); {terms} leader terms in the logs, disjoint{}",
            self.name,
            self.started.elapsed().as_secs_f64(),
            self.sampler.sweeps(),
            self.sampler.handovers_mid_sweep(),
            min_gap
                .map(|g| format!(", closest handover {:.1} ms", g * 1000.0))
                .unwrap_or_default()
        );
    }

    /// Per Lease, the terms ("became leader" .. "stopped leading", or the
    /// process end) of all daemons must not overlap. Returns the number of
    /// terms and the smallest gap between consecutive ones.
    pub fn assert_log_terms_disjoint(&self) -> (usize, Option<f64>) {
        let mut by_lease: std::collections::BTreeMap<&str, Vec<(f64, f64, &str)>> =
            Default::default();
        for d in &self.daemons {
            for (start, end) in d.leader_terms() {
                by_lease
                    .entry(d.spec.lease.as_str())
                    .or_default()
                    .push((start, end, d.identity()));
            }
        }
        let mut count = 0;
        let mut min_gap: Option<f64> = None;
        for (lease, mut terms) in by_lease {
            count += terms.len();
            terms.sort_by(|a, b| a.0.total_cmp(&b.0));
            for w in terms.windows(2) {
                let (prev, next) = (w[0], w[1]);
                assert!(
                    next.0 >= prev.1,
                    "{}: Lease {lease}: {} became leader at {:.6} while {} led ({:.6} .. {:.6}) per their logs",
                    self.name,
                    next.2,
                    next.0,
                    prev.2,
                    prev.0,
                    prev.1
                );
                let gap = next.0 - prev.1;
                min_gap = Some(min_gap.map_or(gap, |g: f64| g.min(gap)));
            }
        }
        (count, min_gap)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            super::ANY_FAILED.store(true, std::sync::atomic::Ordering::SeqCst);
            eprintln!(
                "===== e2e {} FAILED; leadership timeline (unix time=state):\n{}",
                self.name,
                self.sampler.timeline()
            );
            for d in &self.daemons {
                eprintln!(
                    "----- {} (pid {}, port {}, log {}) last lines:\n{}",
                    d.identity(),
                    d.pid,
                    d.port,
                    d.log.display(),
                    d.log_tail(25)
                );
            }
        } else if !self.finished {
            self.sampler.stop();
        }
        for d in &mut self.daemons {
            d.sigkill();
        }
        if let Some(tmp) = self.tmp.take()
            && (failed || keep_dirs())
        {
            let p = tmp.keep();
            eprintln!("e2e {}: kept {}", self.name, p.display());
        }
    }
}
