# syntax=docker/dockerfile:1
# The operator image for machines with a container daemon: `docker build -t gatehouse:0.1.0 .`
# (the tag is Cargo.toml's version). A release build on Debian bookworm, run on distroless `cc`
# (glibc and libgcc, which the binary links, plus CA certificates; no shell, no package manager)
# as uid 65532, the user deploy/ and the Helm chart run it as. `make image` builds the same layout
# without a daemon (hack/image/build.sh): /gatehouse, the same user, entrypoint and environment,
# but only the files of distroless the binary needs.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# What the binary is built from: the admission policies are compiled in (include_str!), and cargo
# refuses a manifest whose declared test (tests/e2e) and bench (benches/) files are missing.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY deploy/admission ./deploy/admission
COPY tests ./tests
COPY benches ./benches
# The cache mounts keep the registry and compiled dependencies between builds; the binary is
# copied out because the target directory is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gatehouse \
    && cp target/release/gatehouse /gatehouse

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /gatehouse /gatehouse
USER 65532:65532
ENTRYPOINT ["/gatehouse"]
