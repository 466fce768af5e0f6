#!/usr/bin/env python3
"""Structural checks of `helm template` output of the lease-elector chart.

  check_render.py SCENARIO RENDERED.yaml

SCENARIO is one of the cases tests/helm/lint.sh renders (defaults, all, podmonitor,
readiness-leader, long-name, sameness). Prints one line per failed check and a
closing "N passed, N failed" line; exits 1 on any failure. Needs python3 with
PyYAML (python3-yaml); tomllib is in the standard library from Python 3.11.
"""
import json
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toolkit import Results  # noqa: E402

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CHART = os.path.join(ROOT, "helm", "lease-elector")

results = Results(verbose=False)  # only failures are printed
ok = results.check


def load(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return docs, by_kind


def one(by_kind, kind):
    items = by_kind.get(kind, [])
    ok(len(items) == 1, f"exactly one {kind} (found {len(items)})")
    return items[0] if items else {}


def dur_s(d):
    import re
    total = 0.0
    for n, unit in re.findall(r"([0-9]+)(ms|s|m|h)", d):
        total += int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def common(docs, by_kind, release="rel", namespace="ops", lease=None, replicas=3, port=9890):
    fullname = f"{release}-lease-elector" if "lease-elector" not in release else release
    lease = lease or fullname
    sel = {"app.kubernetes.io/name": "lease-elector", "app.kubernetes.io/instance": release}

    # nothing cluster-wide
    for k in ("ClusterRole", "ClusterRoleBinding", "Namespace", "CustomResourceDefinition"):
        ok(k not in by_kind, f"no {k}")
    for d in docs:
        md = d.get("metadata", {})
        name = md.get("name", "")
        ok(len(name) <= 63, f"{d['kind']} name {name!r} has at most 63 characters")
        if d["kind"] not in ("Pod",) and not (d["kind"] == "ConfigMap" and name.endswith("-dashboard")):
            ok(md.get("namespace") == namespace, f"{d['kind']} {name} in namespace {namespace}")
        labels = md.get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
                    "helm.sh/chart"):
            ok(key in labels, f"{d['kind']} {name} has label {key}")
        ok(all(len(str(v)) <= 63 for v in labels.values()), f"{d['kind']} {name}: label values <= 63 chars")

    dep = one(by_kind, "Deployment")
    spec = dep.get("spec", {})
    ok(spec.get("replicas") == replicas, f"Deployment replicas {replicas} (is {spec.get('replicas')})")
    ok(spec.get("selector", {}).get("matchLabels") == sel, "Deployment selector = name + instance only")
    tmpl = spec.get("template", {})
    ok(all(tmpl.get("metadata", {}).get("labels", {}).get(k) == v for k, v in sel.items()),
       "pod template carries the selector labels")
    ok(len(tmpl.get("metadata", {}).get("annotations", {}).get("checksum/config", "")) == 64,
       "pod template has a checksum/config annotation")
    pod = tmpl.get("spec", {})
    psc = pod.get("securityContext", {})
    ok(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532 and psc.get("runAsGroup") == 65532,
       "pod securityContext: runAsNonRoot, 65532:65532")
    ok(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile RuntimeDefault")
    ok(pod.get("serviceAccountName") == fullname, f"pod uses ServiceAccount {fullname}")
    cs = pod.get("containers", [])
    ok(len(cs) == 1, "one container")
    c = cs[0] if cs else {}
    sc = c.get("securityContext", {})
    ok(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    ok(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem true")
    ok(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
    ok(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532, "container runs as 65532")
    ok(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "container seccompProfile RuntimeDefault")
    env = {e["name"]: e for e in c.get("env", [])}
    ok(env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
       "POD_NAME from the downward API")
    ok(env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace",
       "POD_NAMESPACE from the downward API")
    ports = c.get("ports", [])
    ok(any(p.get("name") == "http-metrics" and p.get("containerPort") == port for p in ports),
       f"container port http-metrics {port}")
    lp = c.get("livenessProbe", {}).get("httpGet", {})
    rp = c.get("readinessProbe", {}).get("httpGet", {})
    ok(lp == {"path": "/healthz", "port": "http-metrics"}, f"liveness httpGet /healthz on http-metrics ({lp})")
    ok(rp == {"path": "/readyz", "port": "http-metrics"}, f"readiness httpGet /readyz on http-metrics ({rp})")
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    ok(mounts.get("config", {}).get("mountPath") == "/etc/lease-elector", "config mounted at /etc/lease-elector")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    ok(vols.get("config", {}).get("configMap", {}).get("name") == fullname, "config volume is the ConfigMap")
    ok(c.get("command") == ["/usr/local/bin/lease-elector"], "container command is /usr/local/bin/lease-elector")
    ok(c.get("image", "").startswith("ghcr.io/lease-elector/lease-elector:"), f"image {c.get('image')}")

    cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == fullname]
    ok(len(cms) == 1, "config ConfigMap exists")
    cfg = {}
    if cms and tomllib:
        try:
            cfg = tomllib.loads(cms[0]["data"]["config.toml"])
            ok(True, "config.toml parses as TOML")
        except Exception as e:  # noqa: BLE001
            ok(False, f"config.toml parses as TOML: {e}")
    ok(cfg.get("lease") == lease, f"config lease = {lease} (is {cfg.get('lease')})")
    ok(cfg.get("namespace") == namespace, f"config namespace = {namespace}")
    ok("identity" not in cfg, "config leaves identity to $POD_NAME")
    tgp = pod.get("terminationGracePeriodSeconds", 0)
    ok(tgp > dur_s(cfg.get("renew_deadline", "0s")), f"terminationGracePeriodSeconds {tgp} > renew_deadline")

    role = one(by_kind, "Role")
    rules = role.get("rules", [])
    named = [r for r in rules if r.get("resources") == ["leases"] and r.get("resourceNames")]
    ok(len(named) == 1 and named[0]["resourceNames"] == [lease]
       and set(named[0]["verbs"]) == {"get", "update", "patch", "watch", "list"}
       and named[0]["apiGroups"] == ["coordination.k8s.io"],
       "Role: get/update/patch/watch/list on the one Lease by resourceNames")
    create = [r for r in rules if r.get("resources") == ["leases"] and not r.get("resourceNames")]
    ok(len(create) == 1 and create[0]["verbs"] == ["create"], "Role: a separate create rule on leases")
    ev = [r for r in rules if r.get("resources") == ["events"]]
    ok(len(ev) == 1 and set(ev[0]["verbs"]) == {"create", "patch"} and ev[0]["apiGroups"] == [""],
       "Role: create/patch core events")
    for r in rules:
        ok("*" not in r.get("verbs", []) and "*" not in r.get("resources", []), "Role: no wildcards")
        ok("delete" not in r.get("verbs", []), "Role: no delete")
    rb = one(by_kind, "RoleBinding")
    ok(rb.get("roleRef", {}).get("kind") == "Role" and rb["roleRef"]["name"] == fullname, "RoleBinding -> Role")
    ok(rb.get("subjects") == [{"kind": "ServiceAccount", "name": fullname, "namespace": namespace}],
       "RoleBinding subject is the ServiceAccount")
    sa = one(by_kind, "ServiceAccount")
    ok(sa.get("metadata", {}).get("name") == fullname, "ServiceAccount name")

    svc = one(by_kind, "Service")
    sp = svc.get("spec", {})
    ok(sp.get("selector") == sel, "Service selects name + instance")
    ok(sp.get("ports") == [{"name": "http-metrics", "port": 9890, "targetPort": "http-metrics", "protocol": "TCP"}],
       "Service port http-metrics")
    return dep, c, cfg, rules


def rules_of(doc):
    return doc.get("spec", {}).get("groups", [])


def scenario_defaults(path):
    docs, by_kind = load(path)
    kinds = sorted(by_kind)
    ok(kinds == sorted(["ConfigMap", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Service",
                        "ServiceAccount"]), f"default kinds ({kinds})")
    dep, c, cfg, rules = common(docs, by_kind)
    ok(c.get("args") == ["--config", "/etc/lease-elector/config.toml"], f"args ({c.get('args')})")
    ok(c.get("resources") == {}, "resources {} by default")
    ok(not any(r.get("resources") == ["pods"] for r in rules), "no pods rule without run.labelPod")
    want = {"lease_duration": "15s", "renew_deadline": "10s", "retry_period": "2s", "release_on_cancel": True}
    for k, v in want.items():
        ok(cfg.get(k) == v, f"config {k} = {v!r} (is {cfg.get(k)!r})")
    ok(cfg.get("http") == {"listen": "0.0.0.0:9890", "readiness": "observed"}, f"config [http] ({cfg.get('http')})")
    ok(cfg.get("log") == {"format": "json", "level": "info"}, f"config [log] ({cfg.get('log')})")
    ok("otel" not in cfg, "no [otel] without an endpoint")
    ok(cfg.get("run", {}).get("label_pod") is False, "config run.label_pod false")
    pdb = one(by_kind, "PodDisruptionBudget")
    ok(pdb.get("spec", {}).get("maxUnavailable") == 1, "PDB maxUnavailable 1")
    ok(pdb.get("spec", {}).get("selector", {}).get("matchLabels") ==
       {"app.kubernetes.io/name": "lease-elector", "app.kubernetes.io/instance": "rel"}, "PDB selector")
    ru = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
    ok(ru == {"maxSurge": 1, "maxUnavailable": 0}, f"rolling update one at a time ({ru})")
    ok(dep["spec"]["template"]["spec"].get("terminationGracePeriodSeconds") == 30, "terminationGracePeriodSeconds 30")


def scenario_all(path):
    """values: tests/helm/values-all.yaml"""
    docs, by_kind = load(path)
    dep, c, cfg, rules = common(docs, by_kind, lease="my-lease", port=9999)
    for k in ("ServiceMonitor", "PrometheusRule", "Pod"):
        ok(k in by_kind, f"renders a {k}")
    ok("PodMonitor" not in by_kind, "no PodMonitor")
    ok(c.get("args") == ["run", "--config", "/etc/lease-elector/config.toml", "--", "/app/worker", "--flag",
                         "a b"], f"run args ({c.get('args')})")
    ok(any(m.get("mountPath") == "/tmp" for m in c.get("volumeMounts", [])), "workload gets a writable /tmp")
    ok(c.get("resources", {}).get("limits", {}).get("memory") == "64Mi", "resources pass through")
    pods = [r for r in rules if r.get("resources") == ["pods"]]
    ok(len(pods) == 1 and set(pods[0]["verbs"]) == {"get", "patch"}, "pods get/patch with run.labelPod")
    want = {"lease": "my-lease", "lease_duration": "20s", "renew_deadline": "12s", "retry_period": "3s",
            "release_on_cancel": False}
    for k, v in want.items():
        ok(cfg.get(k) == v, f"config {k} = {v!r} (is {cfg.get(k)!r})")
    ok(cfg.get("http") == {"listen": "0.0.0.0:9999", "readiness": "observed"}, f"config [http] ({cfg.get('http')})")
    ok(cfg.get("log") == {"format": "text", "level": "debug"}, f"config [log] ({cfg.get('log')})")
    ok(cfg.get("otel") == {"endpoint": "http://otel-collector.obs:4318"}, f"config [otel] ({cfg.get('otel')})")
    ok(cfg.get("run") == {"stop_signal": "SIGINT", "grace_period": "5s", "on_child_exit": "exit", "label_pod": True},
       f"config [run] ({cfg.get('run')})")
    pod = dep["spec"]["template"]["spec"]
    ok(pod.get("terminationGracePeriodSeconds") == 30, "terminationGracePeriodSeconds max(12+5+10, 30) = 30")
    ok(pod.get("nodeSelector") == {"kubernetes.io/os": "linux"}, "nodeSelector passes through")
    ok(pod.get("tolerations", [{}])[0].get("key") == "dedicated", "tolerations pass through")
    ok(pod.get("topologySpreadConstraints", [{}])[0].get("topologyKey") == "kubernetes.io/hostname",
       "topologySpreadConstraints pass through")
    ok("podAntiAffinity" in pod.get("affinity", {}), "affinity passes through")
    env = [e["name"] for e in c.get("env", [])]
    ok("LEASE_ELECTOR_LOG__LEVEL" in env, "extraEnv passes through")
    # lease name follows election.leaseName in the Role and the test pod
    named = [r for r in rules if r.get("resourceNames")]
    ok(named and named[0]["resourceNames"] == ["my-lease"], "Role resourceNames = election.leaseName")

    sm = one(by_kind, "ServiceMonitor")
    ok(sm["metadata"]["labels"].get("release") == "kube-prometheus-stack", "ServiceMonitor additionalLabels")
    ep = sm["spec"]["endpoints"][0]
    ok(ep.get("port") == "http-metrics" and ep.get("path") == "/metrics" and ep.get("honorLabels") is True,
       f"ServiceMonitor endpoint ({ep})")
    ok(ep.get("interval") == "15s", "ServiceMonitor interval")
    ok(sm["spec"]["selector"]["matchLabels"] ==
       {"app.kubernetes.io/name": "lease-elector", "app.kubernetes.io/instance": "rel"}, "ServiceMonitor selector")

    pr = one(by_kind, "PrometheusRule")
    ok(pr["metadata"]["labels"].get("release") == "kube-prometheus-stack", "PrometheusRule additionalLabels")
    alerts = {r["alert"]: r for g in rules_of(pr) for r in g["rules"]}
    ok(sorted(alerts) == sorted(["LeaseElectorNoLeader", "LeaseElectorCandidatesAbsent", "LeaseElectorFlapping",
                                 "LeaseElectorSplitBrain", "LeaseElectorDuplicateIdentity"]),
       f"alerts minus the disabled one ({sorted(alerts)})")
    ok(alerts.get("LeaseElectorFlapping", {}).get("expr", "").rstrip().endswith("> 5"), "Flapping threshold override")
    ok(alerts.get("LeaseElectorNoLeader", {}).get("for") == "3m", "NoLeader for override")
    ok(alerts.get("LeaseElectorSplitBrain", {}).get("labels", {}).get("severity") == "warning", "severity override")
    ok(all(a.get("labels", {}).get("team") == "platform" for a in alerts.values()), "alertLabels on every alert")
    ok(alerts.get("LeaseElectorCandidatesAbsent", {}).get("expr") ==
       'absent(lease_elector_is_leader{namespace="ops",lease="my-lease"})',
       f"CandidatesAbsent matches this release's Lease ({alerts.get('LeaseElectorCandidatesAbsent', {}).get('expr')})")
    for a in alerts.values():
        ok(a.get("annotations", {}).get("runbook_url", "").startswith(
            "https://github.com/lease-elector/lease-elector/blob/main/docs/runbooks.md#"), f"{a['alert']} runbook_url")
        ok("{{ $labels" in a.get("annotations", {}).get("summary", "") or a["alert"] == "LeaseElectorCandidatesAbsent",
           f"{a['alert']}: annotation templates survive rendering")

    dcm = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"].endswith("-dashboard")]
    ok(len(dcm) == 1, "dashboard ConfigMap")
    if dcm:
        d = dcm[0]
        ok(d["metadata"]["labels"].get("grafana_dashboard") == "1", "dashboard label grafana_dashboard: \"1\"")
        ok(d["metadata"].get("namespace") == "monitoring", "dashboard namespace override")
        ok(d["metadata"].get("annotations", {}).get("grafana_folder") == "Kubernetes", "dashboard annotations")
        with open(os.path.join(ROOT, "dashboards", "lease-elector.json")) as f:
            canonical = f.read()
        ok(d["data"].get("lease-elector.json") == canonical.rstrip("\n"),
           "dashboard ConfigMap holds dashboards/lease-elector.json byte for byte")
        ok(json.loads(d["data"].get("lease-elector.json", "{}")).get("uid") == "lease-elector", "dashboard JSON parses")
        ok("{{pod}}" in d["data"].get("lease-elector.json", ""), "dashboard {{pod}} legends survive")

    tp = one(by_kind, "Pod")
    ok(tp["metadata"].get("annotations", {}).get("helm.sh/hook") == "test", "test Pod is a helm test hook")
    ok(tp["metadata"]["labels"].get("app.kubernetes.io/name") != "lease-elector",
       "test Pod does not match the Deployment's selector")
    script = tp["spec"]["containers"][0]["command"][-1]
    ok("http://rel-lease-elector.ops.svc:9890/metrics" in script, "test Pod fetches /metrics from the Service")
    ok(tp["spec"]["containers"][0]["image"] == "busybox:1.37", "test image")
    ok(tp["spec"]["securityContext"].get("runAsNonRoot") is True, "test Pod runs as non-root")


def scenario_podmonitor(path):
    docs, by_kind = load(path)
    common(docs, by_kind)
    ok("ServiceMonitor" not in by_kind, "no ServiceMonitor")
    pm = one(by_kind, "PodMonitor")
    ep = pm.get("spec", {}).get("podMetricsEndpoints", [{}])[0]
    ok(ep.get("port") == "http-metrics" and ep.get("path") == "/metrics" and ep.get("honorLabels") is True,
       f"PodMonitor endpoint ({ep})")
    ok(pm["metadata"]["labels"].get("release") == "kps", "PodMonitor additionalLabels")


def scenario_readiness_leader(path):
    docs, by_kind = load(path)
    dep, c, cfg, rules = common(docs, by_kind)
    ok("PodDisruptionBudget" not in by_kind, "no PDB")
    ok(cfg.get("http", {}).get("readiness") == "leader", "config readiness leader")
    ru = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
    ok(ru.get("maxUnavailable") == "100%", f"rollout can replace the old leader ({ru})")


def scenario_long_name(path):
    docs, by_kind = load(path)
    for d in docs:
        name = d["metadata"]["name"]
        ok(len(name) <= 63 and not name.endswith("-"), f"{d['kind']} name {name!r} truncated to 63")
    dep = one(by_kind, "Deployment")
    ok(len(dep["metadata"]["name"]) == 63, "fullname truncated to exactly 63")


def scenario_sameness(path):
    """PrometheusRule rendered with absentMatchers=job="lease-elector" and no overrides
    must equal files/alerts.yaml."""
    docs, by_kind = load(path)
    pr = one(by_kind, "PrometheusRule")
    with open(os.path.join(CHART, "files", "alerts.yaml")) as f:
        src = yaml.safe_load(f)
    ok(rules_of(pr) == src["groups"], "PrometheusRule groups == files/alerts.yaml groups")


SCENARIOS = {
    "defaults": scenario_defaults,
    "all": scenario_all,
    "podmonitor": scenario_podmonitor,
    "readiness-leader": scenario_readiness_leader,
    "long-name": scenario_long_name,
    "sameness": scenario_sameness,
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        return 2
    if tomllib is None:
        ok(False, "python3 >= 3.11 (tomllib) is needed to parse config.toml")
    SCENARIOS[sys.argv[1]](sys.argv[2])
    results.label = sys.argv[1]
    return results.summary()


if __name__ == "__main__":
    sys.exit(main())
