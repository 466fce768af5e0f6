"""The verdict of a chaos run: checks recorded in a Results, the failover table, the CHAOS line."""
import json
import time

import verdict as v

# A SIGSTOPped leader steps down once it runs again: the time it takes, after SIGCONT, is
# not counted as leading on (max_resume_lag reports it).
RESUME_ALLOWANCE = 0.05


def judge(results, args, fleet, plan, frozen, sampler, watch, children, clock_offset, wall):
    terms = {c.identity: c.terms() for c in fleet.candidates}
    impl = {c.identity: c.impl for c in fleet.candidates}
    act = v.acting(terms, frozen, RESUME_ALLOWANCE)
    lags = v.resume_lags(terms, frozen)
    end = time.time()
    v.measure_faults(plan, act, terms, end)
    bound = sum(args.timings) + args.slack
    dump(fleet.work / "record.json", terms, frozen, plan, watch, children, sampler)

    over = v.overlaps(act)
    ours = [o for o in over if impl[o[0]] == "lease-elector"]
    theirs = [o for o in over if impl[o[0]] != "lease-elector"]
    results.check(not ours, "no lease-elector leads on while another candidate leads (own term logs, "
                  f"SIGSTOPped time + {RESUME_ALLOWANCE * 1000:g} ms after SIGCONT excluded)", overlap_lines(over, impl))
    results.check(not theirs or not args.strict_client_go,
                  "no client-go candidate leads on while another candidate leads"
                  + ("" if args.strict_client_go else " (reported only: CHAOS_STRICT_CLIENT_GO=0)"),
                  overlap_lines(theirs, impl))
    if theirs and not args.strict_client_go:
        results.info(overlap_lines(theirs, impl))
    kids = v.child_overlaps(children.lives)
    known = [k for k in kids if parent_was_frozen(k, frozen, clock_offset)]
    strict = args.strict_children
    results.check(not kids or not strict, "no two run-mode children alive at once"
                  + ("" if strict else " (reported only: CHAOS_STRICT_CHILDREN=0)"),
                  "\n".join(f"{a} and {b} both alive for {s * 1000:.1f} ms" for a, b, s, _ in kids))
    if kids and not strict:
        results.info(f"{len(kids)} child overlap(s), {len(known)} after the parent was SIGSTOPped (defect 2)")
    sampled = v.sampler_overlaps(sampler.samples)
    sampled_ours = [o for o in sampled if impl[o[0]] == "lease-elector"]
    results.check(not sampled_ours, "no lease-elector answers is_leader on /leader while another candidate "
                  "already did (intersecting runs of answers)", overlap_lines(sampled, impl))
    unlogged = v.unlogged_leader_samples(sampler.samples, {c.identity: c.reported_terms() for c in fleet.candidates})
    results.check(not unlogged, "every is_leader answer lies in a term the candidate logged",
                  "\n".join(f"{i}: sent {stamp(s)} received {stamp(r)}" for i, s, r in unlogged))
    bad = v.transition_faults(watch.history)
    results.check(bool(watch.history) and not bad,
                  f"leaseTransitions monotone over {len(watch.history)} watched Lease versions", "\n".join(bad))
    rec = [f.notes.get("recovery_s") for f in plan]
    late = [(i, f) for i, (f, r) in enumerate(zip(plan, rec), 1) if r is None or r > bound]
    results.check(not late, f"a leader within {bound:g} s (lease+renew+retry+{args.slack:g} slack) after each fault heals",
                  "\n".join(f"fault {i} {f.describe()} on {f.target}: recovery {fmt(f.notes.get('recovery_s'))}"
                            for i, f in late))
    print_table(plan)
    max_rec = max((r for r in rec if r is not None), default=0.0)
    fo = [f.notes["failover_s"] for f in plan if f.notes.get("failover_s") is not None]
    print(f"CHAOS seed={args.seed} faults={len(plan)} overlaps={len(ours)} child_overlaps={len(kids)} "
          f"child_overlaps_known={len(known)} client_go_overlaps={len(theirs)} sampler_overlaps={len(sampled_ours)} "
          f"max_resume_lag={max(lags, default=0.0) * 1000:.1f}ms transition_errors={len(bad)} "
          f"lease_versions={len(watch.history)} max_recovery={max_rec:.3f}s bound={bound:g}s "
          f"late={len(late)} max_failover={max(fo, default=0.0):.3f}s terms={sum(map(len, terms.values()))} "
          f"children={len(children.lives)} strict_children={int(strict)} wall={wall:.0f}s", flush=True)


def overlap_lines(over, impl):
    return "\n".join(f"{a} ({impl[a]}) led on for {s * 1000:.1f} ms after {b} ({impl[b]}) began leading at "
                     f"{stamp(at)}" for a, b, s, at in over)


def dump(path, terms, frozen, plan, watch, children, sampler):
    """Everything the verdict is made from, for a look afterwards (CHAOS_KEEP=1)."""
    record = {"terms": terms, "frozen": frozen, "lease_history": watch.history, "watch_errors": watch.errors,
              "children": children.lives, "samples": sampler.samples,
              "faults": [{"kind": f.kind, "aim": f.aim, "target": f.target, "start": f.start, "healed": f.healed,
                          "duration": f.duration, "delay": f.delay, **f.notes} for f in plan]}
    path.write_text(json.dumps(record, indent=1, default=str))


def parent_was_frozen(overlap, frozen, clock_offset):
    """Whether the earlier child's lease-elector was SIGSTOPped when the overlap began."""
    parent = overlap[0].split("/")[0]
    at = overlap[3] + clock_offset
    return any(s - 1.0 <= at <= e + 1.0 for s, e in frozen.get(parent, []))


def print_table(plan):
    print()
    print("failover per fault kind (s): failover = fault start -> a new term starts (faults on the leader);")
    print("recovery = fault healed -> a leader acts")
    head = ("kind", "n", "on leader", "failovers", "failover p50", "max", "recovery p50", "max")
    print("  ".join(f"{h:>12}" for h in head))
    for row in v.percentile_table(plan):
        print("  ".join(f"{fmt(c):>12}" for c in row))
    print()


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def stamp(t):
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"
