# syntax=docker/dockerfile:1
#
# lease-elector container image.
#
#   docker build -t lease-elector:dev .
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" -t lease-elector:0.1.0 .
#
# The context has no .git, so build.rs takes the commit that `lease-elector --version`
# and lease_elector_build_info show from REVISION (as BUILD_GIT_COMMIT) and the build
# date from SOURCE_DATE_EPOCH (default: the time of the build).
#
# Stage 1 compiles a statically linked release binary (glibc, +crt-static) with the
# locked dependencies (rustls + ring, no OpenSSL); stage 2 is `scratch` holding only that
# binary, the CA bundle, passwd/group entries for 65532 and /tmp: no shell, no package
# manager, no shared libraries, running as the numeric non-root user 65532.
# Checked by tests/dockerfile/check.sh; built and run in CI by tests/dockerfile/build-image.sh.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# A static binary (glibc's libc.a from libc6-dev) so that the runtime stage can be empty.
# An explicit --target keeps the flag off build scripts and proc macros.
ENV RUSTFLAGS="-C target-feature=+crt-static"

# Dependency layer: compile only the dependencies, against stub sources, so that a
# change under src/ does not rebuild them. Every target path named in Cargo.toml
# gets a stub, and src/main.rs always does.
COPY Cargo.toml Cargo.lock ./
RUN { sed -n 's/^path *= *"\([^"]*\.rs\)"$/\1/p' Cargo.toml; echo src/main.rs; } \
    | while read -r stub; do mkdir -p "$(dirname "$stub")" && echo 'fn main() {}' > "$stub"; done \
    && cargo build --locked --release --features daemon --target x86_64-unknown-linux-gnu \
    && out=target/x86_64-unknown-linux-gnu/release \
    && rm -rf src "$out/lease-elector" "$out/lease-elector.d" \
       "$out"/.fingerprint/lease-elector-* "$out"/deps/lease_elector-* \
       "$out"/deps/liblease_elector-*

# The real build. --locked: fail instead of changing Cargo.lock.
# The runtime root is assembled under rootfs/ (relative to WORKDIR).
ARG REVISION=unknown
ARG SOURCE_DATE_EPOCH=
COPY . .
RUN touch src/main.rs \
    && BUILD_GIT_COMMIT="$REVISION" cargo build --locked --release --features daemon --target x86_64-unknown-linux-gnu \
    && bin=target/x86_64-unknown-linux-gnu/release/lease-elector \
    && "$bin" --help > /dev/null \
    && if ldd "$bin" 2>&1 | grep -q '=>'; then echo "not a static binary" >&2; exit 1; fi \
    && mkdir -p rootfs/etc/ssl/certs rootfs/tmp \
    && chmod 1777 rootfs/tmp \
    && cp /etc/ssl/certs/ca-certificates.crt rootfs/etc/ssl/certs/ \
    && echo 'nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin' > rootfs/etc/passwd \
    && echo 'nonroot:x:65532:' > rootfs/etc/group

FROM scratch

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="lease-elector" \
      org.opencontainers.image.description="Kubernetes Lease leader election daemon with client-go semantics and Prometheus metrics" \
      org.opencontainers.image.url="https://github.com/lease-elector/lease-elector" \
      org.opencontainers.image.source="https://github.com/lease-elector/lease-elector" \
      org.opencontainers.image.documentation="https://github.com/lease-elector/lease-elector/blob/main/docs/helm.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=builder /src/rootfs/ /
COPY --from=builder /src/target/x86_64-unknown-linux-gnu/release/lease-elector /usr/local/bin/lease-elector

# numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd
USER 65532:65532
# /metrics /healthz /readyz /leader
EXPOSE 9890
ENTRYPOINT ["/usr/local/bin/lease-elector"]
