# Build: librdkafka is compiled from the source bundled in the rdkafka crate.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev libcurl4-openssl-dev pkg-config make perl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# Cargo.toml declares the benchmark and test targets; their files must exist for the
# manifest to load (the final stage takes the binary only).
COPY benches ./benches
COPY tests ./tests
# The workspace's other member, the provider simulator: only its manifest, with empty
# targets, so the workspace loads; none of its code reaches the image.
COPY sandbox/Cargo.toml ./sandbox/
RUN mkdir -p sandbox/src sandbox/benches && touch sandbox/src/lib.rs sandbox/benches/sandbox.rs
# The commit for `paybridge --version` (the build has no .git): scripts/release passes it.
ARG PAYBRIDGE_COMMIT=unknown
RUN PAYBRIDGE_COMMIT="$PAYBRIDGE_COMMIT" cargo build --release --locked --bin paybridge

FROM debian:bookworm-slim
ARG PAYBRIDGE_VERSION=dev
ARG PAYBRIDGE_COMMIT=unknown
LABEL org.opencontainers.image.title="paybridge" \
      org.opencontainers.image.description="Moves payment-provider notifications into Kafka" \
      org.opencontainers.image.version="$PAYBRIDGE_VERSION" \
      org.opencontainers.image.revision="$PAYBRIDGE_COMMIT" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 paybridge
COPY --from=build /src/target/release/paybridge /usr/local/bin/paybridge
USER 10001
EXPOSE 8080 9090
ENTRYPOINT ["paybridge"]
CMD ["run", "--config", "/etc/paybridge/paybridge.toml"]
