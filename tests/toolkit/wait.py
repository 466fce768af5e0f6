"""wait_for: the one polling loop of the test scripts."""
import time


def wait_for(cond, timeout, interval=0.25):
    """Calls cond() until it returns a truthy value and returns that value.

    cond() is called at least once; an exception from it means "not yet". Returns None
    once `timeout` seconds (monotonic clock) have passed without a truthy value.
    """
    end = time.monotonic() + timeout
    while True:
        try:
            value = cond()
        except Exception:  # noqa: BLE001 - a failing probe means "not yet"
            value = None
        if value:
            return value
        if time.monotonic() >= end:
            return None
        time.sleep(interval)
