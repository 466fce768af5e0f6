"""A real Prometheus for the tests, and the one client of its HTTP API."""
import json
import os
import threading
import time
import urllib.parse
import urllib.request

from .net import JsonApi, free_port
from .wait import wait_for


class Prometheus(JsonApi):
    """Client of the Prometheus HTTP API at `base` (http://127.0.0.1:PORT)."""

    def ready(self):
        with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
            return r.status == 200

    def query(self, expr):
        """The whole /api/v1/query answer (raises urllib.error.HTTPError on a bad query)."""
        return self.get("/api/v1/query", query=expr)

    def value(self, expr):
        """The value of the first series of an instant query, or None when it is empty."""
        res = self.query(expr)["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    def alerts(self):
        return self.get("/api/v1/alerts")["data"]["alerts"]

    def firing(self):
        """{alertname: alert} of the alerts firing now."""
        return {a["labels"]["alertname"]: a for a in self.alerts() if a["state"] == "firing"}


class PrometheusServer:
    """A `prometheus` process in `workdir`: scrape and rule evaluation every second, one job
    with honor_labels over static targets [(port, {label: value})] on 127.0.0.1."""

    def __init__(self, binary, workdir, processes, job, targets, rules=None):
        self.binary, self.workdir, self.processes = binary, workdir, processes
        self.job, self.targets, self.rules = job, targets, rules
        self.log = os.path.join(workdir, "prometheus.log")
        self.proc = None
        self.client = None
        self.started_at = None  # wall-clock time once ready

    def config(self):
        targets = "\n".join(
            f"      - targets: ['127.0.0.1:{port}']\n        labels: {json.dumps(labels)}"
            for port, labels in self.targets)
        rules = f"rule_files:\n  - {self.rules}\n" if self.rules else ""
        return f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
{rules}scrape_configs:
  - job_name: {self.job}
    honor_labels: true
    static_configs:
{targets}
"""

    def start(self, timeout=60):
        """Starts it; the client once /-/ready answers, else None."""
        cfg = os.path.join(self.workdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(self.config())
        port = free_port()
        self.proc = self.processes.start(
            [self.binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.workdir}/prometheus-data",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            log=self.log)
        client = Prometheus(f"http://127.0.0.1:{port}")
        if not wait_for(client.ready, timeout, 0.5):
            return None
        self.client = client
        self.started_at = time.time()
        return client

    def stop(self):
        self.processes.stop(self.proc, 15)


class AlertWatch(threading.Thread):
    """Polls /api/v1/alerts every 0.5 s and remembers when each (alert, state) was seen."""

    def __init__(self, prom):
        super().__init__(daemon=True)
        self.prom = prom
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.seen = {}  # (alertname, state) -> monotonic times
        self.polls = 0
        self.errors = 0

    def run(self):
        while not self.stop.wait(0.5):
            try:
                alerts = self.prom.alerts()
            except Exception:  # noqa: BLE001
                self.errors += 1
                continue
            now = time.monotonic()
            with self.lock:
                self.polls += 1
                for a in alerts:
                    self.seen.setdefault((a["labels"]["alertname"], a["state"]), []).append(now)

    def times(self, name, state, since=0.0):
        with self.lock:
            return [t for t in self.seen.get((name, state), []) if t >= since]

    def names(self, state):
        with self.lock:
            return sorted({n for (n, s) in self.seen if s == state})
