"""Candidates on one Lease: lease-elector daemons (plain or `run -- CMD`) and the client-go
reference candidate (tests/k8s-fixture/cmd/client-go-candidate), started and read alike.

    c = LeaseElector("le-1", lease, kubeconfig, timings, work, procs, run=[...])
    c = ClientGo("cg-1", lease, kubeconfig, timings, work, procs, fixture_bin)
    c.start(); c.leader() -> {"identity", "is_leader", "holder"} or None; c.terms()

Both serve GET /leader on 127.0.0.1:<port> (the port is kept across restarts). Each
start appends to one log per start (<work>/<identity>.<n>.log); terms() reads every one
of them back into the terms the candidate itself logged: (start, end) in wall-clock
seconds (time.time()), end None while it still leads. lease-elector logs JSON
("became leader" / "stopped leading"); client-go-candidate logs klog lines ("started
leading: ID", then "Received termination" (its context is cancelled: the work stops) or
"leader lost: ID" (OnStoppedLeading)). A term whose process died without a closing line
ends when the process was seen to exit (note_exit()). reported_terms() are the terms as
/leader reports them: the same, except that client-go-candidate says is_leader until
OnStoppedLeading, after its release, while its work stopped at the cancellation.

Timings are (lease_duration, renew_deadline, retry_period) in seconds.
"""
import calendar
import http.client
import json
import os
import re
import subprocess
import time
from pathlib import Path

from .net import free_port

_CLEAN_ENV_PREFIXES = ("LEASE_ELECTOR_", "OTEL_", "KUBECONFIG", "RUST_LOG", "POD_")


def clean_env(**extra):
    """The environment without anything that would configure a candidate, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEAN_ENV_PREFIXES)}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def seconds(s):
    """'0.5s' style duration text for a number of seconds."""
    return f"{s:g}s"


class Candidate:
    impl = "?"

    def __init__(self, identity, lease, kubeconfig, timings, work, procs):
        self.identity, self.lease, self.kubeconfig = identity, lease, str(kubeconfig)
        self.timings, self.work, self.procs = timings, Path(work), procs
        self.port = free_port()
        self.proc = None
        self.starts = 0
        self.exits = {}  # start number -> wall time its process was seen to exit

    def argv(self):
        raise NotImplementedError

    def log_path(self, n):
        return self.work / f"{self.identity}.{n}.log"

    def start(self):
        self.starts += 1
        self.proc = self.procs.start(self.argv(), log=self.log_path(self.starts),
                                     env=clean_env(KUBECONFIG=self.kubeconfig), cwd=self.work)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """The exit code once the process exited within `timeout` (noted for terms()), else None."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.note_exit()
        return code

    def note_exit(self):
        self.exits.setdefault(self.starts, time.time())

    def leader(self, timeout=0.3):
        """This candidate's /leader as a dict, or None when it does not answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/leader")
            resp = conn.getresponse()
            body = resp.read()
            return json.loads(body) if resp.status == 200 else None
        except (OSError, ValueError):
            return None
        finally:
            conn.close()

    def terms(self, reported=False):
        """Every term this candidate logged, over all its starts: [(start, end)], wall clock."""
        out = []
        for n in range(1, self.starts + 1):
            try:
                text = self.log_path(n).read_text(errors="replace")
            except OSError:
                continue
            out.extend(close_terms(self.parse(text, reported), self.exits.get(n)))
        return out

    def reported_terms(self):
        """The terms as /leader reports them (is_leader true)."""
        return self.terms(reported=True)

    def parse(self, text, reported):
        """[(wall time, "start" | "stop")] from one log."""
        raise NotImplementedError


def close_terms(marks, exited):
    """Pairs start/stop marks into terms; an open term ends at `exited` (or stays open)."""
    terms, begun = [], None
    for t, what in marks:
        if what == "start" and begun is None:
            begun = t
        elif what == "stop" and begun is not None:
            terms.append((begun, t))
            begun = None
    if begun is not None:
        terms.append((begun, exited))
    return terms


class LeaseElector(Candidate):
    """A lease-elector daemon; with `run` (a command list), `lease-elector run -- CMD`."""
    impl = "lease-elector"

    def __init__(self, identity, lease, kubeconfig, timings, work, procs, binary, run=None, grace=None):
        super().__init__(identity, lease, kubeconfig, timings, work, procs)
        self.binary, self.run, self.grace = str(binary), run, grace

    def argv(self):
        d, r, p = self.timings
        argv = [self.binary] + (["run"] if self.run else []) + [
            "--lease", self.lease, "--namespace", "default", "--identity", self.identity,
            "--lease-duration", seconds(d), "--renew-deadline", seconds(r), "--retry-period", seconds(p),
            "--listen", f"127.0.0.1:{self.port}", "--log-format", "json", "--log-level", "info"]
        if self.run:
            if self.grace is not None:
                argv += ["--grace-period", seconds(self.grace)]
            argv += ["--", *self.run]
        return argv

    def parse(self, text, reported):
        marks = []
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            what = {"became leader": "start", "stopped leading": "stop"}.get(rec.get("message"))
            if what:
                marks.append((rfc3339(rec["timestamp"]), what))
        return marks


class ClientGo(Candidate):
    """client-go's tools/leaderelection with ReleaseOnCancel (the fixture's reference candidate)."""
    impl = "client-go"

    def __init__(self, identity, lease, kubeconfig, timings, work, procs, fixture_bin):
        super().__init__(identity, lease, kubeconfig, timings, work, procs)
        self.binary = str(Path(fixture_bin) / "client-go-candidate")

    def argv(self):
        d, r, p = self.timings
        return [self.binary, "--id", self.identity, "--lock-name", self.lease, "--lock-namespace", "default",
                "--kubeconfig", self.kubeconfig, "--listen", f"127.0.0.1:{self.port}",
                "--lease-duration", seconds(d), "--renew-deadline", seconds(r), "--retry-period", seconds(p)]

    def parse(self, text, reported):
        marks = []
        for line in text.splitlines():
            t = klog_time(line)
            if t is None:
                continue
            if f"started leading: {self.identity}" in line:
                marks.append((t, "start"))
            elif f"leader lost: {self.identity}" in line or ("Received termination" in line and not reported):
                marks.append((t, "stop"))
        return marks


_KLOG = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) ")


def klog_time(line):
    """The wall time of a klog line ("I1202 01:48:45.090620 ..."), local time, this year."""
    m = _KLOG.match(line)
    if not m:
        return None
    mo, d, h, mi, s, us = (int(x) for x in m.groups())
    year = time.gmtime().tm_year
    local = calendar.timegm((year, mo, d, h, mi, s, 0, 0, 0))
    return local - time.localtime().tm_gmtoff + us / 1e6


def rfc3339(ts):
    """Seconds since the epoch of "2026-12-02T01:48:44.925719Z" (UTC, any fraction)."""
    base, _, frac = ts.rstrip("Z").partition(".")
    t = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return t + (float("0." + frac) if frac else 0.0)
