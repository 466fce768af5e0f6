#!/usr/bin/env python3
"""The alert rules and the dashboard queries in a real Prometheus, against fake
lease-elector targets. Standard library only; needs the `prometheus` binary
(Debian's prometheus package) and tests/prometheus/make-test-rules.sh.

  real_prometheus.py [--prometheus PATH] [--keep]

Three fake candidates serve /metrics on 127.0.0.1 (the metric names and labels
the daemon exports, with namespace="prod", lease="ctrl"). Prometheus scrapes
them every second as job "lease-elector" with honor_labels: true (the target
also carries namespace="scrape-ns", which must lose), and evaluates a copy of
helm/lease-elector/files/alerts.yaml whose `for:` are shortened to 3s. The
script then drives the fake metrics through the situations each alert is
about and waits (bounded) for the alert to fire:

  healthy -> no alert; nobody leads -> LeaseElectorNoLeader; two leaders ->
  LeaseElectorSplitBrain; 4 acquisitions -> LeaseElectorFlapping; 50 % failed
  renewals -> LeaseElectorRenewFailures; every target gone ->
  LeaseElectorCandidatesAbsent.

Every dashboard query (dashboard_queries.py --print-queries) must also run
without error, and the ones over metrics the fakes export must return data.
Prints "real-prometheus: N passed, N failed".
"""
import argparse
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
NS, LEASE = "prod", "ctrl"
BUCKETS = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
results = []


def ok(cond, msg):
    results.append((bool(cond), msg))
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    return bool(cond)


class Candidate:
    """State of one fake candidate; render() gives its exposition text."""

    def __init__(self, pod):
        self.pod = pod
        self.lock = threading.Lock()
        self.up = True
        self.is_leader = 0
        self.holder = ""
        self.acquired = 0
        self.lost = 0
        self.observed = 0
        self.renews = 0          # observations of renew_duration_seconds
        self.failures = 0        # renew_failures_total{reason="timeout"}
        self.last_renew = 0.0
        self.api = {"get": 0, "create": 0, "update": 0, "watch": 0, "event": 0}

    def tick(self):
        with self.lock:
            self.api["watch"] += 1
            if self.is_leader:
                self.renews += 2
                self.api["update"] += 2
                self.last_renew = time.time()

    def render(self):
        c = f'lease="{LEASE}",namespace="{NS}"'
        with self.lock:
            lines = [
                "# TYPE lease_elector_is_leader gauge",
                f"lease_elector_is_leader{{{c}}} {self.is_leader}",
                "# TYPE lease_elector_leadership_transitions_total counter",
                f'lease_elector_leadership_transitions_total{{direction="acquired",{c}}} {self.acquired}',
                f'lease_elector_leadership_transitions_total{{direction="lost",{c}}} {self.lost}',
                "# TYPE lease_elector_observed_leader_changes_total counter",
                f"lease_elector_observed_leader_changes_total{{{c}}} {self.observed}",
                "# TYPE lease_elector_renew_duration_seconds histogram",
            ]
            for le in BUCKETS:
                # every renew takes between 5 and 10 ms
                n = self.renews if le == "+Inf" or float(le) >= 0.01 else 0
                lines.append(f'lease_elector_renew_duration_seconds_bucket{{{c},le="{le}"}} {n}')
            lines += [
                f"lease_elector_renew_duration_seconds_sum{{{c}}} {self.renews * 0.007}",
                f"lease_elector_renew_duration_seconds_count{{{c}}} {self.renews}",
                "# TYPE lease_elector_renew_failures_total counter",
            ]
            for reason in ("timeout", "conflict", "forbidden", "not_found", "server_error", "network", "invalid"):
                n = self.failures if reason == "timeout" else 0
                lines.append(f'lease_elector_renew_failures_total{{{c},reason="{reason}"}} {n}')
            lines += [
                "# TYPE lease_elector_last_renew_timestamp_seconds gauge",
                f"lease_elector_last_renew_timestamp_seconds{{{c}}} {self.last_renew}",
                "# TYPE lease_elector_lease_duration_seconds gauge",
                f"lease_elector_lease_duration_seconds{{{c}}} 15",
                "# TYPE lease_elector_leader_info gauge",
                f'lease_elector_leader_info{{holder="{self.holder}",{c}}} 1',
                "# TYPE lease_elector_api_requests_total counter",
            ]
            lines += [f'lease_elector_api_requests_total{{{c},verb="{v}"}} {n}' for v, n in self.api.items()]
            lines += [
                "# TYPE lease_elector_build_info gauge",
                'lease_elector_build_info{version="0.1.0"} 1',
                "# TYPE leader_election_master_status gauge",
                f'leader_election_master_status{{name="{LEASE}"}} {self.is_leader}',
                "# TYPE lease_elector_child_running gauge",
                f"lease_elector_child_running{{{c}}} {self.is_leader}",
                "# TYPE lease_elector_child_starts_total counter",
                f"lease_elector_child_starts_total{{{c}}} {self.acquired}",
                "# TYPE lease_elector_child_exits_total counter",
                f'lease_elector_child_exits_total{{{c},outcome="success"}} 0',
                f'lease_elector_child_exits_total{{{c},outcome="failure"}} 0',
                f'lease_elector_child_exits_total{{{c},outcome="signaled"}} {self.lost}',
            ]
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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Prom:
    def __init__(self, base):
        self.base = base

    def get(self, path, **params):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)

    def firing(self):
        try:
            alerts = self.get("/api/v1/alerts")["data"]["alerts"]
        except Exception:  # noqa: BLE001
            return {}
        return {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}


def wait_for(cond, timeout, step=0.5):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if not os.access(args.prometheus, os.X_OK):
        print(f"prometheus binary not found ({args.prometheus}); apt-get install prometheus", file=sys.stderr)
        return 1

    tmp = tempfile.mkdtemp(prefix="le-prom-")
    cands = [Candidate(p) for p in ("a", "b", "c")]
    servers = [serve(c) for c in cands]
    stop_ticks = threading.Event()

    def ticker():
        while not stop_ticks.wait(0.5):
            for c in cands:
                c.tick()
    threading.Thread(target=ticker, daemon=True).start()

    rules = os.path.join(tmp, "rules.yaml")
    subprocess.run([os.path.join(HERE, "make-test-rules.sh"), "-f", "3s", "-o", rules], check=True)
    queries = subprocess.run([sys.executable, os.path.join(HERE, "dashboard_queries.py"), "--print-queries",
                              "--namespace", NS, "--lease", LEASE, "--job", "lease-elector",
                              "--rate-interval", "10s", "--interval", "1s"],
                             check=True, capture_output=True, text=True).stdout.splitlines()
    targets = "\n".join(
        f"      - targets: ['127.0.0.1:{s.server_address[1]}']\n        labels: {{pod: '{c.pod}', namespace: scrape-ns}}"
        for s, c in zip(servers, cands))
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: lease-elector
    honor_labels: true
    static_configs:
{targets}
""")
    port = free_port()
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen([args.prometheus, f"--config.file={tmp}/prometheus.yml",
                             f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    prom = Prom(f"http://127.0.0.1:{port}")
    try:
        ready = wait_for(lambda: _ready(prom), 30)
        if not ok(ready, f"prometheus {args.prometheus} ready on 127.0.0.1:{port}"):
            return 1
        for c in cands:
            c.holder = "a"
        cands[0].is_leader, cands[0].acquired = 1, 1
        n = wait_for(lambda: _value(prom, 'count(up{job="lease-elector"} == 1)') == 3, 20)
        ok(n, "three targets up")
        ok(wait_for(lambda: _value(prom, f'sum by (namespace, lease) (lease_elector_is_leader{{namespace="{NS}",lease="{LEASE}"}})') == 1, 15),
           "honor_labels: the metrics keep namespace=prod (not the target's scrape-ns)")
        ok(_value(prom, 'count(lease_elector_is_leader{exported_namespace!=""})') is None,
           "no exported_namespace label")
        time.sleep(5)
        ok(not prom.firing(), f"healthy: no alert firing ({sorted(prom.firing())})")

        # dashboard queries, while every metric has data
        time.sleep(6)  # let rate() windows of 10s fill
        empty = []
        for q in queries:
            try:
                r = prom.query(q)
                if not ok(r.get("status") == "success", f"dashboard query runs: {q[:90]}"):
                    continue
                if not r["data"]["result"]:
                    empty.append(q)
            except urllib.error.HTTPError as e:
                ok(False, f"dashboard query runs: {q[:90]} ({e.read().decode()[:200]})")
        ok(not empty, f"every dashboard query returns data (empty: {empty})")

        # nobody leads
        cands[0].is_leader, cands[0].lost = 0, 1
        for c in cands:
            c.holder = ""
        ok(wait_for(lambda: "LeaseElectorNoLeader" in prom.firing(), 20), "nobody leads -> LeaseElectorNoLeader fires")
        a = prom.firing().get("LeaseElectorNoLeader", {})
        ok(a.get("labels", {}).get("namespace") == NS and a.get("labels", {}).get("lease") == LEASE,
           f"LeaseElectorNoLeader labels namespace/lease ({a.get('labels')})")

        # split brain
        cands[0].is_leader, cands[1].is_leader = 1, 1
        cands[0].acquired, cands[1].acquired = 2, 1
        ok(wait_for(lambda: "LeaseElectorSplitBrain" in prom.firing(), 20), "two leaders -> LeaseElectorSplitBrain fires")
        ok(wait_for(lambda: "LeaseElectorNoLeader" not in prom.firing(), 10), "LeaseElectorNoLeader resolves")

        # flapping: 2+1 acquisitions so far, two more
        cands[1].is_leader = 0
        cands[2].acquired = 2
        ok(wait_for(lambda: "LeaseElectorFlapping" in prom.firing(), 20), "5 acquisitions in 15m -> LeaseElectorFlapping fires")

        # renew failures: as many failures as renewals (50 %)
        def fail_renewals():
            while not stop_ticks.is_set() and not stop_fail.is_set():
                with cands[0].lock:
                    cands[0].failures += 2
                time.sleep(0.5)
        stop_fail = threading.Event()
        threading.Thread(target=fail_renewals, daemon=True).start()
        ok(wait_for(lambda: "LeaseElectorRenewFailures" in prom.firing(), 30),
           "50 % failed renewals -> LeaseElectorRenewFailures fires")
        stop_fail.set()

        # every candidate gone
        for c in cands:
            c.up = False
        ok(wait_for(lambda: "LeaseElectorCandidatesAbsent" in prom.firing(), 20),
           "every target gone -> LeaseElectorCandidatesAbsent fires")
        a = prom.firing().get("LeaseElectorCandidatesAbsent", {})
        ok(a.get("labels", {}).get("job") == "lease-elector", f"CandidatesAbsent labels ({a.get('labels')})")
        ok(a.get("annotations", {}).get("runbook_url", "").endswith("#leaseelectorcandidatesabsent"), "runbook_url")
    finally:
        stop_ticks.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        for s in servers:
            s.shutdown()
        log.close()
        failed = [m for good, m in results if not good]
        if failed:
            print("--- prometheus log (tail)")
            print("".join(open(os.path.join(tmp, "prometheus.log")).readlines()[-20:]))
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    failed = [m for good, m in results if not good]
    print(f"real-prometheus: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _ready(prom):
    try:
        with urllib.request.urlopen(prom.base + "/-/ready", timeout=2) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001
        return False


def _value(prom, expr):
    try:
        res = prom.query(expr)["data"]["result"]
    except Exception:  # noqa: BLE001
        return None
    if not res:
        return None
    return float(res[0]["value"][1])


if __name__ == "__main__":
    sys.exit(main())
