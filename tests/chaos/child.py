#!/usr/bin/env python3
"""The run-mode workload of the chaos runner: `lease-elector run -- child.py LOG`.

Appends "start PID MONOTONIC IDENTITY" to LOG when it starts and "stop PID MONOTONIC" when
SIGTERM (the supervisor's stop signal) arrives, then exits; a SIGKILL leaves no stop line
(the runner's pidfd watcher notes that exit). CLOCK_MONOTONIC is one clock for every
process on the machine, so the lines of different children compare directly.
"""
import os
import signal
import sys
import time


def note(log, words):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(words) + "\n").encode())  # one write: lines never interleave
    finally:
        os.close(fd)


def main():
    log = sys.argv[1]
    me = str(os.getpid())

    def stop(_signum, _frame):
        note(log, ["stop", me, f"{time.monotonic():.6f}"])
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    note(log, ["start", me, f"{time.monotonic():.6f}", os.environ.get("LEASE_ELECTOR_IDENTITY", "?")])
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
