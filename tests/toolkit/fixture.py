"""The real API server fixture (tests/k8s-fixture): its launcher and start-up protocol.

The launcher `k8s-fixture --dir DIR` starts etcd and kube-apiserver on free 127.0.0.1
ports, writes DIR/.../info.json (server, ca_file, admin_kubeconfig, admin_token, ...) and
prints one line `K8S_FIXTURE_READY <path of info.json>` on stdout once /readyz answers.
SIGTERM stops both; started again on the same DIR it keeps the data (and its ports when
they are free).
"""
import json
import os
import select
import signal
import ssl
import subprocess
import time
import urllib.request

READY = "K8S_FIXTURE_READY "


class Fixture:
    """One launcher on one directory; `info` is its info.json once started."""

    def __init__(self, bin_dir, directory, processes, log=None):
        self.launcher = os.path.join(str(bin_dir), "k8s-fixture")
        self.dir = str(directory)
        self.processes = processes
        self.log = log or os.path.join(os.path.dirname(self.dir.rstrip("/")), "fixture.stderr")
        self.proc = None
        self.info = None
        self.error = None

    def start(self, timeout=120, attempts=3):
        """Launches it and reads its stdout until the ready line. True once ready;
        False (with `error` set) when it exits or `timeout` seconds pass first.

        The launcher picks free ports, which another process can take before
        kube-apiserver binds them; a start that failed that way is tried again
        (it then picks other ports)."""
        for _ in range(attempts):
            if self._start_once(timeout) or not self._lost_a_port():
                break
        return self.info is not None

    def _lost_a_port(self):
        try:
            with open(self.log, errors="replace") as f:
                return "address already in use" in f.read()
        except OSError:
            return False

    def _start_once(self, timeout):
        os.makedirs(self.dir, exist_ok=True)
        self.proc = self.processes.start([self.launcher, "--dir", self.dir], log=self.log,
                                         stdout=subprocess.PIPE, deathsig=signal.SIGTERM, text=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(READY):
                    with open(line[len(READY):].strip()) as f:
                        self.info = json.load(f)
                    return True
                if not line and self.proc.poll() is not None:
                    break
            elif self.proc.poll() is not None:
                break
        code = self.proc.poll()
        self.error = (f"k8s-fixture exited with {code}" if code is not None
                      else f"k8s-fixture not ready within {timeout:.0f}s") + f"; see {self.log}"
        return False

    def stop(self, timeout=30):
        """SIGTERM to the launcher; True when it exited within `timeout` (else it is killed)."""
        if not self.proc or self.proc.poll() is not None:
            return True
        return self.processes.stop(self.proc, timeout) is not None

    @property
    def kubeconfig(self):
        return self.info["admin_kubeconfig"]

    def get(self, path, timeout=10):
        """GET path from the API server as the admin (TLS with the fixture's CA); the body."""
        ctx = ssl.create_default_context(cafile=self.info["ca_file"])
        req = urllib.request.Request(self.info["server"] + path,
                                     headers={"Authorization": f"Bearer {self.info['admin_token']}"})
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            return r.read().decode()

