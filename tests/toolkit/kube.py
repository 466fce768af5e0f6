"""Access to the API server: kubectl with a kubeconfig, raw requests with a bearer token."""
import base64
import json
import os
import ssl
import urllib.error
import urllib.request

from .procs import run


class Kube:
    """kubectl with a kubeconfig, and raw HTTPS requests with a bearer token."""

    def __init__(self, kubeconfig, server, ca_file, token):
        self.kubeconfig, self.server, self.token = kubeconfig, server, token
        self.ctx = ssl.create_default_context(cafile=ca_file)

    def kubectl(self, *args, timeout=30, input=None):
        return run(["kubectl", f"--kubeconfig={self.kubeconfig}", "--request-timeout=15s", *args],
                   timeout=timeout, input=input)

    def request(self, method, path, body=None):
        """The HTTP status of a real request to the API server."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/merge-patch+json" if method == "PATCH"
                           else "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=15) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code


def write_kubeconfig(path, server, ca_file, token, namespace):
    """A kubeconfig (mode 0600) that authenticates with `token` only, in `namespace`."""
    with open(ca_file, "rb") as f:
        ca = base64.b64encode(f.read()).decode()
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fixture", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "fixture", "user": "sa", "namespace": namespace}}],
        "current-context": "sa",
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    os.chmod(path, 0o600)
