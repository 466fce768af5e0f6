"""Proxy: a TCP proxy on 127.0.0.1 between one client and the API server, with faults.

TLS passes through untouched: the client talks to https://127.0.0.1:<proxy port>, for
which the fixture's serving certificate is valid. One proxy per candidate, so a fault
can be aimed at one of them. Modes (set_mode):

  pass     forward both ways
  loud     every open connection is closed (FIN/RST) and new ones are refused: the
           listening socket is closed, so connect() gets ECONNREFUSED
  silent   nothing is forwarded and nothing is refused: open connections freeze (their
           bytes wait in the kernel buffers), new ones are accepted and held; on `pass`
           they all resume, as TCP does after a partition heals
  latency  forward both ways, each chunk `delay` seconds late (set_mode("latency", delay=))

retarget() points new connections at another upstream (an API server that came back
on another port).
"""
import socket
import threading
import time

MODES = ("pass", "loud", "silent", "latency")
_CHUNK = 65536


class Proxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, int(upstream_port))
        self.mode = "pass"
        self.delay = 0.0
        self.lock = threading.Condition()
        self.conns = set()  # sockets of open connections, both sides
        self.closed = False
        self.listener = self._listen(0)
        self.port = self.listener.getsockname()[1]
        self._serve(self.listener)

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def retarget(self, upstream_port):
        with self.lock:
            self.upstream = (self.upstream[0], int(upstream_port))

    def set_mode(self, mode, delay=0.0):
        """Switches the fault mode (see the module docstring)."""
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}")
        with self.lock:
            was, self.mode, self.delay = self.mode, mode, float(delay)
            if mode == "loud":
                self._close_all()
                self._close_listener()
            elif was == "loud":
                self.listener = self._listen(self.port)
                self._serve(self.listener)
            self.lock.notify_all()

    def close(self):
        with self.lock:
            self.closed = True
            self._close_all()
            self._close_listener()
            self.lock.notify_all()

    # ---------------------------------------------------------------- internals

    @staticmethod
    def _listen(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        return s

    def _serve(self, listener):
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def _close_listener(self):
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None

    def _close_all(self):
        for s in list(self.conns):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.conns.clear()

    def _accept_loop(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed (loud partition or close())
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _wait_forwarding(self):
        """Blocks while the mode is silent; False once the proxy is closed or loud."""
        with self.lock:
            while self.mode == "silent" and not self.closed:
                self.lock.wait()
            return not self.closed and self.mode != "loud"

    def _connect(self, client):
        with self.lock:
            self.conns.add(client)
        if not self._wait_forwarding():
            client.close()
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self.lock:
            if client not in self.conns:  # closed meanwhile by a loud partition
                upstream.close()
                return
            self.conns.add(upstream)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                if not self._wait_forwarding():
                    break
                if self.mode == "latency" and self.delay > 0:
                    time.sleep(self.delay)
                    if not self._wait_forwarding():
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            src.close()  # the other direction's pump closes dst
            with self.lock:
                self.conns.discard(src)
                self.conns.discard(dst)
