"""Child processes: started so that they die with the script, stopped by PID on every exit path."""
import atexit
import ctypes
import signal
import subprocess

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


class Interrupted(Exception):
    """SIGTERM, SIGINT or SIGHUP arrived (see Processes.raise_on_signals)."""


def _deathsig(sig):
    def preexec():
        _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    return preexec


def run(cmd, timeout=60, env=None, input=None, cwd=None):
    """Runs cmd to completion; returns (rc, stdout, stderr) as text; rc 124 on timeout."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input, cwd=cwd)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return 124, out, err + f"\n(timed out after {timeout}s)"


class Processes:
    """Every long-running child of one script.

    start() launches a child with PR_SET_PDEATHSIG (it gets `deathsig` if the script dies,
    even by SIGKILL) and remembers it; stop_all() stops each one still running by its PID
    (SIGTERM, then SIGKILL after `timeout`). stop_all() runs at interpreter exit too, and
    raise_on_signals() turns SIGTERM/SIGINT/SIGHUP into an Interrupted exception, so the
    script's `finally:` blocks run. Use as a context manager or call stop_all() in `finally`.
    """

    def __init__(self):
        self.procs = []
        atexit.register(self.stop_all)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()

    @staticmethod
    def raise_on_signals():
        def handler(signum, _frame):
            raise Interrupted(f"signal {signum}")
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, handler)

    def start(self, argv, log=None, env=None, cwd=None, stdout=None, deathsig=signal.SIGKILL, text=False):
        """Starts argv. Output: appended to the file `log` (stdout and stderr), or `stdout`
        (e.g. subprocess.PIPE; stderr then goes to `log` when given). stdin is /dev/null."""
        logf = open(log, "ab") if log else None
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else (logf or subprocess.DEVNULL),
                stderr=logf if logf else (subprocess.STDOUT if stdout is None else None),
                preexec_fn=_deathsig(deathsig), text=text)
        finally:
            if logf:
                logf.close()
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc, timeout=10, sig=signal.SIGTERM):
        """Sends `sig` to proc's PID and waits; SIGKILL after `timeout` seconds.
        Returns the exit code, or None when it had to be killed."""
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return None

    def stop_all(self, timeout=10):
        """Stops every child still running: SIGTERM to all, then waits (SIGKILL after timeout)."""
        alive = [p for p in self.procs if p.poll() is None]
        for p in alive:
            p.send_signal(signal.SIGTERM)
        for p in alive:
            self.stop(p, timeout)
        self.procs = [p for p in self.procs if p.poll() is None]
