#!/usr/bin/env python3
"""Checks dashboards/lease-elector.json and extracts its PromQL queries.

Standard library only.

  dashboard_queries.py                    structural checks; exits 1 on any failure
  dashboard_queries.py --print-queries    one PromQL expr per line, dashboard
                                          variables substituted, for an end-to-end
                                          test to run against a real Prometheus
  dashboard_queries.py --rule-file OUT    also write the queries as recording rules
                                          (for `promtool check rules`: a PromQL parse)

Substitutions (the panels use =~ for the variables, so regexes are fine):
  $namespace, $lease, $job        --namespace / --lease / --job   (default .*)
  $__rate_interval                --rate-interval                  (default 1m)
  $__interval                     --interval                       (default 15s)
  $__range                        --range                          (default 1h)
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toolkit import Results  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import dashboard_data  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DASHBOARD = os.path.normpath(os.path.join(HERE, "..", "..", "dashboards", "lease-elector.json"))

# Every metric the daemon exports (see docs/runbooks.md); the histogram's
# series are listed by their suffixes.
KNOWN_METRICS = {
    "lease_elector_is_leader",
    "lease_elector_leadership_transitions_total",
    "lease_elector_observed_leader_changes_total",
    "lease_elector_renew_duration_seconds_bucket",
    "lease_elector_renew_duration_seconds_count",
    "lease_elector_renew_duration_seconds_sum",
    "lease_elector_renew_failures_total",
    "lease_elector_last_renew_timestamp_seconds",
    "lease_elector_lease_duration_seconds",
    "lease_elector_leader_info",
    "lease_elector_api_requests_total",
    "lease_elector_build_info",
    "leader_election_master_status",
    "lease_elector_child_running",
    "lease_elector_child_starts_total",
    "lease_elector_child_exits_total",
}
# Metrics the dashboard must show (the panels the design asks for).
REQUIRED_METRICS = {
    "lease_elector_is_leader",
    "lease_elector_leader_info",
    "lease_elector_leadership_transitions_total",
    "lease_elector_renew_duration_seconds_bucket",
    "lease_elector_renew_failures_total",
    "lease_elector_last_renew_timestamp_seconds",
    "lease_elector_lease_duration_seconds",
    "lease_elector_observed_leader_changes_total",
    "lease_elector_api_requests_total",
}
# Metrics without the lease/namespace const labels.
NO_LEASE_LABELS = {"lease_elector_build_info", "leader_election_master_status"}
DS_REF = "${datasource}"
METRIC_RE = re.compile(r"\b(lease_elector_[a-z_]+|leader_election_[a-z_]+)\b")


def iter_panels(panels):
    for p in panels:
        yield p
        # collapsed rows keep their panels inside
        yield from iter_panels(p.get("panels") or [])


def substitute(expr, args):
    """The dashboard variables replaced as the renderer does (scripts/dashboard_data.py)."""
    return dashboard_data.substitute(expr, {
        "namespace": args.namespace,
        "lease": args.lease,
        "job": args.job,
        "__rate_interval": args.rate_interval,
        "__interval": args.interval,
        "__range": args.range,
    })


def one_line(expr):
    return " ".join(expr.split())


def queries(dash, args):
    out = []
    for p in iter_panels(dash.get("panels", [])):
        for t in p.get("targets", []) or []:
            if t.get("expr"):
                out.append((p.get("title", "?"), t.get("refId", "?"), one_line(substitute(t["expr"], args))))
    return out


def check(dash, args):
    results = Results("dashboard", verbose=args.verbose)
    ok = results.check

    ok(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 39,
       f"schemaVersion >= 39 (is {dash.get('schemaVersion')})")
    ok(dash.get("uid") == "lease-elector", "uid is lease-elector")
    ok(dash.get("title") == "lease-elector", "title is lease-elector")
    ok(dash.get("id") is None, "id is null (lets Grafana assign it)")

    tvars = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = tvars.get("datasource", {})
    ok(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
       "variable datasource: type datasource, query prometheus")
    for name in ("namespace", "lease", "job"):
        v = tvars.get(name)
        if not v:
            ok(False, f"variable {name} exists")
            continue
        q = v.get("query")
        qtext = q.get("query") if isinstance(q, dict) else q
        ok(v.get("type") == "query", f"variable {name} is a query variable")
        ok(isinstance(qtext, str) and re.match(r"^label_values\(lease_elector_is_leader\b.*,\s*" + name + r"\)$", qtext or ""),
           f"variable {name} is label_values(lease_elector_is_leader..., {name}) (is {qtext!r})")
        ok((v.get("datasource") or {}).get("uid") == DS_REF, f"variable {name} uses {DS_REF}")

    ids = set()
    seen_metrics = set()
    panels = list(iter_panels(dash.get("panels", [])))
    ok(len([p for p in panels if p.get("type") != "row"]) >= 10, "at least 10 panels")
    for p in panels:
        title = p.get("title", "?")
        pid = p.get("id")
        ok(pid not in ids, f"panel {title!r}: unique id {pid}")
        ids.add(pid)
        ok(isinstance(p.get("gridPos"), dict), f"panel {title!r}: has gridPos")
        if p.get("type") == "row":
            continue
        ok((p.get("description") or "").strip(), f"panel {title!r}: has a description")
        unit = (((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit") or "").strip()
        ok(unit, f"panel {title!r}: has a unit")
        ok((p.get("datasource") or {}).get("uid") == DS_REF, f"panel {title!r}: datasource is {DS_REF}")
        targets = p.get("targets") or []
        ok(targets, f"panel {title!r}: has targets")
        for t in targets:
            ref = t.get("refId", "?")
            where = f"panel {title!r} target {ref}"
            ok((t.get("datasource") or {}).get("uid") == DS_REF, f"{where}: datasource is {DS_REF}")
            expr = t.get("expr") or ""
            ok(expr.strip(), f"{where}: has an expr")
            metrics = set(METRIC_RE.findall(expr))
            seen_metrics |= metrics
            unknown = metrics - KNOWN_METRICS
            ok(not unknown, f"{where}: only known metrics (unknown: {sorted(unknown)})")
            if re.search(r"\b(rate|irate|increase)\(", expr):
                ok(re.search(r"\[\$__rate_interval\]", expr) and not re.search(r"\[(?!\$__rate_interval\])[^\]]*\]", expr),
                   f"{where}: rate/increase windows use [$__rate_interval]")
            needed = ("job",) if metrics and metrics <= NO_LEASE_LABELS else ("namespace", "lease", "job")
            for var in needed:
                ok(re.search(r'\b' + var + r'=~"\$' + var + r'"', expr), f"{where}: filters {var}=~\"${var}\"")
            try:
                substitute(expr, args)
                ok(True, f"{where}: variables substitute")
            except dashboard_data.DashboardError as e:
                ok(False, f"{where}: {e}")
        if p.get("type") == "stat" and title == "Leaders":
            steps = (((p.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get("steps") or []
            colors = [(s.get("value"), s.get("color")) for s in steps]
            ok(colors == [(None, "red"), (1, "green"), (2, "red")],
               f"panel 'Leaders': thresholds red at 0, green at 1, red above 1 (is {colors})")
    # layout: inside the 24-column grid, no two panels overlap
    boxes = []
    for p in panels:
        g = p.get("gridPos") or {}
        x, y, w, h = (g.get(k, 0) for k in ("x", "y", "w", "h"))
        ok(w > 0 and h > 0 and x >= 0 and x + w <= 24, f"panel {p.get('title')!r}: gridPos inside the grid ({g})")
        for (ox, oy, ow, oh, ot) in boxes:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                ok(False, f"panel {p.get('title')!r} overlaps {ot!r}")
        boxes.append((x, y, w, h, p.get("title")))
    missing = REQUIRED_METRICS - seen_metrics
    ok(not missing, f"dashboard shows every required metric (missing: {sorted(missing)})")
    kinds = {p.get("type") for p in panels}
    for kind in ("stat", "state-timeline", "heatmap", "timeseries"):
        ok(kind in kinds, f"has a {kind} panel")
    ok(any("histogram_quantile(" in (t.get("expr") or "") for p in panels for t in p.get("targets") or []),
       "uses histogram_quantile for latency")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboard", nargs="?", default=DEFAULT_DASHBOARD)
    ap.add_argument("--print-queries", action="store_true", help="print one substituted expr per line and exit")
    ap.add_argument("--rule-file", help="write the substituted queries as a Prometheus recording-rule file")
    ap.add_argument("--namespace", default=".*")
    ap.add_argument("--lease", default=".*")
    ap.add_argument("--job", default=".*")
    ap.add_argument("--rate-interval", default="1m")
    ap.add_argument("--interval", default="15s")
    ap.add_argument("--range", default="1h")
    ap.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    args = ap.parse_args()

    with open(args.dashboard) as f:
        dash = json.load(f)

    if args.print_queries:
        for _, _, q in queries(dash, args):
            print(q)
        return 0

    if args.rule_file:
        # JSON is valid YAML, so no YAML library is needed.
        rules = [{"record": f"dashboard:query:{i}", "expr": q} for i, (_, _, q) in enumerate(queries(dash, args))]
        with open(args.rule_file, "w") as f:
            json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f, indent=1)

    results = check(dash, args)
    nq = len(queries(dash, args))
    print(f"dashboard {os.path.relpath(args.dashboard)}: {nq} queries, {len(results.checks)} checks")
    return results.summary()


if __name__ == "__main__":
    sys.exit(main())
