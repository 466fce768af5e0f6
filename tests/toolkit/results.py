"""Results: the one pass/fail recorder of the test scripts."""


class Results:
    """Records named checks.

    verbose=True prints "ok   NAME" / "FAIL NAME" as each check is made (long-running
    tests); verbose=False prints only the failures, at the end (many small checks).
    summary() prints the closing line "[LABEL: ]N passed, M failed" and returns the exit
    status (1 when a check failed).
    """

    def __init__(self, label=None, verbose=True):
        self.label = label
        self.verbose = verbose
        self.checks = []  # (good, name)

    def check(self, cond, name, detail=None):
        """Records one check; returns whether it passed. `detail` (the last 40 lines)
        is printed under a failure."""
        good = bool(cond)
        self.checks.append((good, name))
        if self.verbose:
            print(("ok   " if good else "FAIL ") + name, flush=True)
            if not good and detail:
                for line in str(detail).rstrip().splitlines()[-40:]:
                    print("     " + line, flush=True)
        return good

    def info(self, msg):
        print("     info: " + msg, flush=True)

    @property
    def failed(self):
        return [name for good, name in self.checks if not good]

    def summary(self):
        failed = self.failed
        if failed and self.verbose:
            print("failed checks:")
            for name in failed:
                print(f"  - {name}")
        elif failed:
            for name in failed:
                print(f"FAIL {name}")
        prefix = f"{self.label}: " if self.label else ""
        print(f"{prefix}{len(self.checks) - len(failed)} passed, {len(failed)} failed", flush=True)
        return 1 if failed else 0
