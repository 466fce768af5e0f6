#!/usr/bin/env python3
"""Failover benchmark: lease-elector side by side with a client-go candidate.

Starts its own real API server (tests/k8s-fixture) in a temporary directory,
then, for each implementation in turn, runs three candidates on a Lease of
their own with the same timings (lease 6s / renew deadline 3s / retry 1s by
default) and measures:

  * steady state, one leader + two followers over a window:
      - Lease requests seen by the API server (apiserver_request_total minus
        apiserver_selfrequest_total, resource="leases", by verb), per second,
        in total and per candidate (total / 3);
      - the same split per process (leader vs follower) from each candidate's
        own counter (lease_elector_api_requests_total /
        client_go_candidate_api_requests_total);
      - open watches on leases held by the candidates
        (apiserver_longrunning_requests, minus what was open before);
      - CPU time per candidate over the window (/proc/PID/stat);
      - RSS per candidate after the window (VmRSS in /proc/PID/status);
  * graceful handover: SIGTERM the leader (which releases the Lease), time
    until another candidate's /leader says is_leader, sampled every 10 ms;
  * crash takeover: SIGKILL the leader, time until another leads.

The stopped candidate is restarted after each repetition. Results go to a
side-by-side table and to lines "BENCH <impl> <metric>=<value>".

Numbers, not assertions: this script exits non-zero only when it cannot
measure (a candidate does not come up, no leader appears, ...).

Usage: bench/failover.py [--quick] [--impl lease-elector|client-go|both] ...
(bench/run.sh builds everything first and then calls this.)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    IMPLS, ApiSnapshot, Candidate, Context, add_common_args, fmt, log, print_table, run_meta,
    missing_binaries, need, settled, with_fixture,
)

SAMPLE_INTERVAL = 0.010  # /leader sampling period during a failover
CANDIDATES = 3

# ---------------------------------------------------------------- measuring


def failover(cands: list[Candidate], sig: int, timeout: float) -> tuple[float, Candidate, Candidate]:
    """Signals the leader; returns (seconds until another leads, old, new)."""
    old = need(lambda: settled(cands), 30, "a settled leader")
    others = [c for c in cands if c is not old]
    t0 = time.monotonic()
    old.signal(sig)
    deadline = t0 + timeout
    tick = t0
    while True:
        for c in others:
            v = c.leader()
            if v and v.get("is_leader"):
                return time.monotonic() - t0, old, c
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"no new leader within {timeout:.0f}s after signal {sig}")
        tick += SAMPLE_INTERVAL
        if tick > now:
            time.sleep(tick - now)
        else:
            tick = now


def repeat_failovers(ctx: Context, cands: list[Candidate], sig: int, reps: int, label: str) -> list[float]:
    times = []
    for i in range(reps):
        need(lambda: settled(cands), 30, "a settled leader")
        # Land the signal at a random phase of the renew / poll cycles.
        time.sleep(random.uniform(1.0, 2.0))
        dt, old, new = failover(cands, sig, timeout=60)
        code = old.wait_exit(15)
        if code is None:
            raise RuntimeError(f"{old.identity} did not exit after signal {sig}")
        times.append(dt)
        log(f"  {label} {i + 1}/{reps}: {old.identity} -> {new.identity} in {dt * 1000:.0f} ms (exit {code})")
        old.start()
    return times


def steady_window(ctx: Context, cands: list[Candidate], window: float) -> dict:
    leader = need(lambda: settled(cands), 30, "a settled leader")
    time.sleep(2.0)  # let start-up requests (first list/get, create, events) pass
    before = ApiSnapshot(ctx.fixture)
    own_before = {c.identity: c.requests() for c in cands}
    cpu_before = {c.identity: c.cpu_seconds() for c in cands}
    t0 = time.monotonic()
    time.sleep(window)
    watches = ApiSnapshot(ctx.fixture).watches  # open watches during the window
    own_after = {c.identity: c.requests() for c in cands}
    cpu_after = {c.identity: c.cpu_seconds() for c in cands}
    after = ApiSnapshot(ctx.fixture)
    elapsed = time.monotonic() - t0
    still = settled(cands)
    if still is not leader:
        log(f"  note: leader changed during the window ({leader.identity} -> {still and still.identity})")
    rss = {c.identity: c.rss_kib() for c in cands}
    api_elapsed = after.t - before.t
    by_verb = after.delta(before)
    own = {}
    for c in cands:
        a, b = own_after[c.identity], own_before[c.identity]
        own[c.identity] = {v: a.get(v, 0) - b.get(v, 0) for v in a if a.get(v, 0) - b.get(v, 0)}
    return {
        "leader": leader.identity,
        "elapsed": elapsed,
        "api_elapsed": api_elapsed,
        "api_by_verb": by_verb,
        "watches": watches,
        "own": own,
        "cpu": {k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        "rss": rss,
    }


def fmt_ms(xs: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in xs]
    return {"min": min(ms), "median": statistics.median(ms), "max": max(ms)}


def run_impl(ctx: Context, impl: str) -> dict:
    args = ctx.args
    lease = f"bench-{impl}-{os.getpid()}"
    base_watches = ApiSnapshot(ctx.fixture).watches
    cands = [Candidate(impl, i, lease, ctx) for i in range(1, CANDIDATES + 1)]
    log(f"{impl}: starting {CANDIDATES} candidates on Lease default/{lease}")
    try:
        for c in cands:
            c.start()
        need(lambda: settled(cands), 60, f"{impl}: one leader seen by all")
        log(f"{impl}: steady window {args.window:.0f}s")
        steady = steady_window(ctx, cands, args.window)
        steady["watches"] -= base_watches
        log(f"{impl}: graceful handover x{args.reps}")
        graceful = repeat_failovers(ctx, cands, signal.SIGTERM, args.reps, "graceful")
        log(f"{impl}: crash takeover x{args.crash_reps}")
        crash = repeat_failovers(ctx, cands, signal.SIGKILL, args.crash_reps, "crash")
    finally:
        for c in cands:
            c.stop()
    return summarize(impl, steady, graceful, crash)


def summarize(impl: str, steady: dict, graceful: list[float], crash: list[float]) -> dict:
    r: dict[str, float | str] = {}
    for k, v in fmt_ms(graceful).items():
        r[f"graceful_handover_ms_{k}"] = v
    for k, v in fmt_ms(crash).items():
        r[f"crash_takeover_ms_{k}"] = v
    r["graceful_reps"] = len(graceful)
    r["crash_reps"] = len(crash)
    secs = steady["api_elapsed"]
    total = sum(steady["api_by_verb"].values())
    r["window_s"] = steady["elapsed"]
    r["api_req_per_s_total"] = total / secs
    r["api_req_per_s_per_candidate"] = total / secs / CANDIDATES
    for verb, n in sorted(steady["api_by_verb"].items()):
        r[f"api_req_per_s_{verb}"] = n / secs
    r["api_watches_open"] = steady["watches"]
    leader = steady["leader"]
    followers = [k for k in steady["own"] if k != leader]
    own_rate = {k: sum(n for v, n in d.items() if v != "event") / steady["elapsed"]
                for k, d in steady["own"].items()}
    r["leader_req_per_s"] = own_rate[leader]
    r["follower_req_per_s"] = statistics.mean(own_rate[k] for k in followers)
    r["leader_req_verbs"] = " ".join(f"{v}:{n:g}" for v, n in sorted(steady["own"][leader].items())) or "-"
    r["follower_req_verbs"] = " ".join(
        f"{v}:{n:g}" for v, n in sorted(sum_dicts(steady["own"][k] for k in followers).items())) or "-"
    r["cpu_pct_leader"] = 100 * steady["cpu"][leader] / steady["elapsed"]
    r["cpu_pct_follower"] = 100 * statistics.mean(steady["cpu"][k] for k in followers) / steady["elapsed"]
    r["rss_mib_leader"] = steady["rss"][leader] / 1024
    r["rss_mib_follower"] = statistics.mean(steady["rss"][k] for k in followers) / 1024
    r["rss_mib_max"] = max(steady["rss"].values()) / 1024
    return r


def sum_dicts(ds) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in ds:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


# ---------------------------------------------------------------- output

ROWS = [
    ("graceful handover, min (ms)", "graceful_handover_ms_min", "{:.0f}"),
    ("graceful handover, median (ms)", "graceful_handover_ms_median", "{:.0f}"),
    ("graceful handover, max (ms)", "graceful_handover_ms_max", "{:.0f}"),
    ("crash takeover, min (ms)", "crash_takeover_ms_min", "{:.0f}"),
    ("crash takeover, median (ms)", "crash_takeover_ms_median", "{:.0f}"),
    ("crash takeover, max (ms)", "crash_takeover_ms_max", "{:.0f}"),
    ("Lease requests/s, all 3 (apiserver)", "api_req_per_s_total", "{:.2f}"),
    ("Lease requests/s per candidate", "api_req_per_s_per_candidate", "{:.2f}"),
    ("  leader, own counter (req/s)", "leader_req_per_s", "{:.2f}"),
    ("  one follower, own counter (req/s)", "follower_req_per_s", "{:.2f}"),
    ("  leader's requests in window", "leader_req_verbs", "{}"),
    ("  2 followers' requests in window", "follower_req_verbs", "{}"),
    ("open Lease watches (all 3)", "api_watches_open", "{:.0f}"),
    ("CPU, leader (% of a core)", "cpu_pct_leader", "{:.2f}"),
    ("CPU, one follower (% of a core)", "cpu_pct_follower", "{:.2f}"),
    ("RSS, leader (MiB)", "rss_mib_leader", "{:.1f}"),
    ("RSS, one follower (MiB)", "rss_mib_follower", "{:.1f}"),
]


def print_results(results: dict[str, dict], meta: dict) -> None:
    impls = list(results)
    verb_keys = sorted({k for r in results.values() for k in r if k.startswith("api_req_per_s_")
                        and k not in ("api_req_per_s_total", "api_req_per_s_per_candidate")})
    rows = list(ROWS)
    at = [i for i, row in enumerate(rows) if row[1] == "api_req_per_s_per_candidate"][0] + 1
    for k in verb_keys:
        rows.insert(at, (f"  {k.removeprefix('api_req_per_s_')} (apiserver, req/s)", k, "{:.2f}"))
        at += 1
    cells = {impl: [fmt(results[impl].get(key), f) for _, key, f in rows] for impl in impls}
    print_table(f"Failover benchmark ({meta['mode']} mode; timings {meta['timings']}; "
                f"{meta['reps']} graceful + {meta['crash_reps']} crash reps; {meta['window']:.0f}s steady window)",
                meta, [r[0] for r in rows], cells)
    for impl in impls:
        for k, v in results[impl].items():
            if isinstance(v, str):
                continue
            print(f"BENCH {impl} {k}={v:.3f}" if isinstance(v, float) else f"BENCH {impl} {k}={v}")
    print(f"BENCH run wall_s={meta['wall_s']:.1f}")


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few reps, short window (CI: < 2 min for both)")
    ap.add_argument("--reps", type=int, help="graceful handover repetitions [10; quick 3]")
    ap.add_argument("--crash-reps", type=int, help="crash takeover repetitions [10; quick 2]")
    ap.add_argument("--window", type=float, help="steady window in seconds [30; quick 10]")
    add_common_args(ap)
    args = ap.parse_args()
    args.reps = args.reps or (3 if args.quick else 10)
    args.crash_reps = args.crash_reps or (2 if args.quick else 10)
    args.window = args.window or (10.0 if args.quick else 30.0)
    impls = list(IMPLS) if args.impl == "both" else [args.impl]

    missing = missing_binaries(args, impls)
    if missing:
        print(f"failover.py: missing {missing[0]} (run bench/run.sh, which builds it)", file=sys.stderr)
        return 2

    started = time.monotonic()
    meta = {"mode": "quick" if args.quick else "default", **run_meta(args)}
    results = with_fixture(args, lambda ctx: {impl: run_impl(ctx, impl) for impl in impls})
    if results is None:
        return 1
    meta["wall_s"] = time.monotonic() - started
    print_results(results, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
