# syntax=docker/dockerfile:1
#
# lease-elector container image.
#
#   docker build -t lease-elector:dev .
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t lease-elector:0.1.0 .
#
# Stage 1 compiles a release binary with the locked dependencies (rustls + ring, no
# OpenSSL); stage 2 is distroless "cc" (glibc, libgcc; no shell, no package manager)
# running as the numeric non-root user 65532. Checked by tests/dockerfile/check.sh.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

# Dependency layer: compile only the dependencies, against stub sources, so that a
# change under src/ does not rebuild them. Every target path named in Cargo.toml
# gets a stub, and src/main.rs always does.
COPY Cargo.toml Cargo.lock ./
RUN { sed -n 's/^path *= *"\([^"]*\.rs\)"$/\1/p' Cargo.toml; echo src/main.rs; } \
    | while read -r stub; do mkdir -p "$(dirname "$stub")" && echo 'fn main() {}' > "$stub"; done \
    && cargo build --locked --release \
    && rm -rf src target/release/lease-elector target/release/lease-elector.d \
       target/release/.fingerprint/lease-elector-* target/release/deps/lease_elector-* \
       target/release/deps/liblease_elector-*

# The real build. --locked: fail instead of changing Cargo.lock.
COPY . .
RUN touch src/main.rs \
    && cargo build --locked --release \
    && ./target/release/lease-elector --help > /dev/null

FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="lease-elector" \
      org.opencontainers.image.description="Kubernetes Lease leader election daemon with client-go semantics and Prometheus metrics" \
      org.opencontainers.image.url="https://github.com/lease-elector/lease-elector" \
      org.opencontainers.image.source="https://github.com/lease-elector/lease-elector" \
      org.opencontainers.image.documentation="https://github.com/lease-elector/lease-elector/blob/main/docs/helm.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /src/target/release/lease-elector /usr/local/bin/lease-elector

# numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd
USER 65532:65532
# /metrics /healthz /readyz /leader
EXPOSE 9890
ENTRYPOINT ["/usr/local/bin/lease-elector"]
