#!/usr/bin/env python3
"""Scale benchmark: N candidates on one Lease, and many Leases, lease-elector side by
side with client-go's candidate, against one real API server (tests/k8s-fixture).

For each N (default 10 and 100) and each implementation:

  * cold start: all N started at once on a Lease that does not exist; time from the
    first spawn until a Lease watch (this script's own) shows a holder. At the end,
    the same on the released Lease (all stopped with SIGTERM, the leader released);
  * steady window: Lease requests/s at the API server (apiserver_request_total minus
    apiserver_selfrequest_total, resource="leases"), open Lease watches
    (apiserver_longrunning_requests), the API server's RSS, CPU (% of a core) and RSS
    per candidate (median over the N processes; RSS, its private part and PSS);
  * graceful handover (SIGTERM the leader, which releases) and crash takeover (SIGKILL):
    from the signal until the watch shows the new holder's record, p50/p99 over the
    reps; for the crash also the lag after the followers' local expiry (the last record
    of the old leader seen + lease_duration); Lease requests per handover: the API
    server's delta from just before the signal to 0.5 s after the new holder, by verb
    (WATCH excluded: the stopped candidate's watch ends then), also net of the steady
    rate (client-go polls all the time), and the sum of the candidates' own request
    counters over the same span.

Then `--leases L` Leases x 3 candidates (default 50): API server watches, RSS and
Lease requests/s, CPU and RSS per candidate.

The timestamps come from this script's watch on the Lease, i.e. when the new holder's
write reached the API server and came back, not from each candidate's /leader.
Numbers, not assertions: exits non-zero only when it cannot measure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    IMPLS, ApiSnapshot, Candidate, LeaseWatch, add_common_args, apiserver_rss_kib, fmt, log, print_table, run_meta,
    missing_binaries, need, settled, with_fixture,
)

SETTLE_AFTER = 0.5  # seconds after the new holder before the request counters are read


def seconds(duration: str) -> float:
    return float(duration.removesuffix("s"))


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 20 reps is the maximum)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def start_all(cands: list[Candidate]) -> None:
    for c in cands:
        c.start()


def own_requests(cands: list[Candidate]) -> float:
    """Sum of the candidates' own Lease request counters (events excluded)."""
    return sum(n for c in cands if c.alive() for v, n in c.requests().items() if v != "event")


def cold_start(ctx, cands: list[Candidate], watch: LeaseWatch) -> float:
    """Starts every candidate; seconds from the first spawn until a holder is seen."""
    t0 = time.monotonic()
    start_all(cands)
    got = watch.wait_holder(lambda h: h != "", t0, 120)
    if got is None:
        raise RuntimeError("no holder within 120 s of a cold start")
    return got[0] - t0


def steady(ctx, cands: list[Candidate], window: float, base_watches: float) -> dict:
    time.sleep(2.0)  # start-up requests pass
    cands = [c for c in cands if c.alive()]
    before = ApiSnapshot(ctx.fixture)
    cpu0 = [c.cpu_seconds() for c in cands]
    time.sleep(window)
    cpu1 = [c.cpu_seconds() for c in cands]
    after = ApiSnapshot(ctx.fixture)
    secs = after.t - before.t
    total = sum(after.delta(before).values())
    return {
        "steady_req_per_s": total / secs,
        "steady_req_per_s_by_verb": after.delta(before),
        "api_watches_open": after.watches - base_watches,
        "apiserver_rss_mib": apiserver_rss_kib(ctx.fixture) / 1024,
        "cpu_pct_per_candidate_median": 100 * statistics.median(b - a for a, b in zip(cpu0, cpu1)) / secs,
        "cpu_pct_all": 100 * sum(b - a for a, b in zip(cpu0, cpu1)) / secs,
        **memory(cands),
    }


def memory(cands: list[Candidate]) -> dict:
    mem = [c.memory_kib() for c in cands]
    return {
        "rss_mib_per_candidate_median": statistics.median(m["rss"] for m in mem) / 1024,
        "rss_mib_per_candidate_max": max(m["rss"] for m in mem) / 1024,
        "anon_mib_per_candidate_median": statistics.median(m["anonymous"] for m in mem) / 1024,
        "pss_mib_per_candidate_median": statistics.median(m["pss"] for m in mem) / 1024,
    }


def one_handover(ctx, cands, watch, sig: int, steady_rate: float) -> dict:
    old = need(lambda: settled(cands), 60, "a settled leader")
    time.sleep(random.uniform(1.0, 2.0))  # a random phase of the renew / poll cycles
    others = [c for c in cands if c is not old]
    own0 = own_requests(others)
    before = ApiSnapshot(ctx.fixture)
    t0 = time.monotonic()
    old.signal(sig)
    got = watch.wait_holder(lambda h: h not in ("", old.identity), t0, 60)
    if got is None:
        raise RuntimeError(f"no new holder within 60 s after signal {sig}")
    t_new, new = got
    time.sleep(SETTLE_AFTER)
    after = ApiSnapshot(ctx.fixture)
    own1 = own_requests(others)
    if old.wait_exit(15) is None:
        raise RuntimeError(f"{old.identity} did not exit after signal {sig}")
    by_verb = {v: n for v, n in after.delta(before).items() if v != "WATCH"}
    total = sum(by_verb.values())
    r = {"ms": (t_new - t0) * 1000, "requests": total, "by_verb": by_verb, "own": own1 - own0,
         "excess": total - steady_rate * (after.t - before.t), "new": new, "old": old.identity}
    if sig == signal.SIGKILL:
        last = watch.last_write_by(old.identity, t0)
        r["after_expiry_ms"] = (t_new - (last + seconds(ctx.args.lease_duration))) * 1000 if last else None
    old.start()
    return r


def handovers(ctx, cands, watch, sig: int, reps: int, steady_rate: float, label: str) -> list[dict]:
    out = []
    for i in range(reps):
        r = one_handover(ctx, cands, watch, sig, steady_rate)
        extra = f", {r['after_expiry_ms']:.0f} ms after local expiry" if r.get("after_expiry_ms") is not None else ""
        log(f"  {label} {i + 1}/{reps}: {r['old']} -> {r['new']} in {r['ms']:.0f} ms{extra}; "
            f"{r['requests']:.0f} Lease requests {r['by_verb']} (own counters {r['own']:.0f})")
        out.append(r)
    return out


def summarize_handovers(prefix: str, rs: list[dict]) -> dict:
    out = {}
    ms = [r["ms"] for r in rs]
    out[f"{prefix}_ms_p50"], out[f"{prefix}_ms_p99"] = statistics.median(ms), pct(ms, 99)
    lags = [r["after_expiry_ms"] for r in rs if r.get("after_expiry_ms") is not None]
    if lags:
        out[f"{prefix}_after_expiry_ms_p50"], out[f"{prefix}_after_expiry_ms_p99"] = statistics.median(lags), pct(lags, 99)
    out[f"{prefix}_requests_median"] = statistics.median(r["requests"] for r in rs)
    out[f"{prefix}_requests_max"] = max(r["requests"] for r in rs)
    out[f"{prefix}_requests_net_median"] = statistics.median(r["excess"] for r in rs)
    out[f"{prefix}_own_requests_median"] = statistics.median(r["own"] for r in rs)
    out[f"{prefix}_reps"] = len(rs)
    return out


def one_lease(ctx, impl: str, n: int) -> dict:
    args = ctx.args
    lease = f"scale-{impl}-{n}-{os.getpid()}"
    watch = LeaseWatch(ctx.fixture, "default", lease)
    need(lambda: watch.resp is not None, 10, "the benchmark's own Lease watch")
    base_watches = ApiSnapshot(ctx.fixture).watches
    cands = [Candidate(impl, i, lease, ctx) for i in range(1, n + 1)]
    log(f"{impl} N={n}: cold start on default/{lease}")
    t_begin = time.monotonic()
    r: dict = {}
    try:
        r["cold_start_ms"] = cold_start(ctx, cands, watch) * 1000
        need(lambda: settled(cands), 120, f"{impl}: one leader seen by all {n}")
        log(f"{impl} N={n}: steady window {args.window:.0f}s")
        r.update(steady(ctx, cands, args.window, base_watches))
        rate = r["steady_req_per_s"]
        log(f"{impl} N={n}: graceful handover x{args.reps}")
        r.update(summarize_handovers("graceful", handovers(ctx, cands, watch, signal.SIGTERM, args.reps, rate, "graceful")))
        log(f"{impl} N={n}: crash takeover x{args.crash_reps}")
        r.update(summarize_handovers("crash", handovers(ctx, cands, watch, signal.SIGKILL, args.crash_reps, rate, "crash")))
        need(lambda: settled(cands), 60, "a settled leader")
        for c in cands:
            c.signal(signal.SIGTERM)
        for c in cands:
            c.wait_exit(15)
        need(lambda: watch.holder() == "", 10, "the released Lease")
        r["cold_start_released_ms"] = cold_start(ctx, cands, watch) * 1000
    finally:
        for c in cands:
            c.stop()
        watch.stop()
    r["wall_s"] = time.monotonic() - t_begin
    log(f"{impl} N={n}: done in {r['wall_s']:.0f}s")
    return r


def many_leases(ctx, impl: str, leases: int) -> dict:
    args = ctx.args
    base = ApiSnapshot(ctx.fixture)
    base_rss = apiserver_rss_kib(ctx.fixture) / 1024
    names = [f"many-{impl}-{j}-{os.getpid()}" for j in range(leases)]
    cands = [Candidate(impl, i, name, ctx, tag=f"{j}-") for j, name in enumerate(names) for i in range(1, 4)]
    log(f"{impl}: {leases} Leases x 3 candidates")
    t_begin = time.monotonic()
    try:
        start_all(cands)
        need(lambda: all_held(ctx, set(names)), 120, f"a holder on each of the {leases} Leases")
        r = steady(ctx, cands, args.window, base.watches)
    finally:
        for c in cands:
            c.stop()
    r["apiserver_rss_mib_before"] = base_rss
    r["wall_s"] = time.monotonic() - t_begin
    log(f"{impl} {leases}x3: done in {r['wall_s']:.0f}s")
    return r


def all_held(ctx, names: set[str]) -> bool:
    items = json.loads(ctx.fixture.get("/apis/coordination.k8s.io/v1/namespaces/default/leases"))["items"]
    held = {i["metadata"]["name"] for i in items if (i.get("spec") or {}).get("holderIdentity")}
    return names <= held


# ---------------------------------------------------------------- output

ROWS = [
    ("cold start to first leader (ms)", "cold_start_ms", "{:.0f}"),
    ("cold start, released Lease (ms)", "cold_start_released_ms", "{:.0f}"),
    ("steady Lease requests/s (apiserver)", "steady_req_per_s", "{:.2f}"),
    ("graceful handover p50 / p99 (ms)", ("graceful_ms_p50", "graceful_ms_p99"), "{:.0f}"),
    ("  Lease requests / handover, median / max", ("graceful_requests_median", "graceful_requests_max"), "{:.0f}"),
    ("  net of steady rate, median", "graceful_requests_net_median", "{:.0f}"),
    ("  candidates' own counters, median", "graceful_own_requests_median", "{:.0f}"),
    ("crash takeover p50 / p99 (ms)", ("crash_ms_p50", "crash_ms_p99"), "{:.0f}"),
    ("  after local expiry p50 / p99 (ms)", ("crash_after_expiry_ms_p50", "crash_after_expiry_ms_p99"), "{:.0f}"),
    ("  Lease requests / takeover, median / max", ("crash_requests_median", "crash_requests_max"), "{:.0f}"),
    ("open Lease watches", "api_watches_open", "{:.0f}"),
    ("API server RSS (MiB)", "apiserver_rss_mib", "{:.0f}"),
    ("CPU per candidate, median (% core)", "cpu_pct_per_candidate_median", "{:.2f}"),
    ("CPU all candidates (% core)", "cpu_pct_all", "{:.1f}"),
    ("RSS per candidate, median / max (MiB)", ("rss_mib_per_candidate_median", "rss_mib_per_candidate_max"), "{:.1f}"),
    ("  of it private (anonymous), median (MiB)", "anon_mib_per_candidate_median", "{:.1f}"),
    ("  PSS (shared pages split), median (MiB)", "pss_mib_per_candidate_median", "{:.1f}"),
    ("wall time of this column (s)", "wall_s", "{:.0f}"),
]


def cell(r: dict, key, f: str) -> str:
    if isinstance(key, tuple):
        return " / ".join(fmt(r.get(k), f) for k in key)
    return fmt(r.get(key), f)


def print_results(results: dict[str, dict], meta: dict) -> None:
    cols = list(results)
    cells = {c: [cell(results[c], key, f) for _, key, f in ROWS] for c in cols}
    print_table(f"Scale benchmark (timings {meta['timings']}; {meta['reps']} graceful + {meta['crash_reps']} crash "
                f"reps per N; {meta['window']:.0f}s steady window)", meta, [r[0] for r in ROWS], cells)
    for c in cols:
        impl, _, at = c.partition(" ")
        for k, v in results[c].items():
            if isinstance(v, (int, float)):
                print(f"BENCH {impl}@{at} {k}={v:.3f}" if isinstance(v, float) else f"BENCH {impl}@{at} {k}={v}")
    print(f"BENCH run wall_s={meta['wall_s']:.1f}")


# ---------------------------------------------------------------- main


def measure(ctx, impls: list[str], ns: list[int], leases: int) -> dict[str, dict]:
    """Every column; one that cannot be measured is logged and left out."""
    runs = [(f"{impl} n{n}", one_lease, impl, n) for n in ns for impl in impls]
    if leases:
        runs += [(f"{impl} {leases}x3", many_leases, impl, leases) for impl in impls]
    results = {}
    for name, run, impl, n in runs:
        try:
            results[name] = run(ctx, impl, n)
        except (RuntimeError, OSError, ValueError) as e:
            log(f"{name}: could not measure: {e}")
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="10,100", help="candidate counts on one Lease, comma-separated [10,100]")
    ap.add_argument("--reps", type=int, default=20, help="graceful handovers per N [20]")
    ap.add_argument("--crash-reps", type=int, default=20, help="crash takeovers per N [20]")
    ap.add_argument("--window", type=float, default=20.0, help="steady window in seconds [20]")
    ap.add_argument("--leases", type=int, default=50, help="Leases x 3 candidates for the footprint; 0: skip [50]")
    add_common_args(ap)
    args = ap.parse_args()
    impls = list(IMPLS) if args.impl == "both" else [args.impl]
    ns = [int(x) for x in args.n.split(",") if x]
    missing = missing_binaries(args, impls)
    if missing:
        print(f"scale.py: missing {missing[0]} (run bench/run.sh --scale, which builds it)", file=sys.stderr)
        return 2
    started = time.monotonic()
    meta = run_meta(args)
    results = with_fixture(args, lambda ctx: measure(ctx, impls, ns, args.leases))
    if results is None:
        return 1
    meta["wall_s"] = time.monotonic() - started
    print_results(results, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
