# syntax=docker/dockerfile:1

# Two images from one build:
#   docker build --target controller -t ballast .   # the controller
#   docker build --target app -t app .              # the sample workload
# No shell, package manager or compiler reaches either final image.

# ---------------------------------------------------------------------------
# builder: compiles every binary once.
# Base images by digest, so a rebuild of the same commit uses the same
# toolchain and runtime; the tag each digest was taken from is named beside
# it. To move on: docker buildx imagetools inspect IMAGE:TAG.
# rust:1.95-slim-bookworm
FROM rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS builder
WORKDIR /src
COPY . .
# The same command as CI's build (`cargo build --release --locked -p ballast
# -p app`), so the images hold what CI built and tested: --locked refuses a
# Cargo.lock that would need changing. The cache mounts keep crates and
# incremental artefacts between builds on one machine; because the target
# mount is not part of the image, the binaries are copied out in this step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ballast -p app \
    && mkdir -p /out \
    && cp target/release/ballast target/release/app target/release/httpcheck /out/

# ---------------------------------------------------------------------------
# app: the article's workload, frontend on 80 and backend on 8000.
#
# distroless/cc: glibc and libgcc for the Rust binaries, CA certificates, a
# nonroot user (65532), and nothing else. Binding port 80 as non-root works
# because Docker sets net.ipv4.ip_unprivileged_port_start=0 in a container's
# network namespace (the ECS task definition also sets it explicitly).
# gcr.io/distroless/cc-debian12:nonroot
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS app
COPY --from=builder /out/app /out/httpcheck /usr/local/bin/
# Numeric, so a runtime can tell it is not root without reading /etc/passwd.
USER 65532:65532
EXPOSE 80 8000
# httpcheck is a std-only HTTP GET that exits 0 on 2xx: the image has no
# curl or wget, and a shell-free exec-form check needs a binary of its own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/httpcheck", "http://127.0.0.1:8000/status"]
ENTRYPOINT ["/usr/local/bin/app"]

# ---------------------------------------------------------------------------
# controller: ballast with the repository's desired state baked in, so the
# image that runs is the reviewed state (the deploy workflow fills in the
# stack's subnet ids before building; see deploy/README.md).
#
# Last stage, so a plain `docker build .` builds the controller.
# gcr.io/distroless/cc-debian12:nonroot (the same digest as the app)
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS controller
COPY --from=builder /out/ballast /out/httpcheck /usr/local/bin/
COPY desired-state/ /etc/ballast/desired-state/
USER 65532:65532
EXPOSE 9090
# Same checker as the app image: ballast has no health-check subcommand and
# the image has no shell, curl or busybox. /livez, not /healthz: /healthz
# fails during an AWS outage too, and restarting ballast cannot end that.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/httpcheck", "http://127.0.0.1:9090/livez"]
ENTRYPOINT ["/usr/local/bin/ballast"]
CMD ["run", "/etc/ballast/desired-state", "--cloud", "aws", "--listen", "0.0.0.0:9090"]
