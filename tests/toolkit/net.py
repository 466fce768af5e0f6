"""Ports and plain HTTP on 127.0.0.1."""
import json
import socket
import urllib.parse
import urllib.request


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    """(status, body) of a GET; raises urllib.error.HTTPError on 4xx/5xx."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


class JsonApi:
    """A client of an HTTP API that answers JSON, at `base` (http://127.0.0.1:PORT)."""

    def __init__(self, base):
        self.base = base

    def get(self, path, timeout=10, **params):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.load(r)
