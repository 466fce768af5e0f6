#!/usr/bin/env python3
"""Checks that `rust-version` in Cargo.toml is the true minimum supported Rust.

Only one toolchain can be installed here (rustup cannot download another), so the
MSRV is checked as well as one toolchain allows:

1. no locked dependency declares a `rust-version` above ours (cargo metadata);
2. the crate's own code uses no std API newer than ours: clippy's
   `incompatible_msrv` lint reads `rust-version`, and CI runs clippy with
   `-D warnings`;
3. language features are not covered by (2): let-chains need 1.88, which (1)
   already exceeds through kube 5 (1.89).

Prints the highest dependency requirement; exits 1 when ours is lower.
"""
import json
import subprocess
import sys


def version(text):
    """'1.89' and '1.89.0' compare equal."""
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--locked"], text=True))
ours = next(p for p in meta["packages"] if p["id"] in meta["workspace_members"])
declared = ours.get("rust_version")
if not declared:
    sys.exit("Cargo.toml declares no rust-version")
deps = [(version(p["rust_version"]), p["name"], p["version"])
        for p in meta["packages"]
        if p.get("rust_version") and p["id"] not in meta["workspace_members"]]
need, name, ver = max(deps)
print(f"rust-version {declared}; highest dependency requirement {'.'.join(map(str, need))} ({name} {ver})")
if version(declared) < need:
    sys.exit(f"rust-version {declared} is below what {name} {ver} needs: raise it")
