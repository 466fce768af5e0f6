"""The verdict of a chaos run: checks recorded in a Results, the failover table, the CHAOS line."""
import json
import time
from dataclasses import asdict, dataclass

import verdict as v

# A SIGSTOPped leader steps down once it runs again: the time it takes after SIGCONT (the
# scheduler's, on a busy machine) is not counted as leading on; max_resume_lag reports it.
RESUME_ALLOWANCE = 0.1


@dataclass
class Record:
    """Everything a run recorded, as the checks read it (wall clock unless said)."""
    terms: dict  # identity -> [(start, end)]: the terms each candidate logged (its work)
    reported: dict  # identity -> [(start, end)]: the terms as its /leader reports them
    impl: dict  # identity -> "lease-elector" | "client-go"
    frozen: dict  # identity -> [(SIGSTOP, SIGCONT)]
    samples: dict  # identity -> [(sent, received, is_leader)]
    history: list  # [(time, type, holder, leaseTransitions, resourceVersion)]
    lives: dict  # child pid -> {"identity", "start", "exit"} (monotonic)
    clock_offset: float  # wall clock minus monotonic clock
    faults: list

    @classmethod
    def of(cls, fleet, plan, frozen, sampler, watch, children, clock_offset):
        cands = fleet.candidates
        return cls({c.identity: c.terms() for c in cands}, {c.identity: c.reported_terms() for c in cands},
                   {c.identity: c.impl for c in cands}, frozen, sampler.samples, watch.history,
                   children.lives, clock_offset, plan)

    def save(self, path):
        """Written next to the logs, for a look afterwards (CHAOS_KEEP=1)."""
        record = {**asdict(self), "faults": [{**vars(f)} for f in self.faults]}
        path.write_text(json.dumps(record, indent=1, default=str))


def judge(results, args, record, wall):
    """Records every check in `results`; prints the table and the CHAOS line."""
    act = v.acting(record.terms, record.frozen, RESUME_ALLOWANCE)
    v.measure_faults(record.faults, act, record.terms, time.time())
    line = {"faults": len(record.faults)}
    for check in (check_terms, check_children, check_recovery, check_sampler, check_history):
        line.update(check(results, args, record, act))
    print_table(record.faults)
    line.update(seed=args.seed, terms=sum(map(len, record.terms.values())), children=len(record.lives),
                strict_children=int(args.strict_children), wall=f"{wall:.0f}s")
    first = ("faults", "overlaps", "child_overlaps", "max_recovery")
    keys = list(first) + [k for k in line if k not in first]
    print("CHAOS " + " ".join(f"{k}={line[k]}" for k in keys), flush=True)


def check_terms(results, args, record, act):
    ours, cleared, theirs = split_overlaps(v.overlaps(act), record)
    resumed = [o for o in ours if beyond_validity(o, record, args.timings[0])]
    ours = [o for o in ours if o not in resumed]
    results.check(not ours, "no lease-elector leads on while another candidate leads (own term logs; "
                  f"SIGSTOPped time and {RESUME_ALLOWANCE * 1000:g} ms after SIGCONT excluded)",
                  overlap_lines(ours, record.impl))
    if resumed:
        note(results, "a lease-elector logged its step-down after its term's validity had run out "
             "(0.9 x lease_duration after its last write), with no write since:",
             overlap_lines(resumed, record.impl))
    if cleared:
        note(results, "a lease-elector's live record released by another candidate (client-go's release), "
             "then taken:", overlap_lines(cleared, record.impl))
    strict = args.strict_client_go
    results.check(not theirs or not strict, "no client-go candidate leads on while another candidate leads"
                  + ("" if strict else " (reported only: CHAOS_STRICT_CLIENT_GO=0)"), overlap_lines(theirs, record.impl))
    if theirs and not strict:
        note(results, "client-go candidates that led on:", overlap_lines(theirs, record.impl))
    lags = v.resume_lags(record.terms, record.frozen)

    def worst(kind):
        return max((x for i, xs in lags.items() if record.impl[i] == kind for x in xs), default=0.0)
    return {"overlaps": len(ours), "beyond_validity": len(resumed), "client_go_overlaps": len(theirs),
            "cleared_by_client_go": len(cleared),
            "max_resume_lag": f"{worst('lease-elector') * 1000:.1f}ms",
            "client_go_max_resume_lag": f"{worst('client-go') * 1000:.0f}ms"}


def split_overlaps(over, record):
    """(lease-elector led on, lease-elector's live record cleared by a client-go release,
    a client-go candidate led on). Cleared: the Lease went from the lease-elector to ""
    to the next leader while the lease-elector led, and a client-go candidate ended a
    term (client-go logs "leader lost" right after its release) in the 5 s before."""
    def client_go_released_before(at):
        return any(record.impl[i] == "client-go" and e is not None and at - 5.0 <= e <= at + 0.1
                   for i, terms in record.reported.items() for _s, e in terms)

    def cleared(o):
        return v.cleared_under(record.history, o[0], o[1], o[3]) and client_go_released_before(o[3])
    ours = [o for o in over if record.impl[o[0]] == "lease-elector"]
    return ([o for o in ours if not cleared(o)], [o for o in ours if cleared(o)],
            [o for o in over if record.impl[o[0]] != "lease-elector"])


# A Leadership is valid for this share of lease_duration after the send of its last
# successful write (Leadership::valid_until); run mode kills the child by then.
VALIDITY_SHARE = 0.9


def beyond_validity(o, record, lease_duration):
    """Whether overlap `o` lies wholly after the validity of the term that led on: the
    last write of that candidate the watch saw before the overlap's end, plus 0.9 x
    lease_duration, came before the overlap began. The watch sees a write after it was
    sent, so this validity ends late, never early. What a term logs past its validity
    (a resumed process that has not yet run its timers) is not leading: nothing in it
    may act, and run mode's child is judged by check_children."""
    a, _b, secs, at = o
    writes = [h[0] for h in record.history if h[2] == a and h[0] <= at + secs]
    return bool(writes) and max(writes) + VALIDITY_SHARE * lease_duration <= at


def check_children(results, args, record, _act):
    kids = v.child_overlaps(record.lives)
    known = [k for k in kids if parent_was_frozen(k, record.frozen, record.clock_offset)]
    strict = args.strict_children
    results.check(not kids or not strict, "no two run-mode children alive at once"
                  + ("" if strict else " (reported only: CHAOS_STRICT_CHILDREN=0)"),
                  "\n".join(f"{a} and {b} both alive for {s * 1000:.1f} ms" for a, b, s, _ in kids))
    if kids and not strict:
        results.info(f"{len(kids)} child overlap(s), {len(known)} began while the earlier child's parent "
                     "was SIGSTOPped (defect 2)")
    return {"child_overlaps": len(kids), "child_overlaps_known": len(known)}


def check_recovery(results, args, record, _act):
    bound = sum(args.timings) + args.slack
    late = [(i, f) for i, f in enumerate(record.faults, 1)
            if f.notes.get("recovery_s") is None or f.notes["recovery_s"] > bound]
    results.check(not late, f"a leader within {bound:g} s (lease + renew + retry + {args.slack:g} s slack) "
                  "after each fault heals",
                  "\n".join(f"fault {i} {f.describe()} on {f.target}: recovery {fmt(f.notes.get('recovery_s'))}"
                            for i, f in late))
    rec = [f.notes["recovery_s"] for f in record.faults if f.notes.get("recovery_s") is not None]
    fo = [f.notes["failover_s"] for f in record.faults if f.notes.get("failover_s") is not None]
    return {"max_recovery": f"{max(rec, default=0.0):.3f}s", "bound": f"{bound:g}s", "late": len(late),
            "max_failover": f"{max(fo, default=0.0):.3f}s"}


def check_sampler(results, _args, record, _act):
    sampled, _cleared, _theirs = split_overlaps(v.sampler_overlaps(record.samples, record.reported), record)
    results.check(not sampled, "no lease-elector answers is_leader on /leader while another candidate "
                  "already does (intersecting runs of answers)", overlap_lines(sampled, record.impl))
    unlogged = v.unlogged_leader_samples(record.samples, record.reported)
    results.check(not unlogged, "every is_leader answer lies in a term the candidate logged",
                  "\n".join(f"{i}: sent {stamp(s)} received {stamp(r)}" for i, s, r in unlogged))
    return {"sampler_overlaps": len(sampled), "samples": sum(map(len, record.samples.values()))}


def check_history(results, _args, record, _act):
    bad = v.transition_faults(record.history)
    results.check(bool(record.history) and not bad,
                  f"leaseTransitions monotone over {len(record.history)} watched Lease versions", "\n".join(bad))
    return {"transition_errors": len(bad), "lease_versions": len(record.history)}


def parent_was_frozen(overlap, frozen, clock_offset):
    """Whether the earlier child's lease-elector was SIGSTOPped when the overlap began."""
    parent = overlap[0].split("/")[0]
    at = overlap[3] + clock_offset
    return any(s - 1.0 <= at <= e + 1.0 for s, e in frozen.get(parent, []))


def note(results, title, lines):
    """An info line, then `lines` indented under it."""
    results.info(title)
    for line in lines.splitlines():
        print("       " + line, flush=True)


def overlap_lines(over, impl):
    return "\n".join(f"{a} ({impl[a]}) led on for {s * 1000:.1f} ms after {b} ({impl[b]}) began leading at "
                     f"{stamp(at)}" for a, b, s, at in over)


def print_table(plan):
    print()
    print("failover per fault kind (s): failover = fault start -> a new term starts (faults on the leader "
          "and API server restarts); recovery = fault healed -> a leader acts")
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
