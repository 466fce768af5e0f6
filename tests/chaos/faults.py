"""The fault schedule (drawn from a seed) and how each fault is done to the fleet.

A schedule is a list of Fault(kind, aim, duration, pause, delay): `aim` is "leader" (the
candidate leading when the fault starts) or a candidate index; `pause` is the quiet time
before the fault. The same seed and fleet size give the same schedule (CHAOS_SEED
replays it); which identity "leader" resolves to depends on the run.

Kinds:
  sigterm   SIGTERM, wait for the exit, restart after `duration`
  sigkill   SIGKILL, restart after `duration`
  sigstop   SIGSTOP for `duration` (> lease_duration), then SIGCONT (a run-mode
            candidate's child runs on meanwhile: it is in its own process group)
  silent    the candidate's proxy holds every byte for `duration`
  loud      the candidate's proxy closes and refuses every connection for `duration`
  latency   the candidate's proxy delays each chunk by `delay` for `duration`
  apiserver the API server fixture (etcd + kube-apiserver) stopped and started again
"""
import random
import signal
import time
from dataclasses import dataclass, field

KINDS = ("sigterm", "sigkill", "sigstop", "silent", "loud", "latency", "apiserver")
# Relative frequencies of the kinds drawn at random. An API server restart costs ~17 s
# of wall time, so it is not drawn: there is one per 50 faults (at least one).
WEIGHTS = {"sigterm": 3, "sigkill": 3, "sigstop": 2, "silent": 3, "loud": 3, "latency": 2}
RESTARTS_EVERY = 50


@dataclass
class Fault:
    kind: str
    aim: object  # "leader", an int (candidate index) or "all"
    duration: float
    pause: float
    delay: float = 0.0
    # filled in when done:
    target: str = ""
    start: float = 0.0  # wall clock
    healed: float = 0.0
    notes: dict = field(default_factory=dict)

    def describe(self):
        extra = f" delay={self.delay:.2f}s" if self.kind == "latency" else ""
        return f"{self.kind} aim={self.aim} for {self.duration:.2f}s{extra} after {self.pause:.2f}s"


def schedule(seed, count, candidates, lease_duration):
    """`count` faults: every kind at least once (when count allows), an API server restart
    per RESTARTS_EVERY faults, the rest by WEIGHTS."""
    rng = random.Random(seed)
    kinds = list(KINDS) if count >= len(KINDS) else []
    kinds += ["apiserver"] * max(0, count // RESTARTS_EVERY - 1)
    kinds += rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=max(0, count - len(kinds)))
    rng.shuffle(kinds)
    return [draw(rng, kind, candidates, lease_duration) for kind in kinds]


def draw(rng, kind, candidates, lease_duration):
    aim = "all" if kind == "apiserver" else ("leader" if rng.random() < 0.6 else rng.randrange(candidates))
    pause = rng.uniform(0.1, 0.8)
    if kind in ("sigterm", "sigkill"):
        return Fault(kind, aim, rng.uniform(0.0, 1.0), pause)
    if kind == "sigstop":
        return Fault(kind, aim, lease_duration + rng.uniform(0.3, 1.5), pause)
    if kind == "latency":
        return Fault(kind, aim, rng.uniform(1.0, 3.5), pause, delay=rng.choice([0.05, 0.2, 0.6, 1.2]))
    if kind == "apiserver":
        return Fault(kind, aim, 0.0, pause)
    return Fault(kind, aim, rng.uniform(0.5, 4.0), pause)


class Injector:
    """Does faults to a fleet (fleet.candidates, fleet.proxies by identity, fleet.restart_apiserver())."""

    def __init__(self, fleet, log):
        self.fleet, self.log = fleet, log
        self.frozen = {}  # identity -> [(SIGSTOP wall time, SIGCONT wall time)]

    def resolve(self, fault, leaders):
        """The candidate a fault is aimed at (candidate 0 for "leader" when none leads)."""
        cands = self.fleet.candidates
        if fault.aim == "all":
            return None
        if fault.aim == "leader" and leaders:
            return next(c for c in cands if c.identity == leaders[0])
        index = fault.aim if isinstance(fault.aim, int) else 0
        return cands[index % len(cands)]

    def apply(self, fault, leaders):
        cand = self.resolve(fault, leaders)
        fault.target = cand.identity if cand else "apiserver"
        fault.notes["was_leader"] = bool(cand and cand.identity in leaders)
        fault.start = time.time()
        getattr(self, "_" + fault.kind)(fault, cand)
        fault.healed = time.time()

    def _sigterm(self, fault, cand):
        self._stop_and_restart(fault, cand, signal.SIGTERM)

    def _sigkill(self, fault, cand):
        self._stop_and_restart(fault, cand, signal.SIGKILL)

    def _stop_and_restart(self, fault, cand, sig):
        cand.signal(sig)
        code = cand.wait_exit(15)
        if code is None:
            self.log(f"{cand.identity} did not exit within 15s of signal {sig}: SIGKILL")
            cand.signal(signal.SIGKILL)
            cand.wait_exit(10)
        fault.notes["exit"] = code
        time.sleep(fault.duration)
        cand.start()

    def _sigstop(self, fault, cand):
        cand.signal(signal.SIGSTOP)
        stopped = time.time()
        time.sleep(fault.duration)
        cand.signal(signal.SIGCONT)
        self.frozen.setdefault(cand.identity, []).append((stopped, time.time()))

    def _proxy(self, fault, cand, mode, delay=0.0):
        proxy = self.fleet.proxies[cand.identity]
        proxy.set_mode(mode, delay)
        time.sleep(fault.duration)
        proxy.set_mode("pass")

    def _silent(self, fault, cand):
        self._proxy(fault, cand, "silent")

    def _loud(self, fault, cand):
        self._proxy(fault, cand, "loud")

    def _latency(self, fault, cand):
        self._proxy(fault, cand, "latency", fault.delay)

    def _apiserver(self, fault, _cand):
        fault.notes["restart_s"] = self.fleet.restart_apiserver()
