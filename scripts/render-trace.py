#!/usr/bin/python3
"""Draws one failover as a real Jaeger stored it: the acquire, renew and release
spans around the last graceful handover (a `release` with outcome `released`), one
lane per identity, from the spans the integration test read back from Jaeger's
query API (/api/traces; tests/integration/real_components.py --traces-out, or the
run's jaeger-spans.json).

  render-trace.py --spans SPANS.json --out DIR     writes DIR/failover-trace.png

Jaeger v1.76's Go module embeds no UI (only a placeholder page), so there is no
Jaeger screenshot: this is the same data, drawn with matplotlib. Exit 1 when the
spans hold no such handover (the picture is made from data only), 2 on bad
arguments. Needs Debian's python3-matplotlib (hence /usr/bin/python3).
"""
import argparse
import json
import os
import sys

COLOURS = {("acquire", "acquired"): "#2ca02c", ("release", "released"): "#ff7f0e", "renew": "#1f77b4"}
BEFORE_S, AFTER_S = 3.0, 4.0


def handover(spans):
    """(release span, the first acquired span after it) of the last graceful handover."""
    releases = sorted((s for s in spans if s["operation"] == "release"
                       and s["tags"].get("outcome") == "released"), key=lambda s: s["start"])
    for rel in reversed(releases):
        after = sorted((s for s in spans if s["operation"] == "acquire" and s["tags"].get("outcome") == "acquired"
                        and s["start"] >= rel["start"] and s["tags"].get("identity") != rel["tags"].get("identity")),
                       key=lambda s: s["start"])
        if after:
            return rel, after[0]
    return None


def colour(span):
    key = (span["operation"], span["tags"].get("outcome"))
    return COLOURS.get(key) or COLOURS.get(span["operation"]) or "#999999"


def draw(spans, rel, acq, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t0 = rel["start"]
    lo, hi = t0 - BEFORE_S * 1e6, t0 + AFTER_S * 1e6
    shown = [s for s in spans if lo <= s["start"] <= hi]
    lanes = sorted({s["tags"].get("identity") for s in shown})
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.7 * len(lanes)), dpi=110)
    for s in shown:
        y = lanes.index(s["tags"].get("identity"))
        x = (s["start"] - t0) / 1e6
        w = max(s["duration"] / 1e6, 0.03)  # a few ms would not show
        ax.barh(y, w, left=x, height=0.5, color=colour(s), edgecolor="black", linewidth=0.3)
    for s, label in ((rel, "release → released"), (acq, "acquire → acquired")):
        y = lanes.index(s["tags"].get("identity"))
        ms = s["duration"] / 1000
        ax.annotate(f"{label} ({ms:.1f} ms)", ((s["start"] - t0) / 1e6, y + 0.3), fontsize=8,
                    xytext=(0, 6), textcoords="offset points")
    gap = (acq["start"] + acq["duration"] - rel["start"]) / 1000
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(-0.7, len(lanes) - 0.2)
    ax.set_xlim(-BEFORE_S, AFTER_S)
    ax.set_xlabel("seconds from the start of the release span")
    ax.set_title(f"One failover in Jaeger (lease {rel['tags'].get('lease')}): SIGTERM → release → next acquire\n"
                 f"{gap:.0f} ms from the release's start to the end of the new leader's acquire", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("#1f77b4", "#ff7f0e", "#2ca02c", "#999999")]
    ax.legend(handles, ["renew", "release", "acquire (acquired)", "acquire (held: not taken)"],
              loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.text(0.01, 0.01, "spans from Jaeger's /api/traces (drawn with matplotlib: Jaeger v1.76's module has no UI)",
             fontsize=7, color="#555555")
    fig.tight_layout()
    fig.savefig(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.spans) as f:
        spans = json.load(f)
    found = handover(spans)
    if not found:
        print(f"render-trace: no release followed by another identity's acquire in {args.spans}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "failover-trace.png")
    draw(spans, *found, path)
    print(f"render-trace: {path} ({len(spans)} spans; handover {found[0]['tags'].get('identity')} -> "
          f"{found[1]['tags'].get('identity')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
