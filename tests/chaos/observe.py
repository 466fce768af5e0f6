"""What the chaos runner watches while faults happen: the /leader sampler, the Lease history
(a raw watch on the API server) and the run-mode children (their log plus a pidfd each).

Every recorder runs in daemon threads and only appends to its own lists; the verdict
reads them after the faults. Wall-clock times are time.time(); the children's are
CLOCK_MONOTONIC (time.monotonic()), as they log them.
"""
import http.client
import json
import os
import select
import ssl
import threading
import time
import urllib.parse
from pathlib import Path


class Sampler:
    """Polls each candidate's /leader every `interval` seconds, one thread per candidate.
    samples[identity] = [(sent, received, is_leader)]; a candidate that does not answer
    (stopped, restarting) records nothing."""

    def __init__(self, candidates, interval=0.025):
        self.candidates, self.interval = candidates, interval
        self.samples = {c.identity: [] for c in candidates}
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._poll, args=(c,), daemon=True) for c in candidates]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=2)

    def _poll(self, cand):
        out = self.samples[cand.identity]
        while not self.stopping.is_set():
            sent = time.time()
            view = cand.leader(timeout=0.25)
            if view is not None:
                out.append((sent, time.time(), bool(view.get("is_leader"))))
            self.stopping.wait(max(0.0, self.interval - (time.time() - sent)))

    def leaders_now(self, within=0.2, since=0.0):
        """Identities whose latest answer, received in the last `within` s and sent after
        `since` (wall clock), says is_leader."""
        now = time.time()
        return [ident for ident, s in self.samples.items()
                if s and s[-1][2] and now - s[-1][1] < within and s[-1][0] >= since]


class LeaseWatch:
    """A raw watch on one Lease (first the current object as ADDED, then every change),
    restarted from a fresh list whenever it ends (an API server restart). history =
    [(wall time, type, holderIdentity, leaseTransitions, resourceVersion)]."""

    def __init__(self, fixture, lease, namespace="default"):
        self.fixture, self.lease, self.namespace = fixture, lease, namespace
        self.history = []
        self.errors = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()

    def _loop(self):
        while not self.stopping.is_set():
            try:
                self._watch_once()
            except (OSError, ValueError, http.client.HTTPException):
                self.errors += 1
            self.stopping.wait(0.2)

    def _watch_once(self):
        info = self.fixture.info
        url = urllib.parse.urlsplit(info["server"])
        ctx = ssl.create_default_context(cafile=info["ca_file"])
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
        selector = urllib.parse.quote(f"metadata.name={self.lease}")
        conn.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
                     f"?watch=1&fieldSelector={selector}",
                     headers={"Authorization": f"Bearer {info['admin_token']}"})
        resp = conn.getresponse()
        try:
            if resp.status != 200:
                raise OSError(f"watch: HTTP {resp.status}")
            while not self.stopping.is_set():
                line = resp.readline()
                if not line:
                    return
                self._record(json.loads(line))
        finally:
            conn.close()

    def _record(self, event):
        obj = event.get("object") or {}
        if event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
            return
        spec = obj.get("spec") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        self.history.append((time.time(), event["type"], spec.get("holderIdentity") or "",
                             spec.get("leaseTransitions"), rv))


class Children:
    """The run-mode children: their start/stop lines (tests/chaos/child.py) in one log, and
    the exit of each, seen through a pidfd (a SIGKILLed child writes no stop line).
    lives[pid] = {"identity", "start", "exit"} in CLOCK_MONOTONIC seconds. "start" is the
    earlier of the logged start and the end of the clock tick (10 ms) in which /proc says
    the process started (the interpreter takes a while before it logs); "exit" is the
    child's own stop line when it wrote one, else when its pidfd said it exited. Both
    err on the late side, by at most a tick and the watcher's wake-up."""

    def __init__(self, log):
        self.log = Path(log)
        self.lives = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._tail, daemon=True)

    def start(self):
        self.log.touch()
        self.thread.start()

    def stop(self):
        time.sleep(0.2)  # the last lines and exits
        self.stopping.set()
        self.thread.join(timeout=2)

    def alive(self):
        return [pid for pid, life in self.lives.items() if life["exit"] is None]

    def _tail(self):
        with open(self.log) as f:
            while not self.stopping.is_set():
                line = f.readline()
                if not line.endswith("\n"):
                    if line:
                        f.seek(f.tell() - len(line))
                    self.stopping.wait(0.005)
                    continue
                self._line(line.split())

    def _line(self, words):
        if len(words) >= 4 and words[0] == "start":
            pid = int(words[1])
            life = {"identity": words[3], "start": min(float(words[2]), proc_start(pid)), "exit": None}
            self.lives[pid] = life
            threading.Thread(target=self._await_exit, args=(pid, life), daemon=True).start()
        elif len(words) >= 3 and words[0] == "stop" and int(words[1]) in self.lives:
            self.lives[int(words[1])].setdefault("stopped", float(words[2]))

    @staticmethod
    def _await_exit(pid, life):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone: it exited before now
            life["exit"] = life.get("stopped", time.monotonic())
            return
        try:
            select.select([fd], [], [])
            seen = time.monotonic()
            time.sleep(0.05)  # its stop line, if it wrote one, is in the log by now
            life["exit"] = life.get("stopped", seen)
        finally:
            os.close(fd)


def proc_start(pid):
    """The start of process `pid` on CLOCK_MONOTONIC (to 1/CLK_TCK s); +inf when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("inf")
    ticks = int(stat.rsplit(")", 1)[1].split()[19]) + 1  # field 22, starttime; its tick's end
    since_boot = ticks / os.sysconf("SC_CLK_TCK")
    return since_boot - (time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic())
