"""The Prometheus text exposition format, and the real metric set of lease-elector."""
import os
import re
import signal

from .net import free_port, http_get
from .procs import Processes
from .wait import wait_for

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
TYPE_RE = re.compile(r"^# TYPE (\S+) (\S+)")


def samples(text, name=None, **match):
    """(name, labels, value) of every sample (of metric `name`, when given) whose labels
    include `match`."""
    for line in text.splitlines():
        m = SAMPLE_RE.match(line)
        if not m or (name is not None and m.group(1) != name):
            continue
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        if all(labels.get(k) == v for k, v in match.items()):
            yield m.group(1), labels, float(m.group(3))


def by_label(text, name, label, **match):
    """{value of `label`: sum of the samples} of metric `name` whose labels include `match`."""
    out = {}
    for _, labels, value in samples(text, name, **match):
        out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + value
    return out


def families(text):
    """{family: {"type": TYPE, "labels": {label: sorted values}}} of an exposition; a
    histogram's _bucket/_sum/_count samples belong to its family (`le` among its labels)."""
    fams = {}
    for line in text.splitlines():
        m = TYPE_RE.match(line)
        if m:
            fams[m.group(1)] = {"type": m.group(2), "labels": {}}
    for name, labels, _ in samples(text):
        fam = name if name in fams else next(
            (f for f in fams if name in (f + "_bucket", f + "_sum", f + "_count")), None)
        if fam is None:
            continue
        for k, v in labels.items():
            fams[fam]["labels"].setdefault(k, set()).add(v)
    for f in fams.values():
        f["labels"] = {k: sorted(v) for k, v in f["labels"].items()}
    return fams


def real_exposition(lease_elector_bin, timeout=30):
    """The /metrics text of a real lease-elector candidate: `lease-elector demo` (three
    candidates on an in-memory Lease, no cluster) on free 127.0.0.1 ports, scraped once
    its first candidate leads, then stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEASE_ELECTOR_", "RUST_LOG", "OTEL_"))}
    env["NO_COLOR"] = "1"
    with Processes() as procs:
        for _ in range(3):  # the demo needs three consecutive free ports
            port = free_port()
            proc = procs.start([lease_elector_bin, "demo", "--forever", "--base-port", str(port)], env=env,
                               deathsig=signal.SIGKILL)
            text = wait_for(lambda: _leading(f"http://127.0.0.1:{port}/metrics", proc), timeout, 0.2)
            if text and text is not _EXITED:
                return text
            procs.stop(proc)
    raise RuntimeError(f"{lease_elector_bin} demo served no /metrics with a leader within {timeout}s")


_EXITED = "(exited)"


def _leading(url, proc):
    if proc.poll() is not None:
        return _EXITED  # e.g. one of its ports was taken: try others
    _, text = http_get(url)
    return text if any(v == 1 for _, _, v in samples(text, "lease_elector_is_leader")) else None
