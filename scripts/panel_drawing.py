"""matplotlib drawings for scripts/render-dashboard.py: the failover timeline and the
dashboard preview (each panel type drawn roughly as Grafana draws it)."""
import datetime
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import dashboard_data as dd  # noqa: E402
import failovers as fo  # noqa: E402

LEADER, FOLLOWER = "#37872d", "#8ab8ff"
GAP, HANDOVER = "#e02f44", "#1f60c4"
DARK = {"bg": "#111217", "panel": "#181b1f", "text": "#ccccdc", "grid": "#2c3235", "title": "#d8d9da"}
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0"]
GRAFANA_COLORS = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "blue": "#5794f2", "text": DARK["text"]}


def when(t):
    return mdates.date2num(datetime.datetime.fromtimestamp(t, datetime.timezone.utc))


def time_axis(ax, win):
    ax.set_xlim(when(win[0]), when(win[1]))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))


def save(fig, path, dpi):
    fig.savefig(path, dpi=dpi, facecolor=fig.get_facecolor())
    plt.close(fig)


# --------------------------------------------------------------------- failover timeline
def draw_lanes(ax, lanes, win, label_color="black"):
    names = sorted(lanes)
    for row, name in enumerate(names):
        for start, end, v in fo.segments(lanes[name]):
            ax.barh(row, when(end) - when(start), left=when(start), height=0.6,
                    color=LEADER if v >= 1 else FOLLOWER, linewidth=0, zorder=2)
    ax.set_yticks(range(len(names)), names, color=label_color)
    ax.set_ylim(len(names) - 0.5, -0.5)
    time_axis(ax, win)
    return len(names)


def draw_timeline(path, lanes, changes, lease_duration, step, win):
    fig, ax = plt.subplots(figsize=(13, 1.6 + 0.55 * len(lanes)))
    n = draw_lanes(ax, lanes, win)
    for i, c in enumerate(changes):
        color = HANDOVER if c.kind == "handover" else GAP
        if c.seconds >= step:
            ax.axvspan(when(c.start), when(c.end), color=color, alpha=0.22, linewidth=0, zorder=0)
        else:
            ax.axvline(when(c.end), color=color, linewidth=1.5, linestyle="--")
        y = -0.55 - 0.45 * (i % 2)
        ax.annotate(c.label(step), (when((c.start + c.end) / 2), y), ha="center", va="bottom",
                    fontsize=8.5, color=color, annotation_clip=False, fontweight="bold")
    ax.set_ylim(n - 0.5, -1.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlabel("time (UTC)")
    entries = [(LEADER, "leader"), (FOLLOWER, "follower (no bar: not scraped, e.g. killed)"),
               (GAP, f"no leader: expiry gap (the {lease_duration:g}s Lease had to expire) or longer")]
    if any(c.kind == "handover" for c in changes):
        entries.append((HANDOVER, "graceful handover (a candidate saw the Lease released)"))
    ax.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c, _ in entries], [t for _, t in entries],
              loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=len(entries), fontsize=8, frameon=False)
    ax.set_title("lease_elector_is_leader per pod (dashboard panel \"Leader per pod\"), "
                 f"measured on {step:g}s steps", fontsize=10, loc="left")
    fig.tight_layout()
    save(fig, path, dpi=100)


# --------------------------------------------------------------------- dashboard preview
def draw_preview(path, panels, data, win):
    rows = max(p.grid[1] + p.grid[3] for p in panels)
    fig = plt.figure(figsize=(16, rows * 0.34), facecolor=DARK["bg"])
    for p in panels:
        x, y, w, h = p.grid
        left, bottom, width, height = x / 24, 1 - (y + h) / rows, w / 24, h / rows
        if p.type == "row":
            fig.text(left + 0.004, bottom + height / 2, p.title, color=DARK["title"], fontsize=12,
                     fontweight="bold", va="center")
            continue
        pad = 0.003
        fig.patches.append(plt.Rectangle((left + pad, bottom + pad), width - 2 * pad, height - 2 * pad,
                                         transform=fig.transFigure, color=DARK["panel"], zorder=-10))
        fig.text(left + 0.008, bottom + height - 0.012, p.title, color=DARK["title"], fontsize=9.5,
                 fontweight="bold", va="center")
        # room inside the panel for the title and the tick labels
        inset = (0.0, 0.0, 0.0, 0.028) if p.type in ("stat", "table") else (0.04, 0.022, 0.012, 0.03)
        rect = [left + pad + inset[0], bottom + pad + inset[1],
                width - 2 * pad - inset[0] - inset[2], height - 2 * pad - inset[1] - inset[3]]
        if p.type == "state-timeline":
            rect[0], rect[2] = rect[0] + 0.16, rect[2] - 0.16  # lane names
        ax = fig.add_axes(rect, facecolor=DARK["panel"])
        style(ax)
        DRAW.get(p.type, draw_timeseries)(ax, p, data[p.id], win)
    save(fig, path, dpi=80)


def style(ax):
    ax.tick_params(colors=DARK["text"], labelsize=7)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.grid(color=DARK["grid"], linewidth=0.5)


def hide_axes(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def last_value(series):
    vals = [v for v in series.values if math.isfinite(v)]
    return vals[-1] if vals else float("nan")


def current(targets):
    """The series that still have a value at the window's last step (what the panel
    shows at the end of the window), per target."""
    last = max(t for _, series in targets for s in series for t in s.times)
    return [(t, [s for s in series if s.times and s.times[-1] == last and math.isfinite(s.values[-1])])
            for t, series in targets]


def fmt(v, unit):
    if unit == "s":
        return f"{v:g} s" if v >= 1 else f"{v * 1000:.0f} ms"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"


def threshold_color(panel, v):
    defaults = (panel.raw.get("fieldConfig") or {}).get("defaults") or {}
    color = (defaults.get("color") or {})
    if color.get("mode") != "thresholds":
        return GRAFANA_COLORS.get(color.get("fixedColor"), DARK["text"])
    chosen = DARK["text"]
    for s in (defaults.get("thresholds") or {}).get("steps", []):
        if s.get("value") is None or v >= s["value"]:
            chosen = GRAFANA_COLORS.get(s.get("color"), s.get("color"))
    return chosen


def draw_stat(ax, panel, targets, win):
    hide_axes(ax)
    ax.set_facecolor("none")
    opts = panel.raw.get("options") or {}
    items = [(dd.legend(t.legend, s.labels), last_value(s)) for t, series in current(targets) for s in series][:3]
    named = opts.get("textMode") == "value_and_name" or len(items) > 1
    for i, (name, v) in enumerate(items):
        color = threshold_color(panel, v)
        top, height = 1 - i / len(items), 1 / len(items)
        if opts.get("colorMode") == "background":
            ax.add_patch(plt.Rectangle((0.02, top - height + 0.04), 0.96, height - 0.06, color=color,
                                       transform=ax.transAxes))
            color = "white"
        if named:
            ax.text(0.5, top - 0.22 * height, name, ha="center", va="center", color=DARK["text"], fontsize=8,
                    transform=ax.transAxes)
        ax.text(0.5, top - (0.62 if named else 0.5) * height, fmt(v, panel.unit), ha="center", va="center",
                color=color, fontsize=22 if len(items) == 1 else 14, fontweight="bold", transform=ax.transAxes)


def draw_timeseries(ax, panel, targets, win):
    i = 0
    for t, series in targets:
        for s in series:
            xs, ys = with_gaps(s)
            ax.plot(xs, ys, linewidth=1, color=PALETTE[i % len(PALETTE)],
                    linestyle="--" if t.ref == "B" and len(targets) > 1 else "-",
                    label=dd.legend(t.legend, s.labels))
            i += 1
    time_axis(ax, win)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=6))
    if panel.unit in ("s", "reqps"):
        ax.set_ylabel({"s": "seconds", "reqps": "req/s"}[panel.unit], color=DARK["text"], fontsize=7)
    ax.legend(fontsize=6.5, loc="upper left", labelcolor=DARK["text"], ncol=2, facecolor=DARK["panel"],
              edgecolor="none", framealpha=0.85)


def with_gaps(series):
    """x, y with a NaN where steps are missing, so the line breaks there (spanNulls off)."""
    step = fo.step_of(series.times)
    xs, ys = [], []
    for i, (t, v) in enumerate(zip(series.times, series.values)):
        if i and t - series.times[i - 1] > 1.5 * step:
            xs.append(when(t - step))
            ys.append(float("nan"))
        xs.append(when(t))
        ys.append(v)
    return xs, ys


def draw_state_timeline(ax, panel, targets, win):
    (t, series), = targets
    draw_lanes(ax, {dd.legend(t.legend, s.labels): s for s in series}, win, label_color=DARK["text"])
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(False)


def draw_heatmap(ax, panel, targets, win):
    (_, series), = targets
    series = sorted(series, key=lambda s: float(s.labels.get("le", "inf")))
    times = series[0].times
    cumulative = [[v if math.isfinite(v) else 0.0 for v in s.values] for s in series]
    cells = [cumulative[0]] + [[b - a for a, b in zip(lo, hi)] for lo, hi in zip(cumulative, cumulative[1:])]
    cells = [[c if c > 0 else float("nan") for c in row] for row in cells]  # empty cells not drawn
    ax.imshow(cells, aspect="auto", origin="lower", cmap="Oranges", interpolation="nearest",
              extent=(when(times[0]), when(times[-1]), -0.5, len(cells) - 0.5), norm=matplotlib.colors.PowerNorm(0.5))
    ax.set_yticks(range(len(series)), [s.labels.get("le", "?") for s in series])
    ax.grid(False)
    time_axis(ax, win)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=6))
    ax.set_ylabel("le (s)", color=DARK["text"], fontsize=7)


def draw_table(ax, panel, targets, win):
    hide_axes(ax)
    rows = [(dd.legend(t.legend, s.labels), fmt(last_value(s), "")) for t, series in current(targets) for s in series]
    ax.text(0.01, 0.8, "Version", color=DARK["title"], fontsize=8, fontweight="bold", transform=ax.transAxes)
    ax.text(0.5, 0.8, "Pods", color=DARK["title"], fontsize=8, fontweight="bold", transform=ax.transAxes)
    for i, (version, pods) in enumerate(rows[:4]):
        y = 0.6 - 0.18 * i
        ax.text(0.01, y, version, color=DARK["text"], fontsize=8, transform=ax.transAxes)
        ax.text(0.5, y, pods, color=DARK["text"], fontsize=8, transform=ax.transAxes)


DRAW = {"stat": draw_stat, "timeseries": draw_timeseries, "state-timeline": draw_state_timeline,
        "heatmap": draw_heatmap, "table": draw_table}
