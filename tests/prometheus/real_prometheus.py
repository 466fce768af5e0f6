#!/usr/bin/env python3
"""The alert rules and the dashboard queries in a real Prometheus, against fake
lease-elector targets. Standard library only; needs the `prometheus` binary
(Debian's prometheus package), a built `lease-elector` and
tests/prometheus/make-test-rules.sh.

  real_prometheus.py [--prometheus PATH] [--lease-elector PATH] [--keep]

The fake exporter is made from the real metric set: a real `lease-elector demo`
is scraped once, and the fakes export the failure reasons, buckets, verbs,
directions and outcomes found there; the first check is that the fake's
families, types and labels are exactly the real ones, so a metric added,
renamed or relabelled in src/metrics.rs fails this test until the fake follows.

Three fake candidates serve /metrics on 127.0.0.1 (namespace="prod",
lease="ctrl"). Prometheus scrapes them every second as job "lease-elector" with
honor_labels: true (the target also carries namespace="scrape-ns", which must
lose), and evaluates a copy of helm/lease-elector/files/alerts.yaml whose `for:`
are shortened to 3s. The script drives the fake metrics through the situations
each alert is about and waits (bounded) for the alert to fire:

  healthy -> no alert; nobody leads -> LeaseElectorNoLeader; two leaders ->
  LeaseElectorSplitBrain; a crash loop (every leader dies before its first
  scrape, 5 times) -> LeaseElectorFlapping from what the survivors observed;
  50 % failed renewals -> LeaseElectorRenewFailures; a twin renewing under a
  candidate's identity -> LeaseElectorDuplicateIdentity; every target gone ->
  LeaseElectorCandidatesAbsent.

Every dashboard query (dashboard_queries.py --print-queries) must also run
without error and return data. Prints "real-prometheus: N passed, N failed".
"""
import argparse
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toolkit import Processes, PrometheusServer, Results, families, real_exposition, wait_for  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NS, LEASE = "prod", "ctrl"
JOB = "lease-elector"
results = Results("real-prometheus")


class MetricSet:
    """The label values of the real exporter that the fake must reproduce."""

    def __init__(self, real):
        self.real = real
        lab = lambda fam, label: real.get(fam, {}).get("labels", {}).get(label, [])  # noqa: E731
        self.reasons = lab("lease_elector_renew_failures_total", "reason")
        self.verbs = lab("lease_elector_api_requests_total", "verb")
        self.directions = lab("lease_elector_leadership_transitions_total", "direction")
        self.outcomes = lab("lease_elector_child_exits_total", "outcome")
        self.buckets = sorted(lab("lease_elector_renew_duration_seconds", "le"), key=float)
        self.version = (lab("lease_elector_build_info", "version") or ["0.0.0"])[0]


class Candidate:
    """State of one fake candidate; render() gives its exposition text."""

    def __init__(self, pod, metric_set):
        self.pod, self.m = pod, metric_set
        self.lock = threading.Lock()
        self.up = True
        self.is_leader = 0
        self.restart()

    def restart(self):
        """A container restart: every counter starts at 0 again."""
        self.holder = ""
        self.acquired = 0
        self.lost = 0
        self.observed = 0        # holder changes seen
        self.renews = 0          # observations of renew_duration_seconds
        self.failures = 0        # renew_failures_total{reason=<first reason>}
        self.conflicts = 0       # identity_conflicts_total
        self.last_renew = 0.0
        self.api = {v: 0 for v in self.m.verbs}

    def observe(self, holder):
        """The candidate reads the Lease: a new non-empty holder is one observed change."""
        with self.lock:
            if holder and holder != self.holder:
                self.observed += 1
            self.holder = holder

    def tick(self):
        with self.lock:
            self.api["watch"] = self.api.get("watch", 0) + 1
            if self.is_leader:
                self.renews += 2
                self.api["update"] = self.api.get("update", 0) + 2
                self.last_renew = time.time()

    def render(self):
        c = f'lease="{LEASE}",namespace="{NS}"'
        m = self.m
        with self.lock:
            lines = ["# TYPE lease_elector_is_leader gauge", f"lease_elector_is_leader{{{c}}} {self.is_leader}",
                     "# TYPE lease_elector_leadership_transitions_total counter"]
            count = {"acquired": self.acquired, "lost": self.lost}
            lines += [f'lease_elector_leadership_transitions_total{{direction="{d}",{c}}} {count.get(d, 0)}'
                      for d in m.directions]
            lines += ["# TYPE lease_elector_observed_leader_changes_total counter",
                      f"lease_elector_observed_leader_changes_total{{{c}}} {self.observed}",
                      "# TYPE lease_elector_identity_conflicts_total counter",
                      f"lease_elector_identity_conflicts_total{{{c}}} {self.conflicts}",
                      "# TYPE lease_elector_renew_duration_seconds histogram"]
            for le in m.buckets:  # every renew takes between 5 and 10 ms
                n = self.renews if float(le) >= 0.01 else 0
                lines.append(f'lease_elector_renew_duration_seconds_bucket{{{c},le="{le}"}} {n}')
            lines += [f"lease_elector_renew_duration_seconds_sum{{{c}}} {self.renews * 0.007}",
                      f"lease_elector_renew_duration_seconds_count{{{c}}} {self.renews}",
                      "# TYPE lease_elector_renew_failures_total counter"]
            lines += [f'lease_elector_renew_failures_total{{{c},reason="{r}"}} {self.failures if i == 0 else 0}'
                      for i, r in enumerate(m.reasons)]
            lines += ["# TYPE lease_elector_last_renew_timestamp_seconds gauge",
                      f"lease_elector_last_renew_timestamp_seconds{{{c}}} {self.last_renew}",
                      "# TYPE lease_elector_lease_duration_seconds gauge",
                      f"lease_elector_lease_duration_seconds{{{c}}} 15",
                      "# TYPE lease_elector_leader_info gauge",
                      f'lease_elector_leader_info{{holder="{self.holder}",{c}}} 1',
                      "# TYPE lease_elector_api_requests_total counter"]
            lines += [f'lease_elector_api_requests_total{{{c},verb="{v}"}} {self.api.get(v, 0)}' for v in m.verbs]
            lines += ["# TYPE lease_elector_build_info gauge", f'lease_elector_build_info{{build_date="2026-12-02T00:00:00Z",commit="0123456789ab",version="{m.version}"}} 1',
                      "# TYPE leader_election_master_status gauge",
                      f'leader_election_master_status{{name="{LEASE}"}} {self.is_leader}',
                      "# TYPE lease_elector_child_running gauge",
                      f"lease_elector_child_running{{{c}}} {self.is_leader}",
                      "# TYPE lease_elector_child_starts_total counter",
                      f"lease_elector_child_starts_total{{{c}}} {self.acquired}",
                      "# TYPE lease_elector_child_exits_total counter"]
            exits = {"signaled": self.lost}
            lines += [f'lease_elector_child_exits_total{{{c},outcome="{o}"}} {exits.get(o, 0)}' for o in m.outcomes]
        return "\n".join(lines) + "\n"


def serve(cand):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if not cand.up or self.path != "/metrics":
                self.send_response(503 if not cand.up else 404)
                self.end_headers()
                return
            body = cand.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def fake_matches_real(fake, real):
    """Differences between two metric sets (families, types, label names, and the values
    of the enumerated labels); [] when the fake is faithful."""
    enumerated = {"reason", "verb", "direction", "outcome", "le"}
    diffs = [f"family {f} only in {'the real' if f in real else 'the fake'} exporter"
             for f in sorted(set(real) ^ set(fake))]
    for f in sorted(set(real) & set(fake)):
        r, k = real[f], fake[f]
        if r["type"] != k["type"]:
            diffs.append(f"{f}: type {k['type']} in the fake, {r['type']} in the real exporter")
        if set(r["labels"]) != set(k["labels"]):
            diffs.append(f"{f}: labels {sorted(k['labels'])} in the fake, {sorted(r['labels'])} in the real one")
        for label in enumerated & set(r["labels"]):
            if r["labels"][label] != k["labels"].get(label):
                diffs.append(f"{f}: {label} {k['labels'].get(label)} in the fake, {r['labels'][label]} in the real one")
    return diffs


class Scenario:
    def __init__(self, prom, cands):
        self.prom, self.cands = prom, cands
        self.stop_ticks = threading.Event()

    def value(self, expr):
        return self.prom.value(expr)

    def fires(self, alert, timeout):
        return wait_for(lambda: alert in self.prom.firing(), timeout, 0.5)

    def healthy(self):
        a = self.cands[0]
        for c in self.cands:
            c.observe("a")
        a.is_leader, a.acquired = 1, 1
        results.check(wait_for(lambda: self.value(f'count(up{{job="{JOB}"}} == 1)') == 3, 20, 0.5), "three targets up")
        results.check(wait_for(lambda: self.value(
            f'sum by (namespace, lease) (lease_elector_is_leader{{namespace="{NS}",lease="{LEASE}"}})') == 1, 15, 0.5),
            "honor_labels: the metrics keep namespace=prod (not the target's scrape-ns)")
        results.check(self.value('count(lease_elector_is_leader{exported_namespace!=""})') is None,
                      "no exported_namespace label")
        time.sleep(5)
        results.check(not self.prom.firing(), f"healthy: no alert firing ({sorted(self.prom.firing())})")

    def dashboard(self, queries):
        time.sleep(6)  # let rate() windows of 10s fill
        empty = []
        for q in queries:
            try:
                r = self.prom.query(q)
                if not results.check(r.get("status") == "success", f"dashboard query runs: {q[:90]}"):
                    continue
                if not r["data"]["result"]:
                    empty.append(q)
            except urllib.error.HTTPError as e:
                results.check(False, f"dashboard query runs: {q[:90]} ({e.read().decode()[:200]})")
        results.check(not empty, f"every dashboard query returns data (empty: {empty})")

    def nobody_leads(self):
        a = self.cands[0]
        a.is_leader, a.lost = 0, 1
        for c in self.cands:
            c.observe("")
        results.check(self.fires("LeaseElectorNoLeader", 20), "nobody leads -> LeaseElectorNoLeader fires")
        labels = self.prom.firing().get("LeaseElectorNoLeader", {}).get("labels", {})
        results.check(labels.get("namespace") == NS and labels.get("lease") == LEASE,
                      f"LeaseElectorNoLeader labels namespace/lease ({labels})")

    def split_brain(self):
        a, b, _ = self.cands
        a.is_leader, b.is_leader = 1, 1
        a.acquired, b.acquired = 2, 1
        results.check(self.fires("LeaseElectorSplitBrain", 20), "two leaders -> LeaseElectorSplitBrain fires")
        results.check(wait_for(lambda: "LeaseElectorNoLeader" not in self.prom.firing(), 10, 0.5),
                      "LeaseElectorNoLeader resolves")
        a.is_leader, b.is_leader = 0, 0

    def crash_loop(self, changes=5):
        """Every leader dies before its first scrape as leader: the Lease changes hands
        `changes` times, each new holder's container restarts (its counters at 0 again),
        no scrape ever sees an acquisition; the survivors see every change."""
        acquired = f'sum(round(increase(lease_elector_leadership_transitions_total{{job="{JOB}",direction="acquired"}}[15m])))'
        before = self.value(acquired)
        for i in range(changes):
            holder = self.cands[1 + i % 2]  # b, c, b, ...: whoever takes over crashes at once
            for c in self.cands:
                c.observe(holder.pod)
            holder.restart()
            holder.observe(holder.pod)
            time.sleep(1.5)  # a scrape of every candidate between two changes
        results.check(self.fires("LeaseElectorFlapping", 20),
                      f"a crash-looping leader ({changes} takeovers, each leader dead before its first scrape) "
                      "-> LeaseElectorFlapping fires from the changes the survivors observed")
        after = self.value(acquired)
        results.check(after is not None and after <= 3,
                      f"... while the acquisitions Prometheus saw stay at the threshold or below "
                      f"({before} before, {after} after the crash loop)")
        a = self.cands[0]  # a leads again for the renew checks
        for c in self.cands:
            c.observe(a.pod)
        a.is_leader = 1

    def renew_failures(self):
        """As many failures as renewals (50 %)."""
        stop_fail = threading.Event()

        def fail_renewals():
            while not self.stop_ticks.is_set() and not stop_fail.is_set():
                with self.cands[0].lock:
                    self.cands[0].failures += 2
                time.sleep(0.5)
        threading.Thread(target=fail_renewals, daemon=True).start()
        results.check(self.fires("LeaseElectorRenewFailures", 30),
                      "50 % failed renewals -> LeaseElectorRenewFailures fires")
        stop_fail.set()

    def duplicate_identity(self):
        """Another process renews under c's identity: c sees it once per renew."""
        c = self.cands[2]
        for _ in range(4):
            with c.lock:
                c.conflicts += 1
            time.sleep(1)
        results.check(self.fires("LeaseElectorDuplicateIdentity", 20),
                      "a twin renews under a candidate's identity -> LeaseElectorDuplicateIdentity fires")

    def all_gone(self):
        for c in self.cands:
            c.up = False
        results.check(self.fires("LeaseElectorCandidatesAbsent", 20),
                      "every target gone -> LeaseElectorCandidatesAbsent fires")
        a = self.prom.firing().get("LeaseElectorCandidatesAbsent", {})
        results.check(a.get("labels", {}).get("job") == JOB, f"CandidatesAbsent labels ({a.get('labels')})")
        results.check(a.get("annotations", {}).get("runbook_url", "").endswith("#leaseelectorcandidatesabsent"),
                      "runbook_url")


def default_lease_elector():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return os.environ.get("LEASE_ELECTOR_BIN", str(target / "debug" / "lease-elector"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--lease-elector", default=default_lease_elector())
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    for what, path in (("prometheus", args.prometheus), ("lease-elector", args.lease_elector)):
        if not os.access(path, os.X_OK):
            print(f"{what} not found at {path} (tests/prometheus/run.sh builds and installs it)", file=sys.stderr)
            return 1

    Processes.raise_on_signals()
    tmp = tempfile.mkdtemp(prefix="le-prom-")
    with Processes() as procs:
        try:
            run_test(args, tmp, procs)
        except Exception as e:  # noqa: BLE001 - report, then clean up
            results.check(False, f"unexpected error: {e!r}")
        finally:
            procs.stop_all()
            if results.failed and os.path.exists(os.path.join(tmp, "prometheus.log")):
                print("--- prometheus log (tail)")
                print("".join(open(os.path.join(tmp, "prometheus.log")).readlines()[-20:]))
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    return results.summary()


def run_test(args, tmp, procs):
    real = families(real_exposition(args.lease_elector))
    metric_set = MetricSet(real)
    cands = [Candidate(p, metric_set) for p in ("a", "b", "c")]
    diffs = fake_matches_real(families(cands[0].render()), real)
    results.check(not diffs, f"the fake exporter exports the real metric set of `lease-elector demo` "
                             f"({len(real)} families; reasons {metric_set.reasons})", "\n".join(diffs))
    servers = [serve(c) for c in cands]
    scenario = Scenario(None, cands)

    def ticker():
        while not scenario.stop_ticks.wait(0.5):
            for c in cands:
                c.tick()
    threading.Thread(target=ticker, daemon=True).start()
    try:
        rules = os.path.join(tmp, "rules.yaml")
        subprocess.run([str(HERE / "make-test-rules.sh"), "-f", "3s", "-o", rules], check=True)
        queries = subprocess.run([sys.executable, str(HERE / "dashboard_queries.py"), "--print-queries",
                                  "--namespace", NS, "--lease", LEASE, "--job", JOB,
                                  "--rate-interval", "10s", "--interval", "1s"],
                                 check=True, capture_output=True, text=True).stdout.splitlines()
        server = PrometheusServer(args.prometheus, tmp, procs, JOB, rules=rules, targets=[
            (s.server_address[1], {"pod": c.pod, "namespace": "scrape-ns"}) for s, c in zip(servers, cands)])
        scenario.prom = server.start(30)
        if not results.check(scenario.prom, f"prometheus {args.prometheus} ready"):
            return
        scenario.healthy()
        scenario.dashboard(queries)
        scenario.nobody_leads()
        scenario.split_brain()
        scenario.crash_loop()
        scenario.renew_failures()
        scenario.duplicate_identity()
        scenario.all_gone()
    finally:
        scenario.stop_ticks.set()
        for s in servers:
            s.shutdown()


if __name__ == "__main__":
    sys.exit(main())
