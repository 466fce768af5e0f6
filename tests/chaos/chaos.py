#!/usr/bin/env python3
"""Randomized chaos on the real API server: a mixed fleet on one Lease under faults.

Fleet: lease-elector daemons le-1..N (the last --run-mode of them as `lease-elector run --
tests/chaos/child.py`), client-go candidates cg-1..M, each talking to the API server
(tests/k8s-fixture) through its own TCP proxy (tests/toolkit/proxy.py). Faults
(tests/chaos/faults.py) are drawn from a seed: CHAOS_SEED replays a schedule,
CHAOS_FAULTS sets how many (default 50). See docs/chaos.md.

Checks, after the faults, from what was recorded meanwhile:
  overlaps        two candidates' own term logs share an instant (time a candidate spent
                  SIGSTOPped is not acting)
  child_overlaps  two run-mode children alive at once (CHAOS_STRICT_CHILDREN=0 reports
                  them without failing)
  sampler         two candidates' runs of is_leader answers on /leader intersect; every
                  is_leader answer lies in a logged term
  transitions     the Lease history (a watch) never lowers leaseTransitions and raises
                  it on every new holder
  recovery        after each fault heals, a leader acts within lease_duration +
                  renew_deadline + retry_period + --slack
Prints one line `CHAOS faults=N overlaps=0 child_overlaps=0 max_recovery=...s ...` and a
table of failover times per fault kind; exits 1 on a violation, 2 when it cannot run.
"""
import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from toolkit import Processes, Results, wait_for  # noqa: E402
from toolkit.procs import Interrupted  # noqa: E402

import faults as faultlib  # noqa: E402
import report  # noqa: E402
from fleet import Fleet  # noqa: E402
from observe import Children, LeaseWatch, Sampler  # noqa: E402

REPO = HERE.parents[1]


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args():
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=int(env("CHAOS_SEED") or random.SystemRandom().randrange(1 << 31)))
    ap.add_argument("--faults", type=int, default=int(env("CHAOS_FAULTS") or 50))
    ap.add_argument("--lease-electors", type=int, default=3)
    ap.add_argument("--run-mode", type=int, default=2, help="how many of the lease-electors run a child")
    ap.add_argument("--client-go", type=int, default=2)
    ap.add_argument("--timings", type=float, nargs=3, default=(3.0, 2.0, 0.5),
                    metavar=("LEASE", "RENEW", "RETRY"), help="seconds [3 2 0.5]")
    ap.add_argument("--grace", type=float, default=0.5, help="run mode grace period, seconds [0.5]")
    ap.add_argument("--slack", type=float, default=2.0, help="recovery bound slack, seconds [2]")
    ap.add_argument("--strict-children", action="store_true", default=env("CHAOS_STRICT_CHILDREN", "1") == "1")
    ap.add_argument("--strict-client-go", action="store_true", default=env("CHAOS_STRICT_CLIENT_GO", "0") == "1")
    ap.add_argument("--lease-elector-bin", default=str(REPO / "target/debug/lease-elector"))
    ap.add_argument("--fixture-bin", default=env("K8S_FIXTURE_BIN", str(REPO / "target/k8s-fixture/bin")))
    ap.add_argument("--keep", action="store_true", default=env("CHAOS_KEEP") == "1", help="keep the logs")
    return ap.parse_args()


def missing_binaries(args):
    need = [Path(args.lease_elector_bin)] + [Path(args.fixture_bin) / n for n in
                                              ("k8s-fixture", "etcd", "kube-apiserver", "client-go-candidate")]
    return [str(p) for p in need if not os.access(p, os.X_OK)]


def await_leader(sampler, timeout, since=0.0):
    """The identities leading now (by answers to requests sent after `since`), once
    someone leads; [] after `timeout`."""
    return wait_for(lambda: sampler.leaders_now(since=since), timeout, 0.02) or []


def run_faults(args, fleet, sampler, injector, plan):
    bound = sum(args.timings) + args.slack
    healed = 0.0
    for i, fault in enumerate(plan, 1):
        if not await_leader(sampler, bound + 10, since=healed):
            fault.notes["no_leader_before"] = True
            log(f"no leader before fault {i}")
        time.sleep(fault.pause)
        injector.apply(fault, sampler.leaders_now())
        log(f"fault {i}/{len(plan)}: {fault.kind} on {fault.target}"
            f"{' (leader)' if fault.notes['was_leader'] else ''}, {fault.healed - fault.start:.2f}s")
        healed = fault.healed
    await_leader(sampler, bound + 10, since=healed)
    time.sleep(1.0)


def main():
    args = parse_args()
    missing = missing_binaries(args)
    if missing:
        print(f"chaos.py: missing {', '.join(missing)} (tests/chaos/run.sh builds them)", file=sys.stderr)
        return 2
    plan = faultlib.schedule(args.seed, args.faults, args.lease_electors + args.client_go, args.timings[0])
    log(f"seed {args.seed} (CHAOS_SEED={args.seed} replays this schedule): {len(plan)} faults")
    Processes.raise_on_signals()
    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="lease-elector-chaos-"))
    fleet = Fleet(args, work, procs)
    started = time.monotonic()
    ok = False
    try:
        ok = run(args, fleet, plan, started)
    except Interrupted as e:
        log(f"interrupted ({e})")
    except RuntimeError as e:
        log(f"error: {e}")
    finally:
        procs.stop_all(20)
        for p in fleet.proxies.values():
            p.close()
        if args.keep or not ok:
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def run(args, fleet, plan, started):
    """Runs the fleet through `plan`; True when every check passed."""
    fleet.start_apiserver()
    fleet.build()
    watch = LeaseWatch(fleet.fixture, fleet.lease)
    children = Children(fleet.children_log)
    sampler = Sampler(fleet.candidates)
    injector = faultlib.Injector(fleet, log)
    for part in (watch, children, sampler):
        part.start()
    clock_offset = time.time() - time.monotonic()
    fleet.start()
    if not await_leader(sampler, 60):
        raise RuntimeError("no leader within 60 s of the start")
    log(f"fleet up on Lease default/{fleet.lease}: {', '.join(c.identity for c in fleet.candidates)}")
    run_faults(args, fleet, sampler, injector, plan)
    sampler.stop()
    fleet.stop()
    children.stop()
    watch.stop()
    record = report.Record.of(fleet, plan, injector.frozen, sampler, watch, children, clock_offset)
    record.save(fleet.work / "record.json")
    results = Results("chaos")
    report.judge(results, args, record, wall=time.monotonic() - started)
    return results.summary() == 0


if __name__ == "__main__":
    sys.exit(main())
