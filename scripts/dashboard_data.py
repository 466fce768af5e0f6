"""The data side of scripts/render-dashboard.py: the dashboard's panels and queries,
its variables substituted, run as query_range against a Prometheus.

Standard library only (the unit test, tests/pictures/test_dashboard_data.py, needs no
plotting library). A query whose result is empty is an error that names the panel and
the query: pictures are only made from data.
"""
import datetime
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field


class DashboardError(Exception):
    """A dashboard that cannot be read, or a variable it uses that nobody set."""


class QueryError(Exception):
    """A query that failed or returned nothing to draw."""


@dataclass
class Series:
    labels: dict
    times: list  # unix seconds
    values: list  # floats, NaN where Prometheus had no sample


@dataclass
class Target:
    ref: str
    expr: str  # as in the dashboard, variables not substituted
    legend: str


@dataclass
class Panel:
    id: int
    type: str
    title: str
    grid: tuple  # (x, y, w, h) in Grafana's 24-column grid
    unit: str
    targets: list
    raw: dict = field(repr=False)


def load_panels(path):
    """Every panel of the dashboard (rows included, collapsed rows' children too)."""
    try:
        with open(path) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        raise DashboardError(f"cannot read the dashboard {path}: {e}") from e
    return [to_panel(p) for p in walk(dash.get("panels", []))]


def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels") or [])


def to_panel(p):
    g = p.get("gridPos") or {}
    unit = (((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")) or ""
    targets = [Target(t.get("refId", "?"), t["expr"], t.get("legendFormat", ""))
               for t in p.get("targets") or [] if t.get("expr")]
    return Panel(p.get("id"), p.get("type", "?"), p.get("title", "?"),
                 tuple(g.get(k, 0) for k in ("x", "y", "w", "h")), unit, targets, p)


def rate_interval(step, scrape_interval):
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval)."""
    return max(step + scrape_interval, 4 * scrape_interval)


def duration(seconds):
    """PromQL duration text for a number of seconds (whole seconds, at least 1s)."""
    return f"{max(1, int(math.ceil(seconds)))}s"


def substitute(expr, variables):
    """Replace $var and ${var} by variables[var]; an unknown variable is an error."""
    def repl(m):
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise DashboardError(f"unknown dashboard variable ${name} in {expr!r}")
        return variables[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)\b", repl, expr)


def legend(fmt, labels):
    """Grafana's legendFormat: {{label}} replaced by the series' label value."""
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_data(series):
    """True when at least one series has one finite value."""
    return any(math.isfinite(v) for s in series for v in s.values)


def parse_matrix(body):
    """Series from a query_range answer (values as floats, NaN for "NaN")."""
    if body.get("status") != "success":
        raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
    out = []
    for r in body.get("data", {}).get("result", []):
        times = [float(t) for t, _ in r.get("values", [])]
        values = [float(v) for _, v in r.get("values", [])]
        out.append(Series(r.get("metric", {}), times, values))
    return out


class Prometheus:
    def __init__(self, base, timeout=30):
        self.base, self.timeout = base.rstrip("/"), timeout

    def get(self, path, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.loads(e.read() or b"{}") or {"error": str(e)}
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise QueryError(f"{self.base} did not answer: {e}") from e

    def scalar(self, expr):
        """The value of an instant query with at most one series (None when empty)."""
        body = self.get("/api/v1/query", query=expr)
        if body.get("status") != "success":
            raise QueryError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        res = body["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    def query_range(self, expr, start, end, step):
        return parse_matrix(self.get("/api/v1/query_range", query=expr, start=start, end=end, step=step))


def steady_span(prom, job):
    """(first, last) unix time, within the data Prometheus holds in its head block, at
    which every scraped target of job was up and exactly one candidate led: a test run
    without its start-up and shut-down. None when there is no such moment."""
    head = (prom.get("/api/v1/status/tsdb").get("data") or {}).get("headStats") or {}
    lo, hi = head.get("minTime"), head.get("maxTime")
    if not lo or not hi or hi <= lo:
        return None
    steady = (f'(count(up{{job=~"{job}"}} == 1) == count(up{{job=~"{job}"}})) '
              f'and on() (sum(lease_elector_is_leader{{job=~"{job}"}}) == 1)')
    times = [t for s in prom.query_range(steady, lo / 1000, hi / 1000, 1) for t in s.times]
    return (min(times), max(times)) if len(times) > 1 else None


def fetch(prom, panel, target, variables, window):
    """The target's series over window (start, end, step); empty is a QueryError."""
    expr = " ".join(substitute(target.expr, variables).split())
    where = f"panel {panel.title!r} query {target.ref}: {expr}"
    try:
        series = prom.query_range(expr, *window)
    except QueryError as e:
        raise QueryError(f"{where}: {e}") from e
    if not has_data(series):
        raise QueryError(f"{where}: empty result (no series with a value from {utc(window[0])} to {utc(window[1])})")
    return series
