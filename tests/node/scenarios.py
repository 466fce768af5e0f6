#!/usr/bin/env python3
"""End-to-end scenarios: lease-elector as Pods on the real node of tests/node/node.sh.

Runs inside the node's network namespace (tests/node/run.sh starts it with nsenter), with
KUBECONFIG pointing at the node's admin kubeconfig and `helm`/`kubectl` on PATH.

Every scenario runs while a sampler polls, every ~50 ms, the Lease and each Pod's
/leader, and a watch records the Lease's history. "Never two leaders" is checked from
the samples: a run of consecutive is_leader=true answers of one Pod proves it led from
the end of its first request to the start of its last; two such intervals of different
Pods must never overlap.

Prints one line per check, a table of measured times, writes results.json to
$LE_NODE_DIR, and ends with "N passed, N failed".
"""
import base64
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the toolkit
from toolkit import Results  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CHART = os.path.join(ROOT, "helm", "lease-elector")
DIR = os.environ.get("LE_NODE_DIR", "/tmp/le-node")
CTR_SOCK = os.environ.get("LE_NODE_CTR_SOCK", os.path.join(DIR, "containerd", "containerd.sock"))
IMAGE = os.environ["LE_IMAGE"]            # repository:tag from tests/dockerfile/build-image.sh
TEST_IMAGE = os.environ["LE_TEST_IMAGE"]  # the image + busybox (TEST IMAGE)
SVC_IP, SVC_PORT = "10.0.0.1", "443"
LEASE_DURATION, RENEW_DEADLINE, RETRY = 15.0, 10.0, 2.0  # the chart's defaults

T0 = time.monotonic()
RESULTS = Results(label="scenarios")  # the toolkit's one pass/fail recorder
measures = []  # (scenario, what, value)


def now():
    return time.monotonic()


def log(msg):
    print(f"[{now() - T0:7.2f}s] {msg}", flush=True)


def check(cond, msg):
    return RESULTS.check(cond, msg)


def measure(scenario, what, seconds, fmt="{:.3f} s"):
    measures.append((scenario, what, seconds if seconds is None else round(seconds, 3)))
    log(f"measured: {scenario}: {what} = {'n/a' if seconds is None else fmt.format(seconds)}")


def sh(*args, check_rc=True, timeout=300, input=None):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=input)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: rc={p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def kubectl(*args, **kw):
    return sh("kubectl", *args, **kw)


# ------------------------------------------------------------------ API access
class Api:
    def __init__(self, kubeconfig):
        text = open(kubeconfig).read()
        self.server = re.search(r"server: (\S+)", text).group(1)
        self.token = re.search(r"token: (\S+)", text).group(1)
        ca = re.search(r"certificate-authority: (\S+)", text).group(1)
        self.ctx = ssl.create_default_context(cafile=ca)

    def req(self, path, timeout=2.0):
        r = urllib.request.Request(self.server + path, headers={"Authorization": "Bearer " + self.token})
        return urllib.request.urlopen(r, context=self.ctx, timeout=timeout)

    def get(self, path, timeout=2.0):
        with self.req(path, timeout) as resp:
            return json.loads(resp.read())


API = Api(os.environ["KUBECONFIG"])


def pod_leader(ip, timeout=0.4):
    with urllib.request.urlopen(f"http://{ip}:9890/leader", timeout=timeout) as r:
        return json.loads(r.read())


# ------------------------------------------------------------------ observers
class Observer:
    """Sampler (Lease + every Pod's /leader, ~50 ms) and a watch of the Lease."""

    def __init__(self, ns, lease, selector):
        self.ns, self.lease, self.selector = ns, lease, selector
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.pods = {}             # name -> ip (Running Pods with an IP)
        self.samples = []          # (t_send, t_recv, pod, is_leader)
        self.lease_samples = []    # (t, holder)
        self.history = []          # (t, holder, transitions, rv) from the watch
        self.errors = 0
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._pods, self._sample, self._watch)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=5)

    def _pods(self):
        sel = urllib.parse.quote(self.selector)
        while not self.stop_ev.is_set():
            try:
                items = API.get(f"/api/v1/namespaces/{self.ns}/pods?labelSelector={sel}")["items"]
                pods = {p["metadata"]["name"]: p["status"].get("podIP") for p in items
                        if p["status"].get("podIP") and p["status"].get("phase") == "Running"}
                with self.lock:
                    self.pods = pods
            except Exception:
                pass
            self.stop_ev.wait(0.25)

    def _sample(self):
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.ns}/leases/{self.lease}"
        while not self.stop_ev.is_set():
            tick = now()
            try:
                spec = API.get(path, timeout=1.0)["spec"]
                self.lease_samples.append((now(), spec.get("holderIdentity") or ""))
            except Exception:
                self.lease_samples.append((now(), None))
            with self.lock:
                pods = dict(self.pods)
            for name, ip in pods.items():
                s = now()
                try:
                    leader = bool(pod_leader(ip, 0.3).get("is_leader"))
                except Exception:
                    continue
                self.samples.append((s, now(), name, leader))
            self.stop_ev.wait(max(0.0, 0.05 - (now() - tick)))

    def _watch(self):
        rv = ""
        fs = urllib.parse.quote(f"metadata.name={self.lease}")
        while not self.stop_ev.is_set():
            try:
                q = f"watch=1&fieldSelector={fs}&timeoutSeconds=30" + (f"&resourceVersion={rv}" if rv else "")
                with API.req(f"/apis/coordination.k8s.io/v1/namespaces/{self.ns}/leases?{q}", timeout=40) as resp:
                    for line in resp:
                        ev = json.loads(line)
                        obj = ev.get("object", {})
                        if ev.get("type") == "ERROR":
                            rv = ""
                            break
                        rv = obj["metadata"]["resourceVersion"]
                        spec = obj.get("spec", {})
                        self.history.append((now(), spec.get("holderIdentity") or "",
                                             spec.get("leaseTransitions", 0), rv))
                        if self.stop_ev.is_set():
                            break
            except Exception:
                self.errors += 1
                self.stop_ev.wait(0.2)

    # ---- queries
    def holder(self):
        for t, h in reversed(self.lease_samples):
            if h is not None:
                return h
        return None

    def leader_intervals(self):
        """Per Pod, the intervals it certainly led: [recv of first, send of last] of each run."""
        by_pod = {}
        for s, r, pod, leader in sorted(self.samples):
            by_pod.setdefault(pod, []).append((s, r, leader))
        out = []
        for pod, ss in by_pod.items():
            run = None
            for s, r, leader in ss:
                if leader:
                    run = run or [r, s]
                    run[1] = s
                else:
                    if run and run[1] > run[0]:
                        out.append((run[0], run[1], pod))
                    run = None
            if run and run[1] > run[0]:
                out.append((run[0], run[1], pod))
        return sorted(out)

    def two_leaders(self):
        iv = self.leader_intervals()
        bad = []
        for i, (a0, a1, pa) in enumerate(iv):
            for b0, b1, pb in iv[i + 1:]:
                if b0 >= a1:
                    break
                if pa != pb and b0 < a1:
                    bad.append((pa, pb, round(a1 - b0, 3)))
        return bad

    def changes(self, since=0.0):
        """Holder changes in the watched history after `since`: [(t, old, new)]."""
        out, prev = [], None
        for t, h, _tr, _rv in self.history:
            if prev is not None and h != prev and t >= since:
                out.append((t, prev, h))
            prev = h
        return out

    def wait_holder(self, pred, timeout, what):
        end = now() + timeout
        while now() < end:
            h = self.holder()
            if h is not None and pred(h):
                return h
            time.sleep(0.02)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what} (holder {self.holder()!r})")


def pods_of(ns, selector):
    return API.get(f"/api/v1/namespaces/{ns}/pods?labelSelector={urllib.parse.quote(selector)}")["items"]


def ready(p):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))


def wait_pods_ready(ns, selector, n, timeout, exclude=()):
    end = now() + timeout
    while now() < end:
        ps = [p for p in pods_of(ns, selector) if p["metadata"]["name"] not in exclude
              and not p["metadata"].get("deletionTimestamp")]
        if len(ps) == n and all(ready(p) for p in ps):
            return ps
        time.sleep(0.2)
    raise TimeoutError(f"{n} ready Pods in {ns} ({selector})")


def pod_ready_seconds(p):
    from datetime import datetime
    def ts(x):
        return datetime.strptime(x, "%Y-%m-%dT%H:%M:%SZ").timestamp()
    cond = [c for c in p["status"]["conditions"] if c["type"] == "Ready"][0]
    return ts(cond["lastTransitionTime"]) - ts(p["metadata"]["creationTimestamp"])


def helm(*args, timeout=300):
    return sh("helm", *args, timeout=timeout)


def values_file(values):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", dir=DIR, delete=False)
    json.dump(values, f)
    f.close()
    return f.name


def image_values(image):
    repo, tag = image.rsplit(":", 1)
    return {"image": {"repository": repo, "tag": tag, "pullPolicy": "Never"}}


def no_two_leaders(obs, scenario):
    bad = obs.two_leaders()
    check(not bad, f"{scenario}: never two leaders ({len(obs.samples)} Pod samples, "
                   f"{len(obs.leader_intervals())} leader intervals){' overlaps: ' + str(bad[:3]) if bad else ''}")


# ------------------------------------------------------------------ election scenarios
NS, REL = "le-e2e", "le"
FULL = f"{REL}-lease-elector"
SEL = f"app.kubernetes.io/instance={REL},app.kubernetes.io/name=lease-elector"
SA = FULL


def restart_counts(ns, selector):
    return {p["metadata"]["name"]: sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses", []))
            for p in pods_of(ns, selector)}


def scenario_install(obs_holder):
    log("scenario 1: helm install, 3 Pods Ready through the chart's probes")
    kubectl("create", "namespace", NS)
    vals = image_values(IMAGE)
    repo, tag = TEST_IMAGE.rsplit(":", 1)
    vals["tests"] = {"enabled": True, "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"}}
    t = now()
    helm("install", REL, CHART, "-n", NS, "-f", values_file(vals), "--wait", "--timeout", "180s")
    ps = wait_pods_ready(NS, SEL, 3, 60)
    ready_s = now() - t
    measure("1 install", "helm install --wait, 3/3 Pods Ready", ready_s)
    check(len(ps) == 3 and all(ready(p) for p in ps), "1: 3 Pods Running and Ready (chart's readiness probe)")
    measure("1 install", "Pod created -> Ready, slowest of 3 (1 s resolution)", max(pod_ready_seconds(p) for p in ps))
    names = {p["metadata"]["name"] for p in ps}
    spec = ps[0]["spec"]
    c = spec["containers"][0]
    check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz"
          and c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
          "1: the chart's liveness (/healthz) and readiness (/readyz) probes are in use")
    check(c["image"] == IMAGE and c.get("imagePullPolicy") == "Never", f"1: Pods run {IMAGE} (pullPolicy Never)")
    obs = obs_holder["obs"] = Observer(NS, FULL, SEL).start()
    holder = obs.wait_holder(lambda h: h != "", 30, "a holder")
    out = kubectl("get", "lease", FULL, "-n", NS, "-o", "jsonpath={.spec.holderIdentity}").stdout
    check(out == holder and holder in names, f"1: kubectl get lease shows one holder, a Pod name ({out})")
    leaders = []
    for p in ps:
        st = pod_leader(p["status"]["podIP"])
        check(st["identity"] == p["metadata"]["name"], f"1: identity of {p['metadata']['name']} is its Pod name (downward API)")
        if st["is_leader"]:
            leaders.append(p["metadata"]["name"])
    check(leaders == [holder], f"1: exactly the holder reports is_leader ({leaders})")
    vols = [v for v in spec.get("volumes", []) if "projected" in v and any(
        "serviceAccountToken" in s for s in v["projected"].get("sources", []))]
    env_names = {e["name"] for e in c.get("env", [])}
    check(vols and "KUBECONFIG" not in env_names and not any("kubeconfig" in a for a in c.get("args", [])),
          "1: in-cluster config: projected ServiceAccount token, no kubeconfig")
    check(spec.get("serviceAccountName") == SA, f"1: Pods run as the chart's ServiceAccount {SA}")
    return holder


def scenario_delete_leader(obs):
    log("scenario 2: delete the leader Pod (SIGTERM from the kubelet, release)")
    old = obs.wait_holder(lambda h: h != "", 30, "a holder")
    old_pods = {p["metadata"]["name"] for p in pods_of(NS, SEL)}
    t = now()
    kubectl("delete", "pod", old, "-n", NS, "--wait=false")
    new = obs.wait_holder(lambda h: h not in ("", old), 30, "a new holder")
    t_new = now()
    ch = [c for c in obs.changes(t - 0.5)]
    released = [c for c in ch if c[1] == old and c[2] == ""]
    acquired = [c for c in ch if c[1] == "" and c[2] == new]
    check(released and acquired, f"2: the Lease was released by {old} and then taken by {new} (history {[(c[1], c[2]) for c in ch]})")
    if released and acquired:
        measure("2 delete leader", "release -> new holder (handover)", acquired[0][0] - released[0][0])
    measure("2 delete leader", "kubectl delete -> new holder", t_new - t)
    ps = wait_pods_ready(NS, SEL, 3, 90, exclude={old})
    repl = [p["metadata"]["name"] for p in ps if p["metadata"]["name"] not in old_pods]
    check(len(repl) == 1, f"2: the ReplicaSet created a replacement ({repl})")
    if repl:
        ip = [p["status"]["podIP"] for p in ps if p["metadata"]["name"] == repl[0]][0]
        st = pod_leader(ip)
        check(not st["is_leader"] and st.get("holder") == new, f"2: the replacement {repl[0]} follows {new}")
        measure("2 delete leader", "replacement Pod created -> Ready (1 s resolution)",
                pod_ready_seconds([p for p in ps if p["metadata"]["name"] == repl[0]][0]))
    no_two_leaders(obs, "2")


def container_id(ns, pod):
    p = API.get(f"/api/v1/namespaces/{ns}/pods/{pod}")
    return p["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]


def task_pid(cid):
    out = sh("ctr", "-a", CTR_SOCK, "-n", "k8s.io", "tasks", "ls").stdout
    for line in out.splitlines()[1:]:
        f = line.split()
        if f and f[0] == cid:
            return int(f[1])
    raise RuntimeError(f"no task {cid}")


def wait_restarted(pod, before, timeout):
    end = now() + timeout
    while now() < end:
        p = API.get(f"/api/v1/namespaces/{NS}/pods/{pod}")
        if restart_counts(NS, SEL).get(pod, 0) > before.get(pod, 0) and ready(p):
            return p
        time.sleep(0.2)
    return None


def scenario_kill_leader(obs):
    log("scenario 3a: SIGKILL the leader's container (no release)")
    old = obs.wait_holder(lambda h: h != "", 30, "a holder")
    before = restart_counts(NS, SEL)
    cid = container_id(NS, old)
    t = now()
    sh("ctr", "-a", CTR_SOCK, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", cid)
    p = wait_restarted(old, before, 60)
    check(p is not None, f"3a: the kubelet restarted the killed container of {old} and it is Ready again")
    if p is None:
        return
    measure("3a SIGKILL leader", "SIGKILL -> container restarted and Ready", now() - t)
    # The restarted container has the same identity (the Pod name): holderIdentity is its
    # own, so it renews at once instead of waiting for lease_duration (client-go does the
    # same). Nobody else may have led in between.
    h = obs.wait_holder(lambda h: h != "", LEASE_DURATION + 3 * RETRY + 5, "a holder")
    end = now() + LEASE_DURATION + 3 * RETRY + 5
    lead_again = None
    while now() < end and lead_again is None:
        for name, ip in list(obs.pods.items()):
            try:
                if pod_leader(ip)["is_leader"]:
                    lead_again = (now() - t, name)
            except Exception:
                pass
        time.sleep(0.05)
    check(lead_again is not None, f"3a: a leader again after the SIGKILL ({lead_again})")
    if lead_again:
        measure("3a SIGKILL leader", f"SIGKILL -> leader again ({'same Pod' if lead_again[1] == old else 'another Pod'})",
                lead_again[0])
    ch = obs.changes(t - 0.5)
    check(not any(c[1] == old and c[2] == "" for c in ch), f"3a: no release by the killed leader ({[(c[1], c[2]) for c in ch]})")
    rc = restart_counts(NS, SEL)
    check(all(v == before.get(k, 0) for k, v in rc.items() if k != old), f"3a: no other container was restarted ({rc})")
    no_two_leaders(obs, "3a")


def scenario_freeze_leader(obs):
    log("scenario 3b: freeze the leader (SIGSTOP): takeover after lease_duration, liveness restarts it")
    old = obs.wait_holder(lambda h: h != "", 30, "a holder")
    before = restart_counts(NS, SEL)
    pid = task_pid(container_id(NS, old))
    t = now()
    os.kill(pid, 19)  # SIGSTOP: no renew, no release, /healthz stops answering
    try:
        new = obs.wait_holder(lambda h: h not in ("", old), LEASE_DURATION + 3 * RETRY + 5, "a takeover")
        took = now() - t
        measure("3b frozen leader", "SIGSTOP -> takeover by another Pod", took)
        ch = obs.changes(t - 0.5)
        check(any(c[1] == old and c[2] == new for c in ch) and not any(c[1] == old and c[2] == "" for c in ch),
              f"3b: {new} took over from {old} without a release (expiry)")
        check(LEASE_DURATION - RETRY - 1 <= took <= LEASE_DURATION + 2 * RETRY + 2,
              f"3b: takeover after lease_duration ({took:.1f} s, lease_duration {LEASE_DURATION:.0f} s)")
        p = wait_restarted(old, before, 120)
        check(p is not None, f"3b: the liveness probe made the kubelet restart the hung {old}")
        if p is None:
            return
        measure("3b frozen leader", "SIGSTOP -> liveness restart, Ready again", now() - t)
        st = pod_leader(p["status"]["podIP"])
        check(not st["is_leader"] and st.get("holder") == new, f"3b: the restarted {old} follows {new}")
        rc = restart_counts(NS, SEL)
        check(all(v == before.get(k, 0) for k, v in rc.items() if k != old),
              f"3b: liveness never restarted a healthy follower ({rc})")
        no_two_leaders(obs, "3b")
    finally:
        try:
            os.kill(pid, 18)  # SIGCONT, in case it is still there
        except ProcessLookupError:
            pass


def iptables(*args):
    sh("iptables", "-w", *args)


def scenario_partition(obs):
    log("scenario 4: cut the leader Pod off the API server")
    old = obs.wait_holder(lambda h: h != "", 30, "a holder")
    ip = API.get(f"/api/v1/namespaces/{NS}/pods/{old}")["status"]["podIP"]
    before = restart_counts(NS, SEL)
    # both directions: the Pod's packets to the Service IP (and to the API server itself),
    # and the API server's packets to the Pod (else a watch keeps streaming one-way)
    rules = [["PREROUTING", "-s", ip, "-d", SVC_IP, "-p", "tcp", "--dport", SVC_PORT, "-j", "DROP"],
             ["PREROUTING", "-s", ip, "-d", "10.200.0.1", "-p", "tcp", "--dport", "6443", "-j", "DROP"],
             ["OUTPUT", "-d", ip, "-p", "tcp", "--sport", "6443", "-j", "DROP"]]
    t = now()
    for r in rules:
        iptables("-t", "raw", "-I", *r)
    try:
        stepped = None
        new = None
        end = now() + RENEW_DEADLINE + LEASE_DURATION + 15
        while now() < end and (stepped is None or new is None):
            if stepped is None:
                try:
                    if not pod_leader(ip)["is_leader"]:
                        stepped = now() - t
                except Exception:
                    pass
            h = obs.holder()
            if new is None and h not in (None, "", old):
                new = (now() - t, h)
            time.sleep(0.05)
        time.sleep(1)
        try:
            seen = pod_leader(ip).get("holder")
        except Exception:
            seen = "?"
        check(new is None or seen != new[1], f"4: while cut off, {old} did not see the new holder (it sees {seen!r})")
        check(stepped is not None, f"4: the cut-off leader {old} stepped down")
        if stepped is not None:
            measure("4 partition", "cut -> leader steps down", stepped)
            check(stepped <= RENEW_DEADLINE + RETRY + 1, f"4: step-down within renew_deadline ({stepped:.1f} s <= {RENEW_DEADLINE:.0f} s + retry)")
        check(new is not None, "4: another candidate took over")
        if new is not None:
            measure("4 partition", "cut -> another holder", new[0])
            check(new[0] >= LEASE_DURATION - RETRY - 1, f"4: the takeover waited for the Lease to expire ({new[0]:.1f} s)")
    finally:
        for r in rules:
            iptables("-t", "raw", "-D", *r)
    t_heal = now()
    follows = None
    end = now() + 60
    while now() < end:
        try:
            st = pod_leader(ip)
            h = obs.holder()
            if not st["is_leader"] and st.get("holder") and st.get("holder") == h and h != old:
                follows = now() - t_heal
                break
        except Exception:
            pass
        time.sleep(0.1)
    check(follows is not None, f"4: after healing, {old} follows the new leader")
    if follows is not None:
        measure("4 partition", "heal -> old leader follows", follows)
    rc = restart_counts(NS, SEL)
    check(rc == before, f"4: no container was restarted by the liveness probe during the cut ({before} -> {rc})")
    no_two_leaders(obs, "4")


def graceful_report(obs, since, scenario):
    ch = obs.changes(since)
    holders = [c for c in ch if c[2] != ""]
    expiries = [c for c in ch if c[1] != "" and c[2] != ""]
    gaps, t_rel = [], None
    for t, old, new in ch:
        if new == "":
            t_rel = t
        elif t_rel is not None:
            gaps.append(t - t_rel)
            t_rel = None
    return holders, expiries, gaps


def scenario_rollout(obs, rev):
    log("scenario 5: helm upgrade that changes the Pod template (rollout of all 3)")
    before = {p["metadata"]["name"] for p in pods_of(NS, SEL)}
    t = now()
    helm("upgrade", REL, CHART, "-n", NS, "--reuse-values", "--set", f"podAnnotations.rollout=r{rev}",
         "--wait", "--timeout", "240s")
    ps = wait_pods_ready(NS, SEL, 3, 120)
    dur = now() - t
    time.sleep(1)
    after = {p["metadata"]["name"] for p in ps}
    check(not (before & after), f"5: all 3 Pods replaced ({sorted(after)})")
    holders, expiries, gaps = graceful_report(obs, t, "5")
    measure("5 rollout", "helm upgrade --wait (3 Pods replaced)", dur)
    measure("5 rollout", "leadership changes", len(holders), "{:.0f}")
    measure("5 rollout", "longest no-leader time", max(gaps) if gaps else 0.0)
    check(not expiries, f"5: every handover was a release, none an expiry ({len(holders)} changes, expiries {expiries})")
    h = obs.wait_holder(lambda h: h != "", 30, "a holder")
    check(h in after, f"5: the leader is one of the new Pods ({h})")
    no_two_leaders(obs, "5")


def scenario_rbac():
    log("scenario 7: the chart's RBAC is what the Pods use, and nothing more")
    who = f"system:serviceaccount:{NS}:{SA}"
    def can(*a):
        return kubectl("auth", "can-i", "--as", who, "-n", NS, *a, check_rc=False).stdout.strip() == "yes"
    allowed = [("update", f"leases.coordination.k8s.io/{FULL}"), ("get", f"leases.coordination.k8s.io/{FULL}"),
               ("watch", f"leases.coordination.k8s.io/{FULL}"), ("create", "leases.coordination.k8s.io"),
               ("create", "events")]
    refused = [("update", "leases.coordination.k8s.io/other-lease"), ("delete", f"leases.coordination.k8s.io/{FULL}"),
               ("list", "pods"), ("get", "secrets"), ("get", "configmaps"), ("list", "leases.coordination.k8s.io", "-A")]
    for verb, res, *rest in allowed:
        check(can(verb, res, *rest), f"7: {SA} may {verb} {res}")
    for verb, res, *rest in refused:
        check(not can(verb, res, *rest), f"7: {SA} may not {verb} {res} {' '.join(rest)}".rstrip())
    # a real request with the Pods' identity: a token of the ServiceAccount, refused for secrets
    tok = kubectl("create", "token", SA, "-n", NS, "--duration", "10m").stdout.strip()
    r = urllib.request.Request(API.server + f"/api/v1/namespaces/{NS}/secrets", headers={"Authorization": "Bearer " + tok})
    try:
        urllib.request.urlopen(r, context=API.ctx, timeout=5)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    check(code == 403, f"7: listing secrets with the ServiceAccount's token is refused ({code})")
    r = urllib.request.Request(API.server + f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{FULL}",
                               headers={"Authorization": "Bearer " + tok})
    try:
        urllib.request.urlopen(r, context=API.ctx, timeout=5)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    check(code == 200, f"7: reading its Lease with the ServiceAccount's token is allowed ({code})")


def scenario_helm_test():
    log("scenario 8: helm test")
    t = now()
    p = sh("helm", "test", REL, "-n", NS, "--timeout", "120s", check_rc=False, timeout=180)
    check(p.returncode == 0, "8: helm test passes" + ("" if p.returncode == 0 else f"\n{p.stdout}\n{p.stderr}"))
    measure("8 helm test", "helm test", now() - t)


# ------------------------------------------------------------------ run mode
RNS, RREL = "le-run", "run"
RFULL = f"{RREL}-lease-elector"
RSEL = f"app.kubernetes.io/instance={RREL},app.kubernetes.io/name=lease-elector"
# (in container args, Kubernetes turns $$ into $)
CHILD = r"""
read up _ < /proc/uptime
echo "CHILD START up=$up token=$LEASE_ELECTOR_FENCING_TOKEN id=$LEASE_ELECTOR_IDENTITY pid=$$$$ ppid=$PPID"
stop() { read up _ < /proc/uptime; echo "CHILD STOP up=$up token=$LEASE_ELECTOR_FENCING_TOKEN id=$LEASE_ELECTOR_IDENTITY"; kill $sl 2>/dev/null; exit 0; }
trap stop TERM INT
while true; do sleep 1 & sl=$!; wait $sl; done
"""


class LogFollower:
    """kubectl logs -f of every Pod of the release, as soon as it runs (lines of deleted Pods included)."""

    def __init__(self, ns, selector):
        self.ns, self.selector = ns, selector
        self.lines = []  # (pod, line)
        self.following = {}
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.t.start()
        return self

    def _follow(self, pod):
        while not self.stop_ev.is_set():
            p = subprocess.Popen(["kubectl", "logs", "-f", "-n", self.ns, pod, "--all-containers"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.following[pod] = p
            for line in p.stdout:
                if "CHILD " in line:
                    self.lines.append((pod, line.strip()))
            p.wait()
            try:
                API.get(f"/api/v1/namespaces/{self.ns}/pods/{pod}")
            except Exception:
                return  # the Pod is gone
            self.stop_ev.wait(0.5)  # container restarted: follow again (kubectl logs -f ends with it)

    def _loop(self):
        while not self.stop_ev.is_set():
            try:
                for p in pods_of(self.ns, self.selector):
                    n = p["metadata"]["name"]
                    if n not in self.following and p["status"].get("phase") == "Running":
                        self.following[n] = None
                        threading.Thread(target=self._follow, args=(n,), daemon=True).start()
            except Exception:
                pass
            self.stop_ev.wait(0.2)

    def stop(self):
        self.stop_ev.set()
        for p in list(self.following.values()):
            if p:
                p.terminate()

    def intervals(self):
        starts, out = {}, []
        for pod, line in self.lines:
            m = re.search(r"CHILD (START|STOP) up=([0-9.]+) token=(\S*) id=(\S+)(?: pid=(\d+) ppid=(\d+))?", line)
            if not m:
                continue
            kind, up, token, ident = m.group(1), float(m.group(2)), m.group(3), m.group(4)
            if kind == "START":
                starts[(pod, token)] = (up, m.group(6))
            elif (pod, token) in starts:
                s, ppid = starts.pop((pod, token))
                out.append((s, up, pod, token, ppid))
        for (pod, token), (s, ppid) in starts.items():
            out.append((s, None, pod, token, ppid))
        return sorted(out)


def scenario_run_mode():
    log("scenario 6: run mode: the workload runs only in the leader Pod")
    kubectl("create", "namespace", RNS)
    vals = image_values(TEST_IMAGE)
    vals["workload"] = {"command": ["/bin/sh", "-c", CHILD]}
    follower = LogFollower(RNS, RSEL).start()
    t = now()
    helm("install", RREL, CHART, "-n", RNS, "-f", values_file(vals), "--wait", "--timeout", "180s")
    wait_pods_ready(RNS, RSEL, 3, 60)
    measure("6 run mode", "helm install --wait, 3/3 Ready", now() - t)
    obs = Observer(RNS, RFULL, RSEL).start()
    try:
        obs.wait_holder(lambda h: h != "", 30, "a holder")
        for i in range(2):
            old = obs.wait_holder(lambda h: h != "", 30, "a holder")
            time.sleep(2)
            kubectl("delete", "pod", old, "-n", RNS, "--wait=false")
            obs.wait_holder(lambda h: h not in ("", old), 30, "a new holder")
            wait_pods_ready(RNS, RSEL, 3, 90, exclude={old})
        t = now()
        helm("upgrade", RREL, CHART, "-n", RNS, "--reuse-values", "--set", "podAnnotations.rollout=r1",
             "--wait", "--timeout", "240s")
        wait_pods_ready(RNS, RSEL, 3, 120)
        measure("6 run mode", "rollout (helm upgrade --wait)", now() - t)
        holder = obs.wait_holder(lambda h: h != "", 30, "a holder")
        time.sleep(3)
    finally:
        obs.stop()
        follower.stop()
    iv = follower.intervals()
    log("child intervals: " + "; ".join(f"{p} token={tk} {s:.2f}-{'open' if e is None else f'{e:.2f}'}" for s, e, p, tk, _ in iv))
    check(len(iv) >= 4, f"6: the child ran in successive leaders ({len(iv)} intervals, >= 4 expected: start, 2 deletions, rollout)")
    overl = [(a, b) for a, b in zip(iv, iv[1:]) if a[1] is None or b[0] < a[1]]
    check(not overl, "6: child intervals never overlap (uptime clock of the node)" + (f": {overl}" if overl else ""))
    toks = [int(x[3]) for x in iv if x[3].isdigit()]
    check(len(toks) == len(iv) and toks == sorted(toks) and len(set(toks)) == len(toks),
          f"6: every child got a fencing token, increasing with each term ({toks})")
    check(all(x[4] == "1" for x in iv), f"6: the child is a child of PID 1, lease-elector ({[x[4] for x in iv]})")
    open_ = [x for x in iv if x[1] is None]
    check(len(open_) == 1 and open_[0][2] == holder, f"6: only the leader {holder} runs the child now ({[x[2] for x in open_]})")
    gaps = [b[0] - a[1] for a, b in zip(iv, iv[1:]) if a[1] is not None]
    if gaps:
        measure("6 run mode", "longest gap between children (stop -> next start)", max(gaps))
    no_two_leaders(obs, "6")


def main():
    holder = {}
    steps = []
    def step(name, fn, *a):
        t = now()
        try:
            r = fn(*a)
        except Exception as e:
            check(False, f"{name}: {type(e).__name__}: {e}")
            r = None
        steps.append((name, now() - t))
        log(f"step {name}: {now() - t:.1f} s")
        return r
    step("1 install", scenario_install, holder)
    obs = holder.get("obs")
    if obs:
        step("2 delete leader", scenario_delete_leader, obs)
        step("3a SIGKILL leader", scenario_kill_leader, obs)
        step("3b frozen leader", scenario_freeze_leader, obs)
        step("4 partition", scenario_partition, obs)
        step("5 rollout", scenario_rollout, obs, 1)
        obs.stop()
        check(not obs.two_leaders(), f"1-5: never two leaders over the whole run ({len(obs.samples)} samples, "
                                     f"{len(obs.history)} Lease events, {obs.errors} watch reconnects)")
    step("7 rbac", scenario_rbac)
    step("8 helm test", scenario_helm_test)
    step("6 run mode", scenario_run_mode)

    print("\nmeasured times")
    print(f"| {'scenario':<18} | {'what':<52} | {'value':>9} |")
    print(f"|{'-' * 20}|{'-' * 54}|{'-' * 11}|")
    for sc, what, v in measures:
        vs = "n/a" if v is None else (f"{v:.0f}" if what == "leadership changes" else f"{v:.3f} s")
        print(f"| {sc:<18} | {what:<52} | {vs:>9} |")
    print("\nstep times: " + ", ".join(f"{n} {s:.1f} s" for n, s in steps))
    with open(os.path.join(DIR, "results.json"), "w") as f:
        json.dump({"checks": RESULTS.checks, "measures": measures, "steps": steps}, f, indent=1)
    return RESULTS.summary()


if __name__ == "__main__":
    sys.exit(main())
