"""Ports and plain HTTP on 127.0.0.1."""
import socket
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
