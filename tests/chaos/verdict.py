"""The checks of a chaos run, from what was recorded (pure functions over lists).

Intervals are (start, end) pairs of seconds; end None means "still open" (+inf).
"""
import statistics

INF = float("inf")


def end_of(iv):
    return INF if iv[1] is None else iv[1]


def subtract(interval, holes):
    """`interval` minus every hole in `holes`: a list of intervals."""
    pieces = [(interval[0], end_of(interval))]
    for h0, h1 in holes:
        nxt = []
        for a, b in pieces:
            if h1 <= a or h0 >= b:
                nxt.append((a, b))
                continue
            if a < h0:
                nxt.append((a, h0))
            if h1 < b:
                nxt.append((h1, b))
        pieces = nxt
    return pieces


def acting(terms_by_id, frozen, resume=0.0):
    """identity -> the intervals it acted as leader: its logged terms, minus the time it
    was SIGSTOPped (a stopped process does nothing) and, for a term that was running when
    the stop came, `resume` seconds after SIGCONT (the time a resumed process needs to
    run its timers and step down; resume_lags() measures it)."""
    def holes(term, ident):
        return [(s, c + resume if term[0] < s else c) for s, c in frozen.get(ident, [])]
    return {ident: [(a, b, t[0]) for t in terms for a, b in subtract(t, holes(t, ident))]
            for ident, terms in terms_by_id.items()}


def resume_lags(terms_by_id, frozen):
    """identity -> seconds from each SIGCONT to the end of the term the stop interrupted."""
    return {ident: [end_of(t) - c for s, c in stops for t in terms_by_id.get(ident, [])
                    if t[0] < s and end_of(t) > c]
            for ident, stops in frozen.items()}


def overlaps(intervals_by_id):
    """[(a, b, seconds overlapping, at)] for every two intervals of different owners that
    share an instant (touching ends do not). An interval is (start, end) or (start, end,
    origin): the start of the term it is a piece of. `a` is the one whose term began
    first, the one that led on; `at` is when the overlap began."""
    flat = sorted((iv[0], end_of(iv), iv[2] if len(iv) > 2 else iv[0], ident)
                  for ident, ivs in intervals_by_id.items() for iv in ivs)
    found = []
    for i, (s1, e1, o1, a) in enumerate(flat):
        for s2, e2, o2, b in flat[i + 1:]:
            if s2 >= e1:
                break
            if a != b:
                first, then = (a, b) if o1 <= o2 else (b, a)
                found.append((first, then, min(e1, e2) - s2, s2))
    return found


def cleared_under(history, a, b, at, before=5.0, after=1.0):
    """Whether the Lease history around `at` went holder a -> "" -> b: someone else
    released a's live record (a lease-elector releases only after it logged its stop, so
    a release inside its term is not its own) and b took the released Lease."""
    holders = []
    for t, _kind, holder, _trans, _rv in history:
        if at - before <= t <= at + after and (not holders or holders[-1] != holder):
            holders.append(holder)
    return any(holders[i:i + 3] == [a, "", b] for i in range(len(holders) - 2))


def child_overlaps(lives):
    """Overlaps of run-mode children's lives: [(identity, identity, seconds, at)] (monotonic)."""
    by_child = {f"{life['identity']}/{pid}": [(life["start"], life["exit"])] for pid, life in lives.items()}
    return overlaps(by_child)


def transition_faults(history):
    """Lease history problems: leaseTransitions going down, or a new holder that did not
    raise it (client-go counts every change of holder, to "" and back included)."""
    bad = []
    prev = None
    for t, kind, holder, trans, rv in history:
        if trans is None or kind == "DELETED":
            continue
        if prev is not None:
            p_holder, p_trans = prev
            if trans < p_trans:
                bad.append(f"leaseTransitions {p_trans} -> {trans} (rv {rv})")
            elif holder and holder != p_holder and trans <= p_trans:
                bad.append(f"holder {p_holder or '-'} -> {holder} without a transition (rv {rv})")
        prev = (holder, trans)
    return bad


def covered_from(t, intervals_by_id, horizon):
    """The first instant >= t, before `horizon`, when someone acts as leader; None if none."""
    best = None
    for ivs in intervals_by_id.values():
        for s, e, *_ in ivs:
            if e > t and s < horizon:
                at = max(s, t)
                best = at if best is None else min(best, at)
    return best


def first_start_after(t, intervals_by_id, horizon):
    """The earliest start of an acting interval in (t, horizon): (who, when) or None."""
    starts = [(iv[0], who) for who, ivs in intervals_by_id.items() for iv in ivs if t < iv[0] < horizon]
    return min(starts, default=None)


def measure_faults(faults, act, terms_by_id, end):
    """Fills fault.notes["recovery_s"] (heal -> a leader acts) and, for faults aimed at
    the leader, fault.notes["failover_s"] (fault start -> a new term starts), each
    looked for before the next fault starts."""
    for i, f in enumerate(faults):
        horizon = faults[i + 1].start if i + 1 < len(faults) else end
        at = covered_from(f.healed, act, horizon)
        f.notes["recovery_s"] = None if at is None else at - f.healed
        if f.notes.get("was_leader") or f.kind == "apiserver":
            nxt = first_start_after(f.start, {k: v for k, v in terms_by_id.items()}, horizon)
            f.notes["failover_s"] = None if nxt is None else nxt[0] - f.start


def sampler_overlaps(samples, terms_by_id=None, gap=0.3):
    """Overlaps proven by /leader answers alone: a run of >= 2 consecutive is_leader
    answers of one candidate, none more than `gap` s after the previous one (no answers
    means no knowledge: a stopped or restarted process), proves it led from the first
    reply to the last request (one term); such spans of different candidates must not
    intersect. `terms_by_id` (the logged terms) tells which one led on."""
    spans = {}
    for ident, ss in samples.items():
        run = []
        for sent, recv, lead in ss + [(INF, INF, False)]:
            if lead and (not run or sent - run[-1][1] <= gap):
                run.append((sent, recv))
                continue
            if len(run) >= 2 and run[0][1] < run[-1][0]:
                span = (run[0][1], run[-1][0])
                spans.setdefault(ident, []).append(span + (origin(span, (terms_by_id or {}).get(ident, [])),))
            run = [(sent, recv)] if lead else []
    return overlaps(spans)


def origin(span, terms):
    """The start of the logged term a span of answers belongs to (else the span's own):
    a resumed candidate's answers continue the term it had before it was stopped."""
    return max((s for s, _e in terms if s <= span[0]), default=span[0])


def unlogged_leader_samples(samples, terms_by_id, slack=0.05):
    """[(identity, sent, received)] of is_leader answers that fall in no logged term of
    that candidate (the term logs would be missing a term: the checker would be blind)."""
    missing = []
    for ident, ss in samples.items():
        terms = terms_by_id.get(ident, [])
        for sent, recv, lead in ss:
            if lead and not any(s - slack <= recv and sent <= end_of((s, e)) + slack for s, e in terms):
                missing.append((ident, sent, recv))
    return missing


def percentile_table(faults):
    """Rows (kind, n, on_leader, failovers, failover p50, max, recovery p50, max)."""
    rows = []
    for kind in sorted({f.kind for f in faults}):
        fs = [f for f in faults if f.kind == kind]
        fo = [f.notes["failover_s"] for f in fs if f.notes.get("failover_s") is not None]
        rec = [f.notes["recovery_s"] for f in fs if f.notes.get("recovery_s") is not None]
        rows.append((kind, len(fs), sum(1 for f in fs if f.notes.get("was_leader")), len(fo),
                     p50(fo), max(fo, default=None), p50(rec), max(rec, default=None)))
    return rows


def p50(xs):
    return statistics.median(xs) if xs else None
