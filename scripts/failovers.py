"""Who led when, from the "Leader per pod" panel's series (is_leader per pod over
time), and the failovers in it: a handover (the Lease was released: a candidate that
was running before the vacancy observed it without holder) or an expiry gap (the
candidates saw the old holder until the Lease expired; "no leader" when that took
more than two lease durations, e.g. nobody could reach the API server).

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


def failovers(steps, lease_duration, released=()):
    """The changes of leader in [(t, pod or None)], each with the time nobody led (a
    leader that comes back after a vacancy counts too). released: the times at which
    a candidate that was already running observed the Lease without holder."""
    out, leader, vacant_since, prev = [], None, None, None
    for t, pod in steps:
        if pod is None:
            if leader is not None and vacant_since is None:
                vacant_since = t
        else:
            if leader is not None and (pod != leader or vacant_since is not None):
                start = t if vacant_since is None else vacant_since
                was_released = any(prev <= r <= t for r in released)
                out.append(Failover(kind(t - start, lease_duration, was_released), start, t, leader, pod))
            leader, vacant_since = pod, None
        if vacant_since is None:
            prev = t  # the last step at which the old leader still led
    return out


def kind(seconds, lease_duration, released):
    if released or seconds == 0:
        return "handover"
    if seconds <= 2 * lease_duration:
        return "expiry gap"
    return "no leader"


def seen_released(lanes, no_holder):
    """The times at which a pod observed no holder while it had been scraped one step
    before (a pod that just started reports no holder until it has read the Lease)."""
    out = []
    for pod, series in no_holder.items():
        lane = lanes.get(pod)
        if lane is None:
            continue
        step = step_of(lane.times)
        up = {round(t, 3) for t, v in zip(lane.times, lane.values) if math.isfinite(v)}
        out += [t for t, v in zip(series.times, series.values)
                if math.isfinite(v) and round(t - step, 3) in up]
    return out


def segments(series):
    """[(start, end, value)] runs of equal finite values; a missing sample ends a run."""
    out, step = [], step_of(series.times)
    for t, v in zip(series.times, series.values):
        if not math.isfinite(v):
            continue
        if out and out[-1][2] == v and abs(out[-1][1] - t) < step / 2:
            out[-1][1] = t + step
        else:
            out.append([t, t + step, v])
    return [tuple(s) for s in out]


def step_of(times):
    """The query's step, as the smallest distance of two samples."""
    gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
    return min(gaps) if gaps else 1.0
