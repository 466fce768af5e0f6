"""Who led when, from the "Leader per pod" panel's series (is_leader per pod over
time), and the failovers in it: a handover (the next leader within half a lease
duration: a release) or an expiry gap (nobody led until the Lease expired, or longer).

Standard library only; measured on the query's steps, so a duration is known to one
step either way.
"""
import math
from dataclasses import dataclass


@dataclass
class Failover:
    kind: str  # "handover" | "expiry gap" | "no leader"
    start: float  # first step without the old leader
    end: float  # first step with the new leader
    before: str  # the old leader's pod
    after: str  # the new leader's pod

    @property
    def seconds(self):
        return self.end - self.start

    def label(self, step):
        """The measured duration: between two steps when no step went without a leader."""
        if self.seconds < step:
            return f"{self.kind} < {step:g}s"
        return f"{self.kind} {self.seconds:.0f}s"


def leader_at(lanes):
    """[(t, pod or None)] for every step at which some pod had a sample."""
    by_time = {}
    for pod, series in lanes.items():
        for t, v in zip(series.times, series.values):
            if not math.isfinite(v):
                continue
            cur = by_time.setdefault(t, None)
            if v >= 1:
                by_time[t] = pod if cur is None else cur
    return sorted(by_time.items())


def failovers(steps, lease_duration):
    """The changes of leader in [(t, pod or None)], each with the time nobody led
    (a leader that comes back after a vacancy counts too)."""
    out, leader, vacant_since = [], None, None
    for t, pod in steps:
        if pod is None:
            if leader is not None and vacant_since is None:
                vacant_since = t
            continue
        if leader is not None and (pod != leader or vacant_since is not None):
            start = t if vacant_since is None else vacant_since
            out.append(Failover(kind(t - start, lease_duration), start, t, leader, pod))
        leader, vacant_since = pod, None
    return out


def kind(seconds, lease_duration):
    if seconds < lease_duration / 2:
        return "handover"
    if seconds <= 2 * lease_duration:
        return "expiry gap"
    return "no leader"


def segments(series):
    """[(start, end, value)] runs of equal finite values; a missing sample ends a run."""
    out, step = [], _step(series.times)
    for t, v in zip(series.times, series.values):
        if not math.isfinite(v):
            continue
        if out and out[-1][2] == v and abs(out[-1][1] - t) < step / 2:
            out[-1][1] = t + step
        else:
            out.append([t, t + step, v])
    return [tuple(s) for s in out]


def _step(times):
    gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
    return min(gaps) if gaps else 1.0
