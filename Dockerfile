# Multi-stage build of the rauta binary.
#
# Build stage: stable Rust for the workspace, plus the nightly toolchain with rust-src and bpf-linker,
# which rauta-dataplane's build script (aya-build) needs to compile the BPF programs.
FROM rust:1.95-bookworm AS build
RUN rustup toolchain install nightly --profile minimal --component rust-src \
 && cargo install bpf-linker --locked
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rauta \
 && cp target/release/rauta /rauta

# Runtime stage: a small Debian with CA certificates (for the API server's TLS) and nothing else.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /rauta /usr/local/bin/rauta
ENTRYPOINT ["/usr/local/bin/rauta"]
CMD ["run"]
