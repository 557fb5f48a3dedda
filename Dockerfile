# syntax=docker/dockerfile:1
# banter's container image: the one `banter` binary; the command picks the role
# (`banter auth`, `gateway`, `persist`, `migrate`; the image's default is `serve`).
#
#   docker build -t banter:dev .
#
# The build runs the same cargo command CI proves (`--locked`, package banter, binary banter).
# Dependencies are compiled in a layer of their own (cargo-chef), so a change to banter's code
# rebuilds banter alone; only a change to Cargo.toml or Cargo.lock rebuilds the dependencies.
# Walkthrough and reference: docs/deploy.md.

# Bookworm on both sides: the runtime's glibc (distroless Debian 12) must be at least the
# builder's, and this is the toolchain and distribution CI tests on.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS chef
# The full (not slim) image: librdkafka is compiled from source by rdkafka-sys and needs its C
# toolchain, make and zlib headers, all of which this image already has.
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
# The recipe lists manifests and the lock file only, so its layer changes only when they do.
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p banter --bin banter --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p banter --bin banter

# Stage the runtime's files at their final paths. The binary needs libz, which distroless/cc
# lacks: it is copied from this builder's Debian 12 (the same release as the runtime), into the
# multiarch directory the loader searches, whatever the architecture. Any other new shared
# library fails the build here rather than at the first start in a cluster.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN install -D -m 0755 target/release/banter /rootfs/usr/local/bin/banter \
 && libs="$(ldd target/release/banter | awk '{print $1}')" \
 && unexpected="$(grep -vE '^(linux-vdso\.so\.1|/lib.*/ld-linux.*|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libz\.so\.1)$' <<<"$libs" || true)" \
 && if [[ -n "$unexpected" ]]; then echo "unexpected shared libraries: $unexpected" >&2; exit 1; fi \
 && libz="$(readlink -f "$(ldd target/release/banter | awk '$1 == "libz.so.1" {print $3}')")" \
 && install -D -m 0644 "$libz" "/rootfs$(dirname "$libz")/libz.so.1"

# distroless/cc: glibc, libgcc and CA certificates, no shell, no package manager; `nonroot`
# runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="banter" \
      org.opencontainers.image.description="banter, a real-time chat server: one binary, a command per role" \
      org.opencontainers.image.source="https://github.com/banter-chat/banter" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /rootfs/ /
USER 65532:65532
WORKDIR /home/nonroot
# 8080: serve and auth; 8081: gateway; 8082: persist's health, readiness and metrics.
EXPOSE 8080 8081 8082
ENTRYPOINT ["/usr/local/bin/banter"]
# `docker run -p 8080:8080 IMAGE` is a complete chat (SQLite in /home/nonroot/banter-data);
# Kubernetes passes the role as args instead.
CMD ["serve"]
