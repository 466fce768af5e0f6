#!/usr/bin/env bash
# The `features` stage: each documented feature set builds and tests on its own,
# the lean set pulls in none of the daemon's dependencies, the docs have no
# warnings, the examples build and the package holds only what a user needs.
#
#   (no features)        the library: election, kube and in-memory backends
#   --features metrics   + the Prometheus reporter
#   --features daemon    + everything the binary needs (the unit stage tests it)
#
# Commands that build the library without its dev-dependencies (check, doc,
# package) get K8S_OPENAPI_ENABLED_VERSION: the library itself enables no
# k8s-openapi version feature (the final binary picks one), so its own builds
# name the version the way k8s-openapi documents for `cargo check`/`cargo doc`.
# Last, `cargo publish --dry-run` (the crates.io index is needed). Prints the
# time of each step.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export K8S_OPENAPI_ENABLED_VERSION="${K8S_OPENAPI_ENABLED_VERSION:-1.34}"

step() { # step NAME COMMAND...: runs it, prints its time
  local name="$1" t0=$SECONDS
  shift
  echo "--- $name"
  "$@"
  echo "--- $name: ok ($((SECONDS - t0)) s)"
}

# What a library user compiles: none of these may appear.
lean_tree() {
  local tree banned
  tree="$(cargo tree --locked -e normal,features --no-default-features --prefix none)"
  banned="$(grep -E '^(clap|figment|opentelemetry[a-z_-]*|tracing-opentelemetry|tracing-subscriber|prometheus|anyhow|toml|humantime) v|^hyper v.*feature "server"|^hyper-util v.*feature "server' <<<"$tree" | sort -u || true)"
  if [ -n "$banned" ]; then
    echo "the lean feature set pulls in daemon dependencies:" >&2
    echo "$banned" >&2
    return 1
  fi
  echo "cargo tree -e normal --no-default-features: $(cargo tree --locked -e normal --no-default-features --prefix none | sort -u | wc -l) packages, no daemon dependency"
}

# `cargo package --list` names only the sources, the examples, the manifest,
# README and LICENSE (and what cargo adds itself).
package_list() {
  local extra
  extra="$(cargo package --locked --list --allow-dirty \
    | grep -vE '^(src/.*\.rs|examples/[^/]+\.rs|Cargo\.toml|Cargo\.toml\.orig|Cargo\.lock|README\.md|LICENSE|\.cargo_vcs_info\.json)$' || true)"
  if [ -n "$extra" ]; then
    echo "cargo package --list has files a user does not need:" >&2
    echo "$extra" >&2
    return 1
  fi
  echo "cargo package --list: $(cargo package --locked --list --allow-dirty | wc -l) files (src, examples, manifest, README, LICENSE)"
}

step "lean dependency tree" lean_tree
step "cargo check --no-default-features" cargo check --locked --no-default-features
step "cargo check --features metrics" cargo check --locked --features metrics
step "cargo test --lib (default features)" cargo test --locked --lib
step "cargo test --lib --features metrics" cargo test --locked --lib --features metrics
step "cargo build --examples" cargo build --locked --examples
step "cargo doc --no-deps (default)" env RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps
step "cargo doc --no-deps --all-features" env RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps --all-features
step "cargo package --list" package_list
# Needs the crates.io index (a registry, reachable here); verifies by building
# the packaged crate with default features.
step "cargo publish --dry-run" cargo publish --locked --dry-run --allow-dirty
