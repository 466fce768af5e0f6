"""The shared test toolkit of the Python and shell test scripts (standard library only).

One place for what every script under tests/ and bench/ needs:

  toolkit.results   Results: one pass/fail recorder ("ok   ..." / "FAIL ..." lines and the
                    closing "N passed, M failed" line), exit status from it.
  toolkit.procs     Processes: start child processes that die with the script
                    (PR_SET_PDEATHSIG) and stop every one of them by PID on every exit path
                    (normal end, exception, SIGTERM/SIGINT/SIGHUP); run(): a command with a
                    timeout, as (rc, stdout, stderr).
  toolkit.wait      wait_for(): the one polling loop.
  toolkit.net       free_port(), http_get() on 127.0.0.1; JsonApi: GET of a JSON API (the
                    base of the Prometheus and Jaeger clients).
  toolkit.fixture   Fixture: the tests/k8s-fixture launcher (etcd + kube-apiserver) and its
                    start-up protocol (the "K8S_FIXTURE_READY <info.json>" line).
  toolkit.kube      Kube: kubectl with a kubeconfig and raw HTTPS requests with a bearer
                    token; write_kubeconfig(): a token-only kubeconfig for the fixture.
  toolkit.proxy     Proxy: a TCP proxy on 127.0.0.1 in front of the API server, one per
                    candidate, with faults: pass, loud (close and refuse), silent (hold
                    every byte, refuse nothing), latency; retarget() after a restart.
  toolkit.candidates  LeaseElector (plain or run mode) and ClientGo (the fixture's
                    client-go-candidate): start, signal, /leader, and terms(): the terms
                    each logged itself, in wall-clock seconds.
  toolkit.prom      Prometheus: the one client of the Prometheus HTTP API;
                    PrometheusServer: a real `prometheus` over static 127.0.0.1 targets;
                    AlertWatch: a poller of /api/v1/alerts.
  toolkit.jaeger    Jaeger: the one client of Jaeger's query API (/api/traces); JaegerServer: a
                    real `jaeger` (tests/jaeger/build.sh) receiving OTLP/HTTP on 127.0.0.1;
                    spans(): the spans of /api/traces answers, flattened.
  toolkit.exposition  the text exposition format: samples(), by_label(), families(), and
                    real_exposition(): the /metrics of a real `lease-elector demo`.

Importing it: put the repository's tests/ directory on sys.path, then import.

    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))           # from tests/<dir>/x.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests")) # from bench/x.py
    from toolkit import Results, Processes, Fixture, wait_for  # noqa: E402

From a shell script: `PYTHONPATH="$root/tests" python3 x.py` (or `-c 'import toolkit'`).

Shell scripts record their checks with tests/toolkit/checks.sh (report, step, summary:
the same "ok   " / "FAIL " lines and closing count): `. "$root/tests/toolkit/checks.sh"`.

wait_for semantics, once for all: cond() is called at least once and then every
`interval` seconds until it returns a truthy value, which wait_for returns; an exception
raised by cond() means "not yet"; after `timeout` seconds wait_for returns None. A caller
that cannot go on without the value raises itself (`or fail("...")`).
"""
from .exposition import by_label, families, real_exposition, samples
from .fixture import Fixture
from .jaeger import Jaeger, JaegerServer
from .kube import Kube, write_kubeconfig
from .net import free_port, http_get
from .procs import Processes, run
from .prom import AlertWatch, Prometheus, PrometheusServer
from .results import Results
from .wait import wait_for

__all__ = [
    "AlertWatch", "Fixture", "Jaeger", "JaegerServer", "Kube", "Processes", "Prometheus", "PrometheusServer", "Results",
    "by_label", "families", "free_port", "http_get", "real_exposition", "run", "samples", "wait_for",
    "write_kubeconfig",
]
