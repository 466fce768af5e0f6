#!/usr/bin/env python3
"""Proof on real components (issue 4 section 5): the Helm chart, the daemon, the
alert rules and the dashboard against a real kube-apiserver (tests/k8s-fixture)
and a real Prometheus (Debian's `prometheus` package). Standard library only.

  real_components.py [--keep] [--keep-on-failure] [--fixture-bin DIR]
                     [--lease-elector PATH] [--helm PATH] [--prometheus PATH]
                     [--jaeger PATH] [--traces-out SPANS.json]

Usually run through tests/integration/run.sh, which builds what is needed first.
Everything runs in a fresh temporary directory; every process started here is
stopped by PID at the end, on every exit path, and dies with this script
(tests/toolkit: Processes, Fixture, PrometheusServer, Results).

1. Chart, server-side (the offline checks, tests/helm/lint.sh, are the "chart"
   stage of scripts/test.sh and do not run again here)
   - minimal stand-ins of the Prometheus Operator CRDs are installed
     (tests/integration/monitoring-crds.yaml, NOT the operator's CRDs: apiVersion,
     kind, metadata and a few required fields are checked, the rest of `spec` is
     accepted as is), then the renders "defaults", "all features", "podMonitor"
     and the values this test installs pass `kubectl apply --dry-run=server`,
     ServiceMonitor/PodMonitor/PrometheusRule included; a render with an unknown
     field is refused (the dry run validates).
2. Chart, installed
   - tests/helm/e2e.sh (helm install with the defaults, objects, the
     ServiceAccount token's permissions) against the same API server.
   - `helm install it` with tests/integration/values-integration.yaml (timings
     6s/3s/1s, ServiceMonitor, PrometheusRule, dashboard and helm test on) into
     namespace le-it.
   - No kubelet: three `lease-elector` processes play the three Pods. Each runs the
     Deployment's container command, args and environment as installed (POD_NAME
     and POD_NAMESPACE as the downward API would set them), with the installed
     ConfigMap's config.toml at the mount path, authenticated only by a token of
     the chart's ServiceAccount (TokenRequest, `kubectl create token`) in a
     kubeconfig with the fixture's CA, plus `--listen 127.0.0.1:<port>`.
   - exactly one leader; the Lease holder (`kubectl get lease`) is the identity
     the daemons report; the probes /healthz and /readyz answer 200; no request
     was forbidden (except while the restarted API server was starting, see 3);
     Events were written.
   - the same token is refused (`kubectl auth can-i`, and real HTTP requests
     answered 403) on another Lease and on anything cluster-wide.
3. A real Prometheus (scrape and rule evaluation every 1 s, job "lease-elector",
   honor_labels) over the three daemons, with a copy of the chart's rules made by
   tests/prometheus/make-test-rules.sh (every `for:` set to 15s: longer than a
   crash failover with a 6s lease, so LeaseElectorNoLeader must not fire on one;
   thresholds unchanged). The seed's demonstrations:
   - crash: SIGKILL the leader, another candidate takes over, the killed one is
     restarted (a container restart: same Pod name and port), four times:
     LeaseElectorFlapping fires (not after two), LeaseElectorNoLeader does not.
   - network cut: the fixture API server is stopped (SIGTERM to the launcher):
     the leader steps down within the renew deadline, before its Lease could
     expire; LeaseElectorNoLeader fires; the API server is restarted on the same
     directory: one leader again and LeaseElectorNoLeader resolves.
   - release: SIGTERM to the leader: another candidate leads well within the lease
     duration (the Lease was released, not left to expire).
   - LeaseElectorSplitBrain never fires (/api/v1/alerts is polled all along, and
     the ALERTS series is checked at the end); LeaseElectorCandidatesAbsent never
     fires either; until the release demonstration at most one candidate ever
     reported is_leader in the same evaluation.
   - every query of every dashboard panel (tests/prometheus/dashboard_queries.py
     --print-queries) returns data from that Prometheus; the "Leaders" panel
     shows a dip to 0 at each failover.
4. A real Jaeger (tests/jaeger/build.sh: github.com/jaegertracing/jaeger/cmd/jaeger
   v1.76.0 from the Go module proxy; OTLP/HTTP receiver and query API on 127.0.0.1,
   in-memory storage). The daemons export their spans to it over OTLP/HTTP
   (OTEL_EXPORTER_OTLP_ENDPOINT); after the failovers above, Jaeger's
   /api/traces?service=lease-elector returns acquire (acquired, by more than one
   identity), renew (renewed) and release (released) spans, each with lease,
   identity and outcome; scripts/render-trace.py draws the last graceful handover
   from them (failover-trace.png, next to the dashboard pictures).

Prints "ok   ..." / "FAIL ..." per check and, as its last line, "N passed, M failed";
exits 1 when a check failed.
"""
import argparse
import datetime
import json
import math
import os
import random
import re
import shutil
import signal
import string
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toolkit.jaeger import spans as jaeger_spans  # noqa: E402
from toolkit import (AlertWatch, Fixture, JaegerServer, Kube, Processes, PrometheusServer, Results,  # noqa: E402
                     free_port, http_get, run, wait_for, write_kubeconfig)
from toolkit.procs import Interrupted  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CHART = os.path.join(ROOT, "helm", "lease-elector")
NS = "le-it"            # namespace of the release under test
REL = "it"              # its release name
FULL = f"{REL}-lease-elector"  # fullname = Lease = ServiceAccount = Role = ConfigMap
DRY_NS = "le-dry"       # namespace of the server-side dry runs
JOB = "lease-elector"   # scrape job name; the rules' absent() looks for it
RULES_FOR = "15s"       # `for:` of every alert in the test copy of the rules
CRASH_CYCLES = 4        # leader kills; LeaseElectorFlapping's threshold is "> 3"
LEASE_DURATION = 6.0    # tests/integration/values-integration.yaml
RENEW_DEADLINE = 3.0
WATCH_BACKOFF_MAX = 10.0  # the daemon's longest pause before it re-lists a lost watch

results = Results()  # last line "N passed, M failed"
check = results.check
info = results.info


def log(msg):
    print(f"---- {time.strftime('%H:%M:%S')} {msg}", flush=True)


def rfc3339(text):
    """Unix time of an RFC 3339 timestamp (any number of fractional digits), or None."""
    if not text:
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").timestamp()


def strip_helm_noise(text):
    return "\n".join(l for l in text.splitlines() if "found symbolic link in path" not in l)


# --------------------------------------------------------------------------- daemons
class Daemon:
    """One lease-elector process standing in for one Pod of the Deployment."""

    def __init__(self, idx, pod, port, argv, env, logdir, processes):
        self.idx, self.pod, self.port, self.argv, self.env = idx, pod, port, argv, env
        self.processes = processes
        self.logpath = os.path.join(logdir, f"daemon-{idx}-{pod}.log")
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        with open(self.logpath, "a") as logf:
            logf.write(f"===== start {self.starts} at {time.strftime('%H:%M:%S')}\n")
        self.proc = self.processes.start(self.argv, log=self.logpath, env=self.env, deathsig=signal.SIGKILL)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def leader(self):
        """The /leader JSON, or None."""
        if not self.running():
            return None
        try:
            _, body = http_get(self.url("/leader"), timeout=1.0)
            return json.loads(body)
        except Exception:  # noqa: BLE001
            return None

    def kill(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            return None


def pod_name():
    alnum = string.ascii_lowercase + string.digits
    return f"{FULL}-5c8f7d9b6-" + "".join(random.choice(alnum) for _ in range(5))


def container_command(dep, config_dir, pod, port):
    """argv and environment of the Deployment's container, as the kubelet would run it."""
    c = dep["spec"]["template"]["spec"]["containers"][0]
    argv = list(c.get("command") or []) + list(c.get("args") or [])
    mount = next(m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] == "config")
    argv = [config_dir + a[len(mount):] if a.startswith(mount) else a for a in argv]
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e.get("valueFrom", {}).get("fieldRef"):
            field = e["valueFrom"]["fieldRef"]["fieldPath"]
            env[e["name"]] = {"metadata.name": pod, "metadata.namespace": NS}[field]
    listen = ["--listen", f"127.0.0.1:{port}"]
    if "--" in argv:  # run mode: flags go before the child's command
        i = argv.index("--")
        argv = argv[:i] + listen + argv[i:]
    else:
        argv += listen
    return argv, env


# --------------------------------------------------------------------------- the test
class Test:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="le-real-")
        self.procs = Processes()
        self.fixture = None
        self.admin = None
        self.daemons = []
        self.sa_kubeconfigs = []
        self.prom_server = None
        self.prom = None
        self.jaeger_server = None
        self.jaeger = None
        self.watch = None
        self.dep = None
        self.config_dir = os.path.join(self.tmp, "etc-lease-elector")
        self.restart_begin = self.restart_ready = None

    # ---- helpers
    def helm(self, *args, timeout=120):
        env = {**os.environ, "KUBECONFIG": self.fixture.info["admin_kubeconfig"],
               "HELM_CACHE_HOME": os.path.join(self.tmp, "helm", "cache"),
               "HELM_CONFIG_HOME": os.path.join(self.tmp, "helm", "config"),
               "HELM_DATA_HOME": os.path.join(self.tmp, "helm", "data")}
        rc, out, err = run([self.args.helm, *args], timeout=timeout, env=env)
        return rc, out, strip_helm_noise(err)

    def lease_holder(self):
        rc, out, _ = self.admin.kubectl("get", "lease", FULL, "-n", NS, "-o",
                                        "jsonpath={.spec.holderIdentity}", timeout=20)
        return out.strip() if rc == 0 else None

    def views(self):
        return {d.pod: d.leader() for d in self.daemons if d.running()}

    def consistent_leader(self, exclude=None):
        """The leader's identity when exactly one running daemon leads, it is not
        `exclude`, every running daemon observes it as the holder, and the Lease
        (kubectl get lease) names it."""
        views = self.views()
        if not views or any(v is None for v in views.values()):
            return None
        leaders = [p for p, v in views.items() if v.get("is_leader")]
        if len(leaders) != 1 or leaders[0] == exclude:
            return None
        leader = leaders[0]
        if views[leader].get("identity") != leader:
            return None
        if any(v.get("holder") != leader for v in views.values()):
            return None
        if self.lease_holder() != leader:
            return None
        return leader

    def daemon(self, pod):
        return next(d for d in self.daemons if d.pod == pod)

    def since_prom_start(self):
        return int(time.time() - self.prom_start) + 5

    # ---- 1. offline and dry run
    def render(self, name, *values):
        path = os.path.join(self.tmp, f"render-{re.sub(r'[^a-z]+', '-', name)}.yaml")
        rc, out, err = self.helm("template", REL, CHART, "--namespace", DRY_NS, *values)
        if not check(rc == 0, f"helm template ({name})", err):
            return None
        with open(path, "w") as f:
            f.write(out)
        return path

    def step_dry_run(self):
        log("server-side dry runs of the rendered manifests")
        rc, out, err = self.admin.kubectl("apply", "-f", os.path.join(HERE, "monitoring-crds.yaml"))
        check(rc == 0, "minimal monitoring.coreos.com CRDs (ServiceMonitor, PodMonitor, PrometheusRule) applied",
              out + err)
        rc, out, err = self.admin.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com",
            "crd/podmonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com", timeout=70)
        check(rc == 0, "the CRDs are Established", out + err)
        for ns in (DRY_NS, "monitoring"):  # values-all.yaml puts the dashboard into "monitoring"
            self.admin.kubectl("create", "namespace", ns)
        renders = {
            "defaults": [],
            "all features": ["-f", os.path.join(ROOT, "tests", "helm", "values-all.yaml")],
            "podMonitor, readiness leader": ["--set", "podMonitor.enabled=true", "--set", "http.readiness=leader",
                                             "--set", "podDisruptionBudget.enabled=false",
                                             "--set", "prometheusRule.enabled=true"],
            "integration values": ["-f", os.path.join(HERE, "values-integration.yaml")],
        }
        for name, values in renders.items():
            path = self.render(name, *values)
            if not path:
                continue
            with open(path) as f:
                kinds = re.findall(r"^kind: (\w+)$", f.read(), re.M)
            rc, out, err = self.admin.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", path, timeout=60)
            applied = [l for l in out.splitlines() if l.endswith("(server dry run)")]
            check(rc == 0 and len(applied) == len(kinds),
                  f"kubectl apply --dry-run=server: {name} ({len(applied)}/{len(kinds)} objects: "
                  f"{', '.join(sorted(set(kinds)))})", out + err)
        # the dry run really validates: an unknown field in the Deployment is refused
        path = self.render("defaults")
        if path:
            with open(path) as f:
                text = f.read()
            bad = os.path.join(self.tmp, "render-unknown-field.yaml")
            with open(bad, "w") as f:
                f.write(text.replace("  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  replicaz: 3\n", 1))
            rc, out, err = self.admin.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", bad)
            check(rc != 0 and "replicaz" in err, "the dry run refuses a Deployment with an unknown field", out + err)
            rc, out, err = self.admin.kubectl("get", "deploy,cm,sa,role,prometheusrule", "-n", DRY_NS, "-o", "name")
            left = [l for l in out.split() if l != "configmap/kube-root-ca.crt"]
            check(rc == 0 and not left, "the dry runs created nothing", out + err)

    # ---- 2. install and daemons
    def step_e2e(self):
        log("tests/helm/e2e.sh")
        kc = self.fixture.info["admin_kubeconfig"]
        rc, out, err = run(["bash", os.path.join(ROOT, "tests", "helm", "e2e.sh"), kc], timeout=240,
                           env={**os.environ, "KUBECONFIG": kc})
        last = (out.strip().splitlines() or ["?"])[-1]
        check(rc == 0, f"tests/helm/e2e.sh: helm install, objects, token permissions ({last})", out + err)

    def step_flowschema(self):
        log("tests/helm/flowschema.sh")
        kc = self.fixture.info["admin_kubeconfig"]
        rc, out, err = run(["bash", os.path.join(ROOT, "tests", "helm", "flowschema.sh"), kc, self.args.lease_elector],
                           timeout=120, env={**os.environ, "KUBECONFIG": kc})
        last = (out.strip().splitlines() or ["?"])[-1]
        check(rc == 0, f"tests/helm/flowschema.sh: the chart's FlowSchema puts the daemon's Lease requests "
                       f"in the leader-election priority level ({last})", out + err)

    def step_install(self):
        log(f"helm install {REL} into {NS}")
        rc, out, err = self.helm("install", REL, CHART, "-n", NS, "--create-namespace",
                                 "-f", os.path.join(HERE, "values-integration.yaml"))
        if not check(rc == 0, f"helm install {REL} -n {NS} -f values-integration.yaml", out + err):
            return False
        rc, out, err = self.helm("status", REL, "-n", NS, "-o", "json")
        status = json.loads(out)["info"]["status"] if rc == 0 else err
        check(status == "deployed", f"helm status: deployed (is {status})")
        objs = [f"deployment/{FULL}", f"configmap/{FULL}", f"serviceaccount/{FULL}", f"role/{FULL}",
                f"rolebinding/{FULL}", f"service/{FULL}", f"poddisruptionbudget/{FULL}",
                f"servicemonitor/{FULL}", f"prometheusrule/{FULL}", f"configmap/{FULL}-dashboard"]
        rc, out, err = self.admin.kubectl("get", "-n", NS, *objs, "-o", "name")
        check(rc == 0 and len(out.split()) == len(objs),
              f"the release's objects exist ({', '.join(o.split('/')[0] for o in objs)})", out + err)
        rc, out, err = self.admin.kubectl("get", "servicemonitor", FULL, "-n", NS, "-o", "json")
        ep = json.loads(out)["spec"]["endpoints"][0] if rc == 0 else {}
        check(ep.get("honorLabels") is True and ep.get("port") == "http-metrics"
              and ep.get("path", "/metrics") == "/metrics",
              f"the installed ServiceMonitor scrapes http-metrics /metrics with honorLabels, like this test ({ep})",
              err)
        rc, out, err = self.admin.kubectl("get", "deployment", FULL, "-n", NS, "-o", "json")
        if not check(rc == 0, "read the installed Deployment", err):
            return False
        self.dep = json.loads(out)
        rc, cfg, err = self.admin.kubectl("get", "configmap", FULL, "-n", NS, "-o", r"jsonpath={.data.config\.toml}")
        want = [f'lease = "{FULL}"', f'namespace = "{NS}"', 'lease_duration = "6s"', 'renew_deadline = "3s"',
                'retry_period = "1s"']
        check(rc == 0 and all(w in cfg.splitlines() for w in want),
              "config.toml of the installed ConfigMap names the Lease and has the 6s/3s/1s timings", cfg + err)
        os.makedirs(self.config_dir, exist_ok=True)
        with open(os.path.join(self.config_dir, "config.toml"), "w") as f:
            f.write(cfg)
        return True

    def step_daemons(self):
        log("three daemons as the Deployment's Pods")
        spec = self.dep["spec"]["template"]["spec"]
        sa = spec.get("serviceAccountName")
        check(sa == FULL, f"the Pods run as ServiceAccount {FULL} (is {sa})")
        fx = self.fixture.info
        for i in range(int(self.dep["spec"]["replicas"])):
            rc, out, err = self.admin.kubectl("create", "token", sa, "-n", NS, "--duration=1h")
            token = out.strip()
            if not check(rc == 0 and token, f"daemon {i}: a token of {sa} from the TokenRequest API (kubectl create token)", err):
                return False
            kc = os.path.join(self.tmp, f"sa-{i}.kubeconfig")
            write_kubeconfig(kc, fx["server"], fx["ca_file"], token, NS)
            self.sa_kubeconfigs.append((kc, token))
            pod, port = pod_name(), free_port()
            argv, env = container_command(self.dep, self.config_dir, pod, port)
            argv[0] = self.args.lease_elector  # the image's /usr/local/bin/lease-elector
            # nothing else from this environment (no LEASE_ELECTOR_*, RUST_LOG, ...)
            env.update({"KUBECONFIG": kc, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp})
            # spans to the real Jaeger (the standard variable: no LEASE_ELECTOR_* setting changes)
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.jaeger_server.otlp_endpoint
            self.daemons.append(Daemon(i, pod, port, argv, env, self.tmp, self.procs))
        info("argv: " + " ".join(self.daemons[0].argv))
        check(self.daemons[0].argv[1:3] == ["--config", os.path.join(self.config_dir, "config.toml")],
              "the Deployment runs lease-elector --config <ConfigMap mount>/config.toml")
        for d in self.daemons:
            d.start()
        leader = wait_for(self.consistent_leader, 30)
        check(leader, f"exactly one leader; `kubectl get lease {FULL}` holder = the identity the daemons report ({leader})",
              json.dumps(self.views(), indent=1))
        c = spec["containers"][0]
        for d in self.daemons:
            v = d.leader() or {}
            check(v.get("identity") == d.pod and v.get("namespace") == NS and v.get("lease") == FULL,
                  f"daemon {d.idx}: identity = POD_NAME {d.pod}, Lease {NS}/{FULL} (from config.toml)", json.dumps(v))
            probes = []
            for probe in ("livenessProbe", "readinessProbe"):
                path = c[probe]["httpGet"]["path"]
                try:
                    probes.append((path, http_get(d.url(path))[0]))
                except urllib.error.HTTPError as e:
                    probes.append((path, e.code))
                except Exception as e:  # noqa: BLE001
                    probes.append((path, str(e)))
            check(all(code == 200 for _, code in probes), f"daemon {d.idx}: the Deployment's probes answer 200 ({probes})")
        return bool(leader)

    def step_token_refused(self):
        log("the daemons' token elsewhere")
        kc, token = self.sa_kubeconfigs[0]
        sa = Kube(kc, self.fixture.info["server"], self.fixture.info["ca_file"], token)
        rc, out, _ = sa.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        check(out.strip() == f"system:serviceaccount:{NS}:{FULL}",
              f"the daemons' token authenticates as system:serviceaccount:{NS}:{FULL} (got {out.strip()!r})")
        other = "it-other"  # another Lease, next to the elector's
        rc, out, err = self.admin.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": other, "namespace": NS},
            "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 60}}))
        check(rc == 0, f"admin creates another Lease {NS}/{other}", err)
        cases = [  # verb, resource, extra args, answer
            ("update", f"leases.coordination.k8s.io/{FULL}", ["-n", NS], "yes"),
            ("update", f"leases.coordination.k8s.io/{other}", ["-n", NS], "no"),
            ("get", f"leases.coordination.k8s.io/{other}", ["-n", NS], "no"),
            ("patch", f"leases.coordination.k8s.io/{other}", ["-n", NS], "no"),
            ("delete", f"leases.coordination.k8s.io/{other}", ["-n", NS], "no"),
            ("list", "leases.coordination.k8s.io", ["-n", NS], "no"),
            ("update", f"leases.coordination.k8s.io/{FULL}", ["-n", "default"], "no"),
            ("list", "leases.coordination.k8s.io", ["--all-namespaces"], "no"),
            ("get", "nodes", [], "no"),
            ("list", "namespaces", [], "no"),
            ("create", "clusterroles.rbac.authorization.k8s.io", [], "no"),
            ("get", "customresourcedefinitions.apiextensions.k8s.io", [], "no"),
            ("list", "secrets", ["--all-namespaces"], "no"),
            ("create", "pods", ["-n", NS], "no"),
        ]
        for verb, res, extra, want in cases:
            rc, out, err = sa.kubectl("auth", "can-i", verb, res, *extra)
            got = out.strip() or err.strip()
            check(got == want, f"kubectl auth can-i {verb} {res} {' '.join(extra)} with the token -> {want} (got {got})")
        base = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
        real = [
            ("GET", f"{base}/{FULL}", None, 200),
            ("GET", f"{base}/{other}", None, 403),
            ("PATCH", f"{base}/{other}", {"spec": {"holderIdentity": "hijacked"}}, 403),
            ("DELETE", f"{base}/{other}", None, 403),
            ("GET", base, None, 403),
            ("GET", f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{FULL}", None, 403),
            ("GET", "/apis/coordination.k8s.io/v1/leases", None, 403),
            ("GET", "/api/v1/nodes", None, 403),
            ("GET", "/api/v1/namespaces", None, 403),
            ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", None, 403),
            ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
             {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
              "metadata": {"name": "it-escalate"},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
              "subjects": [{"kind": "ServiceAccount", "name": FULL, "namespace": NS}]}, 403),
        ]
        for method, path, body, want in real:
            got = sa.request(method, path, body)
            check(got == want, f"real request {method} {path} with the token -> {want} (got {got})")
        rc, out, _ = self.admin.kubectl("get", "lease", other, "-n", NS, "-o", "jsonpath={.spec.holderIdentity}")
        check(out == "someone-else", f"the other Lease is unchanged (holder {out!r})")

    # ---- 3. prometheus and the demonstrations
    def start_prometheus(self):
        log("prometheus")
        rules = os.path.join(self.tmp, "alerts-test.yaml")
        rc, out, err = run([os.path.join(ROOT, "tests", "prometheus", "make-test-rules.sh"), "-f", RULES_FOR, "-o", rules])
        if not check(rc == 0, f"tests/prometheus/make-test-rules.sh -f {RULES_FOR}: test copy of "
                              "helm/lease-elector/files/alerts.yaml", err):
            return False
        # what a PodMonitor/ServiceMonitor with honorLabels gives: the Pod's labels on
        # the target, the metrics' own namespace/lease labels kept
        self.prom_server = PrometheusServer(
            self.args.prometheus, self.tmp, self.procs, JOB, rules=rules,
            targets=[(d.port, {"namespace": NS, "pod": d.pod, "container": "lease-elector"}) for d in self.daemons])
        self.prom = self.prom_server.start(60)
        if not check(self.prom, f"{self.args.prometheus} ready on 127.0.0.1"):
            return False
        self.prom_start = self.prom_server.started_at
        self.watch = AlertWatch(self.prom)
        self.watch.start()
        check(wait_for(lambda: self.prom.value(f'count(up{{job="{JOB}"}} == 1)') == 3, 30),
              "Prometheus scrapes the three daemons (up == 1)")

        def rules_ok():
            groups = self.prom.get("/api/v1/rules")["data"]["groups"]
            rs = [r for g in groups for r in g["rules"] if r["type"] == "alerting"]
            return rs if len(rs) == 6 and all(r["health"] == "ok" for r in rs) else None
        rs = wait_for(rules_ok, 20)
        check(rs, f"the six alert rules are loaded and evaluate ({sorted(r['name'] for r in rs or [])})")
        check(wait_for(lambda: self.prom.value(
            f'sum by (namespace, lease) (lease_elector_is_leader{{job="{JOB}",namespace="{NS}",lease="{FULL}"}})') == 1, 20),
            f"sum of lease_elector_is_leader{{namespace=\"{NS}\",lease=\"{FULL}\"}} is 1")
        time.sleep(3)
        check(not self.prom.firing(), f"steady state: no alert firing ({sorted(self.prom.firing())})")
        return True

    def step_crashes(self):
        log(f"crash failovers: SIGKILL the leader {CRASH_CYCLES} times")
        t0 = time.monotonic()
        for cycle in range(1, CRASH_CYCLES + 1):
            leader = wait_for(self.consistent_leader, 20)
            if not check(leader, f"crash {cycle}: one leader before the kill ({leader})", json.dumps(self.views())):
                return
            d = self.daemon(leader)
            t_kill = time.monotonic()
            d.kill(signal.SIGKILL)
            d.wait(10)
            new = wait_for(lambda: self.consistent_leader(exclude=leader), 25, 0.2)
            took = time.monotonic() - t_kill
            check(new, f"crash {cycle}: SIGKILL {leader} -> {new} leads after {took:.1f}s "
                       f"(the Lease and every daemon agree; lease duration {LEASE_DURATION:.0f}s)",
                  json.dumps(self.views()))
            # LeaseElectorFlapping counts what the survivors observed, so it would fire
            # even if a leader died before its first scrape (tests/prometheus covers
            # that crash loop); here every leader is seen leading by Prometheus
            check(wait_for(lambda: self.prom.value(f'lease_elector_is_leader{{job="{JOB}",pod="{new}"}}') == 1, 10),
                  f"crash {cycle}: Prometheus scraped {new} as the leader")
            d.start()  # a container restart: same Pod name, same port
            check(wait_for(lambda: (lambda v: v and v.get("holder") == new and not v.get("is_leader"))(d.leader()), 20),
                  f"crash {cycle}: {leader} restarted, follows {new}")
            time.sleep(2)  # the new leader leads for a few scrapes before it is killed
            if cycle == 2:
                time.sleep(2)  # two rule evaluations after the second takeover
                check("LeaseElectorFlapping" not in self.prom.firing(),
                      "LeaseElectorFlapping not firing after 2 failovers (threshold: more than 3 holder changes seen)")
        fired = wait_for(lambda: self.prom.firing().get("LeaseElectorFlapping"), 30)
        check(fired and fired["labels"].get("namespace") == NS and fired["labels"].get("lease") == FULL,
              f"LeaseElectorFlapping fires after {CRASH_CYCLES} leader kills "
              f"(value {fired and fired.get('value')}, labels {fired and fired.get('labels')})")
        check(not self.watch.times("LeaseElectorNoLeader", "firing", since=t0),
              f"LeaseElectorNoLeader did not fire on crash failovers (for: {RULES_FOR} > a failover)")

    def step_cut(self):
        log("network cut: stop the API server")
        leader = wait_for(self.consistent_leader, 20)
        if not check(leader, f"one leader before the cut ({leader})"):
            return False
        f = self.prom.value(f'sum(max_over_time(lease_elector_renew_failures_total'
                            f'{{job="{JOB}",reason="forbidden"}}[{self.since_prom_start()}s]))')
        check(f == 0, f"up to the cut, no Lease request of the daemons was forbidden: the Role suffices (forbidden: {f})")
        d = self.daemon(leader)
        server_before = self.fixture.info["server"]
        self.fixture.proc.send_signal(signal.SIGTERM)
        t_sig = time.time()
        last_view, stepped = None, None
        end = time.monotonic() + 20
        while time.monotonic() < end:
            v = d.leader()
            if v and v.get("is_leader"):
                last_view = v
            elif v:
                stepped = time.time()
                break
            time.sleep(0.1)
        last_renew = rfc3339((last_view or {}).get("last_renew"))
        gap = stepped - last_renew if stepped and last_renew else None
        check(gap is not None and gap < LEASE_DURATION,
              f"the leader stopped leading {gap and round(gap, 1)}s after its last successful renew "
              f"({stepped and round(stepped - t_sig, 1)}s after SIGTERM to the API server; renew deadline "
              f"{RENEW_DEADLINE:.0f}s): before its {LEASE_DURATION:.0f}s lease could expire", json.dumps(last_view))
        check(wait_for(lambda: all(v and not v.get("is_leader") for v in self.views().values()), 10, 0.2),
              "no candidate leads while the API server is down", json.dumps(self.views()))
        fired = wait_for(lambda: self.prom.firing().get("LeaseElectorNoLeader"), 40, 0.5)
        check(fired and fired["labels"].get("namespace") == NS and fired["labels"].get("lease") == FULL,
              f"LeaseElectorNoLeader fires while every candidate is cut off "
              f"({time.time() - t_sig:.1f}s after the cut; labels {fired and fired['labels']})")
        stopped = self.fixture.stop(30)
        check(stopped, f"the fixture launcher exited (within {time.time() - t_sig:.1f}s of SIGTERM)")
        check(all(x.running() for x in self.daemons), "the daemons keep running while the API server is down")

        log("restart the API server on the same directory")
        self.restart_begin = time.time()
        started = self.fixture.start(90)
        self.restart_ready = time.time()
        if not check(started, f"fixture API server restarted ({self.restart_ready - self.restart_begin:.1f}s)"):
            return False
        if self.fixture.info["server"] != server_before:
            # the launcher reuses its ports when they are free; otherwise the daemons need
            # kubeconfigs for the new address (a limit of the fixture, not of the chart)
            info(f"the API server moved to {self.fixture.info['server']}; restarting the daemons")
            fx = self.fixture.info
            self.admin = Kube(fx["admin_kubeconfig"], fx["server"], fx["ca_file"], fx["admin_token"])
            for x, (kc, token) in zip(self.daemons, self.sa_kubeconfigs):
                write_kubeconfig(kc, fx["server"], fx["ca_file"], token, NS)
                x.kill(signal.SIGKILL)
                x.wait(10)
                x.start()
        t_up = time.monotonic()
        leader = wait_for(self.consistent_leader, 40, 0.3)
        check(leader, f"the API server is back: one leader again ({leader}, {time.monotonic() - t_up:.1f}s)",
              json.dumps(self.views()))
        resolved = wait_for(lambda: "LeaseElectorNoLeader" not in self.prom.firing(), 30, 0.5)
        check(resolved, f"LeaseElectorNoLeader resolves after the recovery ({time.monotonic() - t_up:.1f}s)")
        return True

    def step_checks_over_time(self):
        log("checks over the run so far")
        span = self.since_prom_start()
        mx = self.prom.value(f'max_over_time((sum by (namespace, lease) (lease_elector_is_leader{{job="{JOB}"}}))[{span}s:1s])')
        check(mx == 1, f"crashes and cut: never more than one candidate with is_leader in an evaluation "
                       f"(max {mx} over {span}s)")
        ev = self.prom.value(f'max(max_over_time(lease_elector_api_requests_total{{job="{JOB}",verb="event"}}[{span}s]))')
        rc, out, err = self.admin.kubectl("get", "events", "-n", NS, "--field-selector",
                                          f"involvedObject.kind=Lease,involvedObject.name={FULL}", "-o", "json")
        reasons = sorted({e.get("reason") for e in json.loads(out)["items"]}) if rc == 0 else []
        check(ev and reasons, f"the daemons wrote Events on the Lease (the Role's events rule) "
                              f"(reasons {reasons}, {ev} event requests)", out + err)
        # A restarted kube-apiserver answers 403 to requests that reach it before its
        # RBAC informers synced (before it is ready); nowhere else is a 403 acceptable.
        early, late = [], []
        for d in self.daemons:
            with open(d.logpath, errors="replace") as fh:
                for line in fh:
                    if not re.search(r"forbidden|\b403\b", line, re.I):
                        continue
                    m = re.match(r'\{"timestamp":"([^"]+)"', line)
                    ts = rfc3339(m.group(1)) if m else None
                    if ts and self.restart_begin <= ts <= self.restart_ready + 1.0:
                        early.append(line.strip())
                    else:
                        late.append(line.strip()[:300])
        info(f"{len(early)} forbidden answers while the restarted API server was starting up "
             f"({self.restart_ready - self.restart_begin:.1f}s before it was ready)")
        check(not late, "no 'forbidden' in the daemons' logs outside the API server's start-up", "\n".join(late[:10]))

    def step_release(self):
        log("release: SIGTERM the leader")
        leader = wait_for(self.consistent_leader, 20)
        if not check(leader, f"one leader before the release ({leader})"):
            return
        # Followers learn of a release from their watch (they do not poll), and after the
        # API server's restart a follower may still wait out its re-list backoff (at most
        # WATCH_BACKOFF_MAX, src/backend/kube.rs): start the release once that is over.
        wait = self.restart_ready + WATCH_BACKOFF_MAX + 2.0 - time.time()
        if wait > 0:
            info(f"waiting {wait:.1f}s more: every follower's watch is back {WATCH_BACKOFF_MAX:.0f}s + 2s "
                 "after the API server's restart")
            time.sleep(wait)
        d = self.daemon(leader)
        t0 = time.monotonic()
        d.kill(signal.SIGTERM)
        new = wait_for(lambda: self.consistent_leader(exclude=leader), 20, 0.1)
        took = time.monotonic() - t0
        code = d.wait(15)
        check(new and took < 4.0, f"SIGTERM {leader}: it released the Lease, {new} leads after {took:.1f}s "
                                  f"(< 4s; a Lease left to expire takes >= {LEASE_DURATION:.0f}s)")
        check(code == 0, f"the released candidate exited with code 0 (got {code})")
        d.start()
        check(wait_for(lambda: (d.leader() or {}).get("holder") == new, 20), f"{leader} restarted, follows {new}")

    def start_jaeger(self):
        self.jaeger_server = JaegerServer(self.args.jaeger, self.tmp, self.procs)
        self.jaeger = self.jaeger_server.start(60)
        return check(self.jaeger, f"Jaeger ({self.args.jaeger}) ready on 127.0.0.1, OTLP/HTTP at "
                                  f"{self.jaeger_server.otlp_endpoint}")

    def step_traces(self):
        """The failovers above as Jaeger stores them: acquire, renew and release spans with
        the Lease, the identity and the outcome, from the daemons' OTLP/HTTP export."""
        log("traces: the failovers in Jaeger")
        pods = {d.pod for d in self.daemons}

        def failover_spans():
            try:
                got = jaeger_spans(self.jaeger.traces("lease-elector"))
            except OSError:
                return None
            ops = {(s["operation"], s["tags"].get("outcome")) for s in got}
            want = {("acquire", "acquired"), ("renew", "renewed"), ("release", "released")}
            # the handover's last span, the new leader's acquire, is exported in its next batch
            released = [s["start"] for s in got if s["operation"] == "release" and s["tags"].get("outcome") == "released"]
            taken = released and any(s["operation"] == "acquire" and s["tags"].get("outcome") == "acquired"
                                     and s["start"] >= max(released) for s in got)
            return got if want <= ops and taken else None
        got = wait_for(failover_spans, 30, 1.0) or []
        check(got, "Jaeger returns the daemons' acquire (acquired), renew (renewed) and release (released) spans, "
                   "and the acquire that followed the release (/api/traces?service=lease-elector)", json.dumps(sorted({(s["operation"], s["tags"].get("outcome"))
                                                                            for s in got}))[:2000])
        if not got:
            return
        acquired = [s for s in got if s["operation"] == "acquire" and s["tags"].get("outcome") == "acquired"]
        check(len({s["tags"].get("identity") for s in acquired}) >= 2,
              f"acquired spans of more than one identity: the failovers ({sorted({s['tags'].get('identity') for s in acquired})})")
        ours = [s for s in got if s["operation"] in ("acquire", "renew", "release")]
        check(all(s["tags"].get("lease") == FULL and s["tags"].get("identity") in pods and s["tags"].get("outcome")
                  for s in ours), f"every acquire/renew/release span carries lease={FULL}, a Pod's identity and an "
                                  f"outcome ({len(ours)} spans)",
              json.dumps([s for s in ours if s["tags"].get("lease") != FULL][:3]))
        check(all(s["service"] == "lease-elector" for s in ours), "service.name lease-elector")
        spans_file = os.path.join(self.tmp, "jaeger-spans.json")
        with open(spans_file, "w") as f:
            json.dump(ours, f)
        if self.args.traces_out:
            shutil.copyfile(spans_file, self.args.traces_out)
        # the picture of one failover trace, next to the dashboard's (scripts/pictures.sh)
        out = os.environ.get("DASHBOARD_PICTURES_DIR") or os.path.join(self.tmp, "pictures")
        rc, so, se = run([os.path.join(ROOT, "scripts", "render-trace.py"), "--spans", spans_file, "--out", out],
                         timeout=120)
        check(rc == 0, f"scripts/render-trace.py drew one failover trace from Jaeger's spans into {out}",
              (so + se).strip())
        info(f"{len(ours)} election spans in Jaeger: "
             + ", ".join(f"{op} {n}" for op, n in sorted(
                 {op: sum(1 for s in ours if s['operation'] == op) for op in ("acquire", "renew", "release")}.items())))

    def step_dashboard(self):
        log("dashboard queries")
        rc, out, err = run([sys.executable, os.path.join(ROOT, "tests", "prometheus", "dashboard_queries.py"),
                            "--print-queries", "--namespace", NS, "--lease", FULL, "--job", JOB,
                            "--rate-interval", "1m", "--interval", "1s", "--range", "5m"])
        queries = [q for q in out.splitlines() if q.strip()]
        if not check(rc == 0 and len(queries) >= 10, f"dashboard_queries.py --print-queries ({len(queries)} queries)", err):
            return
        leaders_q, holder_q = queries[0], queries[1]

        # let the scrapes catch up with the last handover and restart
        def settled():
            holder = self.lease_holder()
            res = self.prom.query(holder_q)["data"]["result"]
            return (self.prom.value(f'count(up{{job="{JOB}"}} == 1)') == 3 and self.prom.value(leaders_q) == 1
                    and len(res) == 1 and res[0]["metric"].get("holder") == holder)
        check(wait_for(settled, 20, 0.5), "Prometheus caught up with the last handover (3 targets up, one leader)")
        empty = []
        for q in queries:
            try:
                r = self.prom.query(q)
            except urllib.error.HTTPError as e:
                check(False, f"dashboard query runs: {q}", e.read().decode()[:300])
                empty.append(q)
                continue
            res = r["data"]["result"]
            good = r["status"] == "success" and res and any(math.isfinite(float(s["value"][1])) for s in res)
            if not good:
                empty.append(q)
            check(good, f"dashboard query returns data: {q[:140]} -> {len(res)} series", json.dumps(res)[:500])
        check(not empty, f"every dashboard query ({len(queries)}) returns data from the real Prometheus")
        # what someone watching the dashboard saw
        check(self.prom.value(leaders_q) == 1, "panel query 1 (Leaders) shows 1")
        res = self.prom.query(holder_q)["data"]["result"]
        holder = self.lease_holder()
        check(len(res) == 1 and res[0]["metric"].get("holder") == holder,
              f"panel query 2 (holder) shows the Lease holder {holder} ({[s['metric'].get('holder') for s in res]})")
        r = self.prom.get("/api/v1/query_range", query=leaders_q, start=self.prom_start, end=time.time(), step="1")
        series = r["data"]["result"]
        dips = 0
        if len(series) == 1:
            values = [float(v) for _, v in series[0]["values"]]
            dips = sum(1 for a, b in zip(values, values[1:]) if a >= 1 and b == 0)
        want = CRASH_CYCLES + 1
        check(dips >= want, f"the Leaders panel over the run dips to 0 at each failover "
                            f"({dips} dips; {CRASH_CYCLES} crashes + the cut = {want})")

    def step_never(self):
        log("alerts over the whole run")
        span = self.since_prom_start()
        for name in ("LeaseElectorSplitBrain", "LeaseElectorCandidatesAbsent"):
            seen = self.watch.times(name, "firing")
            hist = self.prom.query(f'count_over_time(ALERTS{{alertname="{name}",alertstate="firing"}}[{span}s])')
            check(not seen and not hist["data"]["result"],
                  f"{name} never fired ({self.watch.polls} polls of /api/v1/alerts; ALERTS over {span}s)")
        info(f"LeaseElectorSplitBrain pending in {len(self.watch.times('LeaseElectorSplitBrain', 'pending'))} polls")
        for name in ("LeaseElectorNoLeader", "LeaseElectorFlapping"):
            hist = self.prom.query(f'count_over_time(ALERTS{{alertname="{name}",alertstate="firing"}}[{span}s])')
            check(hist["data"]["result"], f"{name} is in the ALERTS series as firing")
        info(f"alerts seen firing during the run: {self.watch.names('firing')}")
        check(self.watch.polls > 50 and self.watch.errors < max(1, self.watch.polls // 10),
              f"the alert poller ran all along ({self.watch.polls} polls, {self.watch.errors} errors)")

    def step_pictures(self):
        # the dashboard drawn from this run (issue 13 section 3); scripts/pictures.sh sets the directory
        out = os.environ.get("DASHBOARD_PICTURES_DIR") or os.path.join(self.tmp, "pictures")
        rc, so, se = run([os.path.join(ROOT, "scripts", "render-dashboard.py"), "--prometheus", self.prom.base,
                          "--start", str(self.prom_start), "--end", str(time.time()), "--out", out,
                          "--namespace", NS, "--lease", FULL, "--job", JOB, "--scrape-interval", "1"], timeout=180)
        check(rc == 0, f"scripts/render-dashboard.py drew the failover timeline and the dashboard preview "
                       f"from non-empty query results into {out}", (so + se).strip())

    # ---- main
    def main(self):
        log(f"work dir {self.tmp}")
        self.fixture = Fixture(self.args.fixture_bin, os.path.join(self.tmp, "fixture"), self.procs)
        if not check(self.fixture.start(), "fixture API server started (K8S_FIXTURE_READY)"):
            return
        fx = self.fixture.info
        self.admin = Kube(fx["admin_kubeconfig"], fx["server"], fx["ca_file"], fx["admin_token"])
        self.step_dry_run()
        self.step_e2e()
        self.step_flowschema()
        if not self.start_jaeger() or not self.step_install() or not self.step_daemons():
            return
        self.step_token_refused()
        if not self.start_prometheus():
            return
        self.step_crashes()
        if not self.step_cut():
            return
        self.step_checks_over_time()
        self.step_release()
        self.step_traces()
        self.step_dashboard()
        self.step_never()
        self.step_pictures()

    def cleanup(self, failed):
        if self.watch:
            self.watch.stop.set()
        for d in self.daemons:  # the daemons first: they release the Lease on the way out
            d.kill(signal.SIGTERM)
        for d in self.daemons:
            if d.proc:
                self.procs.stop(d.proc, 10)
        self.procs.stop_all(30)  # then Prometheus and the API server
        if failed:
            for path in [self.prom_server and self.prom_server.log] + [d.logpath for d in self.daemons]:
                if path and os.path.exists(path):
                    print(f"---- tail of {path}")
                    with open(path, errors="replace") as fh:
                        print("".join(fh.readlines()[-15:]).rstrip())
        if self.args.keep or (failed and self.args.keep_on_failure):
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture-bin", default=os.environ.get("K8S_FIXTURE_BIN",
                                                            os.path.join(ROOT, "target", "k8s-fixture", "bin")))
    ap.add_argument("--lease-elector", default=os.environ.get("LEASE_ELECTOR_BIN",
                                                              os.path.join(ROOT, "target", "debug", "lease-elector")))
    ap.add_argument("--helm", default=shutil.which("helm") or os.path.expanduser("~/go/bin/helm"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--jaeger", default=os.path.join(ROOT, "target", "jaeger", "bin", "jaeger"),
                    help="the jaeger binary (tests/jaeger/build.sh)")
    ap.add_argument("--traces-out", help="also write the election spans Jaeger returned to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--keep-on-failure", action="store_true", help="keep it when a check failed")
    args = ap.parse_args()
    for what, path in (("k8s-fixture", os.path.join(args.fixture_bin, "k8s-fixture")),
                       ("lease-elector", args.lease_elector), ("helm", args.helm), ("prometheus", args.prometheus),
                       ("jaeger", args.jaeger),
                       ("kubectl", shutil.which("kubectl") or "kubectl")):
        if not os.access(path, os.X_OK):
            print(f"{what} not found at {path} (tests/integration/run.sh builds and installs what is needed)",
                  file=sys.stderr)
            print("0 passed, 1 failed")
            return 1
    args.lease_elector = os.path.abspath(args.lease_elector)
    # SIGTERM (from `timeout` or CI) goes through the finally block below
    Processes.raise_on_signals()
    start = time.monotonic()
    t = Test(args)
    try:
        t.main()
    except Interrupted as e:
        check(False, f"interrupted ({e})")
    except Exception as e:  # noqa: BLE001 - report, then clean up
        check(False, f"unexpected error: {e!r}", traceback.format_exc())
    finally:
        t.cleanup(bool(results.failed))
    print(f"---- {time.monotonic() - start:.0f}s")
    return results.summary()


if __name__ == "__main__":
    sys.exit(main())
