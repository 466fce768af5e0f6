"""The mixed fleet on one Lease: the API server fixture, one proxy and one kubeconfig per
candidate, lease-elector daemons (some in run mode) and client-go candidates."""
import signal
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toolkit import Fixture, write_kubeconfig  # noqa: E402
from toolkit.candidates import ClientGo, LeaseElector  # noqa: E402
from toolkit.proxy import Proxy  # noqa: E402

CHILD = Path(__file__).resolve().parent / "child.py"


def api_port(info):
    return urllib.parse.urlsplit(info["server"]).port


class Fleet:
    """fleet.candidates (in order), fleet.proxies[identity], fleet.fixture."""

    def __init__(self, args, work, procs):
        self.args, self.work, self.procs = args, Path(work), procs
        self.fixture = Fixture(args.fixture_bin, self.work / "fixture", procs, log=str(self.work / "fixture.log"))
        self.lease = f"chaos-{args.seed}"
        self.children_log = self.work / "children.log"
        self.candidates, self.proxies = [], {}

    def start_apiserver(self):
        if not self.fixture.start(180):
            raise RuntimeError(self.fixture.error)

    def restart_apiserver(self):
        """Stops and starts the fixture on its directory; points the proxies at it. Seconds taken."""
        t0 = time.monotonic()
        self.fixture.stop(30)
        self.start_apiserver()
        for p in self.proxies.values():
            p.retarget(api_port(self.fixture.info))
        return time.monotonic() - t0

    def build(self):
        """Creates the candidates (not started): lease-elector le-1..N (the last
        args.run_mode of them in run mode), then client-go cg-1..M."""
        a = self.args
        n_le, n_cg = a.lease_electors, a.client_go
        for i in range(1, n_le + 1):
            run = [sys.executable, str(CHILD), str(self.children_log)] if i > n_le - a.run_mode else None
            self._add(lambda ident, kc: LeaseElector(ident, self.lease, kc, a.timings, self.work, self.procs,
                                                     a.lease_elector_bin, run=run, grace=a.grace), f"le-{i}")
        for i in range(1, n_cg + 1):
            self._add(lambda ident, kc: ClientGo(ident, self.lease, kc, a.timings, self.work, self.procs,
                                                 a.fixture_bin), f"cg-{i}")

    def _add(self, make, identity):
        info = self.fixture.info
        proxy = Proxy(api_port(info))
        kubeconfig = self.work / f"{identity}.kubeconfig"
        write_kubeconfig(kubeconfig, proxy.url, info["ca_file"], info["admin_token"], "default")
        self.proxies[identity] = proxy
        self.candidates.append(make(identity, kubeconfig))

    def start(self):
        for c in self.candidates:
            c.start()

    def stop(self):
        """Every candidate stopped (SIGCONT first, in case one is stopped); exits noted."""
        for c in self.candidates:
            if c.alive():
                c.signal(signal.SIGCONT)
                c.signal(signal.SIGTERM)
        for c in self.candidates:
            if c.proc is not None and c.wait_exit(15) is None and c.alive():
                c.signal(signal.SIGKILL)
                c.wait_exit(5)
        for p in self.proxies.values():
            p.close()
