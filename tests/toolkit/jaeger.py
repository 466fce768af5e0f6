"""A real Jaeger (tests/jaeger/build.sh) for the tests: an OTLP/HTTP receiver on
127.0.0.1 with in-memory storage, and the one client of its query API."""
import os

from .net import JsonApi, free_port
from .wait import wait_for

CONFIG = """service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
"""


class Jaeger(JsonApi):
    """Client of Jaeger's query API at `base` (http://127.0.0.1:PORT)."""

    def services(self):
        return self.get("/api/services").get("data") or []

    def traces(self, service, operation=None, limit=1000, lookback="1h"):
        """The traces of `service` (optionally of one operation), as /api/traces returns them."""
        params = {"service": service, "limit": limit, "lookback": lookback}
        if operation:
            params["operation"] = operation
        return self.get("/api/traces", **params).get("data") or []


def spans(traces):
    """Every span of `traces` as a dict: operation, start (µs), duration (µs), tags {key: value},
    process service name and tags."""
    out = []
    for t in traces:
        for s in t.get("spans", []):
            proc = t.get("processes", {}).get(s.get("processID"), {})
            out.append({
                "trace": t.get("traceID"), "operation": s.get("operationName"),
                "start": s.get("startTime", 0), "duration": s.get("duration", 0),
                "tags": {tag["key"]: tag.get("value") for tag in s.get("tags", [])},
                "service": proc.get("serviceName"),
            })
    return out


class JaegerServer:
    """A `jaeger` process (the v2 all-in-one binary) in `workdir`, listening on 127.0.0.1 only."""

    def __init__(self, binary, workdir, processes):
        self.binary, self.workdir, self.processes = binary, workdir, processes
        self.log = os.path.join(workdir, "jaeger.log")
        self.proc = None
        self.otlp_endpoint = None

    def start(self, timeout=60):
        """Starts it; the query client once /api/services answers, else None."""
        ports = {"query": free_port(), "query_grpc": free_port(), "otlp": free_port()}
        cfg = os.path.join(self.workdir, "jaeger.yaml")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(**ports))
        # its own tracing stays off (it would dial localhost:4317)
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"}
        self.proc = self.processes.start([self.binary, "--config", f"file:{cfg}"], log=self.log, env=env)
        client = Jaeger(f"http://127.0.0.1:{ports['query']}")

        def up():
            try:
                client.services()
                return True
            except OSError:
                return False
        if not wait_for(up, timeout, 0.5):
            return None
        self.otlp_endpoint = f"http://127.0.0.1:{ports['otlp']}"
        return client
