# syntax=docker/dockerfile:1
# The subsync image: `docker build -t subsync .`, then `docker run --rm subsync --help`.
# Multi-stage: the toolchain stays in the build stage; the final image is distroless (glibc and
# CA certificates, no shell, no package manager) and runs as a non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep crates and build artefacts between builds; the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin subsync \
    && cp target/release/subsync /subsync

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /subsync /usr/local/bin/subsync
# distroless's "nonroot" user (65532); Kubernetes manifests set the same ids.
USER 65532:65532
# /healthz, /readyz and /metrics of `subsync watch --listen 0.0.0.0:9464`.
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/subsync"]
CMD ["--help"]
