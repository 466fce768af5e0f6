#!/usr/bin/python3
"""Draws dashboards/lease-elector.json's panels from a real Prometheus, with the
dashboard's own PromQL (no Grafana needed), as two PNGs:

  failover-timeline.png   who led when (one lane per pod, from "Leader per pod"),
                          each handover and expiry gap marked with its measured length
  dashboard-preview.png   every panel, laid out by its gridPos as Grafana would

  render-dashboard.py --prometheus URL --out DIR [--start T --end T]
                      [--namespace RE --lease RE --job RE] [--scrape-interval S]

T is unix seconds or RFC 3339; without --start/--end, from the first to the last
moment (in Prometheus's head block) at which every target of the job was up and one
candidate led: a test run without its start-up and shut-down. Each query runs as query_range with a step that gives about 600
points; $__rate_interval is Grafana's (max(step + scrape, 4 x scrape)). A query with
an empty result is an error naming the panel and the query (exit 1): the pictures are
made from data only. Exit 2: bad arguments. Needs Debian's python3-matplotlib
(hence /usr/bin/python3).
"""
import argparse
import datetime
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_data as dd  # noqa: E402
import failovers as fo  # noqa: E402
try:
    import panel_drawing as pd  # noqa: E402
except ImportError as e:
    sys.exit(f"render-dashboard: {e}: needs matplotlib (Debian: apt-get install python3-matplotlib)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMELINE_PANEL = "Leader per pod"
LEASE_DURATION_PANEL = "Lease duration"
# who saw the Lease released (holder ""), per pod: empty when nobody did
NO_HOLDER = ('max by (pod) (lease_elector_leader_info{holder="", namespace=~"$namespace", lease=~"$lease", '
             'job=~"$job"})')


def timestamp(text):
    try:
        return float(text)
    except ValueError:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--out", required=True, help="directory for the PNGs")
    ap.add_argument("--start", type=timestamp)
    ap.add_argument("--end", type=timestamp)
    ap.add_argument("--dashboard", default=os.path.join(ROOT, "dashboards", "lease-elector.json"))
    ap.add_argument("--namespace", default=".*")
    ap.add_argument("--lease", default=".*")
    ap.add_argument("--job", default=".*")
    ap.add_argument("--scrape-interval", type=float, default=15.0, help="seconds (default 15)")
    ap.add_argument("--points", type=int, default=600, help="about this many steps per query")
    args = ap.parse_args(argv)
    if (args.start is None) != (args.end is None) or (args.start is not None and args.end <= args.start):
        ap.error("give both --start and --end, with --end after --start (or neither)")
    return args


def window(prom, args):
    """(start, end, step) of every query."""
    start, end = args.start, args.end
    if start is None:
        span = dd.steady_span(prom, args.job)
        if span is None:
            raise dd.QueryError(f"no moment in Prometheus's head block at which every target of job=~{args.job!r} "
                                "was up with one leader: give --start and --end")
        start, end = span
    return start, end, max(1, math.ceil((end - start) / args.points))


def variables(args, win):
    start, end, step = win
    return {"namespace": args.namespace, "lease": args.lease, "job": args.job,
            "__interval": dd.duration(step), "__range": dd.duration(end - start),
            "__rate_interval": dd.duration(dd.rate_interval(step, args.scrape_interval)),
            "datasource": "prometheus"}


def panel_data(prom, panel, env, win):
    return [(t, dd.fetch(prom, panel, t, env, win)) for t in panel.targets]


def timeline(prom, panels, data, env, win):
    """The lanes of "Leader per pod" (by pod) and its failovers, told apart by who saw
    the Lease released and by the "Lease duration" panel."""
    by_title = {p.title: p for p in panels}
    for title in (TIMELINE_PANEL, LEASE_DURATION_PANEL):
        if title not in by_title or len(by_title[title].targets) != 1:
            raise dd.DashboardError(f"the timeline needs the panel {title!r} with one query")
    (target, series), = data[by_title[TIMELINE_PANEL].id]
    lanes = {s.labels.get("pod") or dd.legend(target.legend, s.labels): s for s in series}
    (_, durations), = data[by_title[LEASE_DURATION_PANEL].id]
    lease_duration = max(v for s in durations for v in s.values if math.isfinite(v))
    no_holder = {s.labels.get("pod"): s for s in prom.query_range(dd.substitute(NO_HOLDER, env), *win)}
    released = fo.seen_released(lanes, no_holder)
    return lanes, fo.failovers(fo.leader_at(lanes), lease_duration, released), lease_duration


def main(argv=None):
    args = parse_args(argv)
    try:
        panels = dd.load_panels(args.dashboard)
        prom = dd.Prometheus(args.prometheus)
        win = window(prom, args)
        env = variables(args, win)
        data = {p.id: panel_data(prom, p, env, win) for p in panels if p.type != "row"}
        lanes, changes, lease_duration = timeline(prom, panels, data, env, win)
    except (dd.DashboardError, dd.QueryError) as e:
        print(f"render-dashboard: {e}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    step = win[2]
    t_path = os.path.join(args.out, "failover-timeline.png")
    pd.draw_timeline(t_path, lanes, changes, lease_duration, step, win)
    p_path = os.path.join(args.out, "dashboard-preview.png")
    pd.draw_preview(p_path, panels, data, win)
    for c in changes:
        print(f"{c.label(step)}: {c.before} -> {c.after}")
    for path in (t_path, p_path):
        print(f"wrote {path} ({os.path.getsize(path) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
