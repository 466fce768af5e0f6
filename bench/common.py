"""What the benchmarks share: candidates (lease-elector or client-go) on the real
API server fixture, the API server's Lease counters, a Lease watcher that timestamps
every change of holder, and the machine/result formatting.

Used by bench/failover.py (3 candidates) and bench/scale.py (N candidates, many
Leases). Standard library only; the fixture itself comes from tests/toolkit.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from toolkit import Fixture, Processes, by_label, free_port, wait_for  # noqa: E402
from toolkit.procs import Interrupted  # noqa: E402

IMPLS = ("lease-elector", "client-go")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)




class ApiSnapshot:
    """Lease request counters of the API server at one instant."""

    def __init__(self, fixture: Fixture):
        text = fixture.get("/metrics")
        self.t = time.monotonic()
        total = by_label(text, "apiserver_request_total", "verb", resource="leases", group="coordination.k8s.io")
        own = by_label(text, "apiserver_selfrequest_total", "verb", resource="leases", group="coordination.k8s.io")
        # Requests from clients other than the API server itself (its identity
        # Lease, its own informers) by verb.
        self.external = {v: total.get(v, 0.0) - own.get(v, 0.0) for v in set(total) | set(own)}
        self.watches = sum(
            by_label(text, "apiserver_longrunning_requests", "verb", resource="leases", verb="WATCH").values()
        )

    def delta(self, earlier: "ApiSnapshot") -> dict[str, float]:
        verbs = set(self.external) | set(earlier.external)
        d = {v: self.external.get(v, 0.0) - earlier.external.get(v, 0.0) for v in verbs}
        return {v: n for v, n in d.items() if n}


_ports = iter(range(20000 + (os.getpid() % 50) * 200, 32000))


def listen_port() -> int:
    """A free port below the ephemeral range (32768+): with hundreds of candidates, a
    port picked by the kernel can be taken by an outgoing connection before the
    candidate binds it. Each port is handed out once per run."""
    import socket
    for port in _ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    return free_port()


class Candidate:
    def __init__(self, impl: str, index: int, lease: str, ctx: "Context", tag: str = ""):
        self.impl = impl
        self.identity = f"{'le' if impl == 'lease-elector' else 'cg'}-{tag}{index}"
        self.lease = lease
        self.ctx = ctx
        self.port = listen_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        t = self.ctx.timings
        if self.impl == "lease-elector":
            return [
                str(self.ctx.lease_elector_bin),
                "--lease", self.lease, "--namespace", "default", "--identity", self.identity,
                "--lease-duration", t[0], "--renew-deadline", t[1], "--retry-period", t[2],
                "--listen", f"127.0.0.1:{self.port}", "--log-level", os.environ.get("BENCH_LOG_LEVEL", "info"),
            ]
        return [
            str(self.ctx.fixture_bin / "client-go-candidate"),
            "--id", self.identity, "--lock-name", self.lease, "--lock-namespace", "default",
            "--kubeconfig", self.ctx.fixture.kubeconfig,
            "--lease-duration", t[0], "--renew-deadline", t[1], "--retry-period", t[2],
            "--listen", f"127.0.0.1:{self.port}",
        ]

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LEASE_ELECTOR_", "OTEL_", "KUBECONFIG", "RUST_LOG", "POD_"))}
        env["KUBECONFIG"] = self.ctx.fixture.kubeconfig
        env["NO_COLOR"] = "1"
        self.starts += 1
        self.proc = self.ctx.procs.start(self.argv(), log=self.ctx.work / f"{self.lease}.{self.identity}.{self.starts}.log",
                                         env=env, cwd=self.ctx.work)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        Processes.stop(self.proc, 10)

    def _get(self, path: str, timeout: float = 0.5) -> str | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode()
            return body if resp.status == 200 else None
        except OSError:
            return None
        finally:
            conn.close()

    def leader(self) -> dict | None:
        """This candidate's /leader, or None when it does not answer."""
        body = self._get("/leader")
        if body is None:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def requests(self) -> dict[str, float]:
        """The candidate's own count of API requests, by verb."""
        body = self._get("/metrics", timeout=2)
        if body is None:
            return {}
        name = ("lease_elector_api_requests_total" if self.impl == "lease-elector"
                else "client_go_candidate_api_requests_total")
        return by_label(body, name, "verb")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15; fields[0] is field 3 (state).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_kib(self) -> dict[str, int]:
        """Rss, Pss and Anonymous (private) from /proc/PID/smaps_rollup, in KiB. Rss
        includes the binary's clean file pages, shared by every process that runs it;
        Pss divides shared pages among their sharers."""
        assert self.proc is not None
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Anonymous"):
                out[key.lower()] = int(rest.split()[0])
        return out

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


class Context:
    def __init__(self, args, work: Path, fixture: Fixture, procs: Processes):
        self.args = args
        self.work = work
        self.fixture = fixture
        self.fixture_bin = Path(args.fixture_bin).resolve()
        self.lease_elector_bin = Path(args.lease_elector_bin).resolve()
        self.timings = (args.lease_duration, args.renew_deadline, args.retry_period)
        self.procs = procs




def need(cond, timeout: float, what: str):
    """wait_for(cond) polled every 50 ms; the benchmark cannot measure without it."""
    v = wait_for(cond, timeout, 0.05)
    if not v:
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
    return v


def settled(cands: list[Candidate]) -> Candidate | None:
    """The single leader, once every candidate runs and reports it as holder."""
    views = [c.leader() if c.alive() else None for c in cands]
    if any(v is None for v in views):
        return None
    leaders = [c for c, v in zip(cands, views) if v.get("is_leader")]
    if len(leaders) != 1:
        return None
    holder = leaders[0].identity
    if all(v.get("holder") == holder for v in views):
        return leaders[0]
    return None




def fmt(v, f: str) -> str:
    if v is None:
        return "-"
    return f.format(v)


def run_meta(args) -> dict:
    """What a benchmark run's table heading says about it: timings, reps, binary, machine."""
    return {
        "timings": f"{args.lease_duration}/{args.renew_deadline}/{args.retry_period}",
        "reps": args.reps, "crash_reps": args.crash_reps, "window": args.window,
        "lease_elector_bin": os.path.relpath(args.lease_elector_bin, REPO),
        "profile": profile_of(args.lease_elector_bin),
        "machine": machine(),
    }


def print_table(heading: str, meta: dict, row_names: list[str], cells: dict[str, list[str]]) -> None:
    """The side-by-side table: one column per implementation (or N), one row per metric."""
    w0 = max(len(n) for n in row_names)
    widths = {c: max(len(c), *(len(x) for x in col)) for c, col in cells.items()}
    print()
    print(heading)
    print(f"lease-elector: {meta['lease_elector_bin']} ({meta['profile']})")
    print(f"machine: {meta['machine']}, {os.getloadavg()[0]:.2f} at end")
    print()
    print("  ".join([" " * w0] + [c.rjust(widths[c]) for c in cells]))
    for i, name in enumerate(row_names):
        print("  ".join([name.ljust(w0)] + [cells[c][i].rjust(widths[c]) for c in cells]))
    print()


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores ({model}){mem}, load avg 1m {load:.2f} at start"




def default_lease_elector_bin() -> str:
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "lease-elector"
        if p.is_file():
            return str(p)
    return str(REPO / "target" / "debug" / "lease-elector")




def apiserver_rss_kib(fixture: Fixture) -> int:
    """VmRSS of the fixture's kube-apiserver."""
    for line in Path(f"/proc/{fixture.info['apiserver_pid']}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS for kube-apiserver")


class LeaseWatch:
    """Watches one Lease from a thread and timestamps (time.monotonic()) every record
    it sees, as (t, holder, renewTime). Reconnects when the server ends the watch.
    It is one more open watch on the API server, the same for both implementations."""

    def __init__(self, fixture: Fixture, namespace: str, name: str):
        self.fixture = fixture
        self.path = (f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
                     f"?watch=1&timeoutSeconds=3600&fieldSelector=metadata.name%3D{name}")
        self.events: list[tuple[float, str, str]] = []
        self.cond = threading.Condition()
        self.stopped = False
        self.resp = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        info = self.fixture.info
        ctx = ssl.create_default_context(cafile=info["ca_file"])
        while not self.stopped:
            req = urllib.request.Request(info["server"] + self.path,
                                         headers={"Authorization": f"Bearer {info['admin_token']}"})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=3700) as resp:
                    self.resp = resp
                    for line in resp:
                        self._note(line)
            except OSError:
                time.sleep(0.1)

    def _note(self, line: bytes) -> None:
        t = time.monotonic()
        try:
            ev = json.loads(line)
        except ValueError:
            return
        obj = ev.get("object") or {}
        spec = obj.get("spec") or {}
        holder = "" if ev.get("type") == "DELETED" else (spec.get("holderIdentity") or "")
        with self.cond:
            self.events.append((t, holder, spec.get("renewTime") or ""))
            self.cond.notify_all()

    def holder(self) -> str:
        with self.cond:
            return self.events[-1][1] if self.events else ""

    def wait_holder(self, pred, since: float, timeout: float) -> tuple[float, str] | None:
        """The first record seen after `since` whose holder satisfies pred: (t, holder)."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, h, _ in self.events:
                    if t >= since and pred(h):
                        return t, h
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def last_write_by(self, holder: str, before: float) -> float | None:
        """When the last record naming `holder` was seen before `before`."""
        with self.cond:
            ts = [t for t, h, _ in self.events if h == holder and t < before]
        return ts[-1] if ts else None

    def stop(self) -> None:
        self.stopped = True


def add_common_args(ap) -> None:
    ap.add_argument("--impl", choices=[*IMPLS, "both"], default="both")
    ap.add_argument("--lease-duration", default="6s")
    ap.add_argument("--renew-deadline", default="3s")
    ap.add_argument("--retry-period", default="1s")
    ap.add_argument("--lease-elector-bin", default=default_lease_elector_bin(),
                    help="[target/release/lease-elector if present, else target/debug]")
    ap.add_argument("--fixture-bin", default=os.environ.get("K8S_FIXTURE_BIN", str(REPO / "target/k8s-fixture/bin")),
                    help="directory with k8s-fixture, etcd, kube-apiserver, client-go-candidate")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs) and print its path")


def missing_binaries(args, impls: list[str]) -> list[Path]:
    wanted = [Path(args.fixture_bin) / n for n in ("k8s-fixture", "etcd", "kube-apiserver", "client-go-candidate")]
    if "lease-elector" in impls:
        wanted.append(Path(args.lease_elector_bin))
    return [p for p in wanted if not os.access(p, os.X_OK)]


def profile_of(binary: str) -> str:
    return "release" if "/release/" in str(Path(binary).resolve()) else "debug"


def with_fixture(args, body):
    """Starts the API server fixture in a temporary directory, runs body(ctx) and
    returns what it returns; None when it could not measure. Every process started
    is stopped on every exit path (SIGTERM/SIGINT/SIGHUP unwind through here)."""
    Processes.raise_on_signals()
    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="lease-elector-bench-"))
    fixture = Fixture(args.fixture_bin, work / "fixture", procs, log=str(work / "fixture-launcher.log"))
    ctx = Context(args, work, fixture, procs)
    result = None
    try:
        log(f"starting the API server fixture in {work}")
        if not fixture.start(180):
            raise RuntimeError(fixture.error)
        log(f"API server at {fixture.info['server']}")
        result = body(ctx)
    except Interrupted as e:
        log(f"interrupted ({e}); cleaning up")
    except Exception as e:  # noqa: BLE001 - report and clean up
        log(f"error: {e}")
    finally:
        procs.stop_all(25)  # the candidates and the API server, by PID
        if args.keep or result is None:
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result
