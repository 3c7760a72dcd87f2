# syntax=docker/dockerfile:1
# chatbox: one binary, every role (gateway, worker, token, and the
# all-in-one without a subcommand).
#
#   docker build -t chatbox .
#   docker run --rm -p 8080:8080 chatbox --listen 0.0.0.0:8080     # all-in-one
#
# The mock LLM (tools/mock-llm, docs/MOCK-LLM.md) is a development tool,
# not part of the product: it has its own stages and image, which
# docker-compose.yml builds for its demo stack,
#
#   docker build --target mock-llm -t chatbox-mock-llm .
#
# and the default (last) stage, the production image, neither builds nor
# contains it (BuildKit builds only the stages the target needs).
#
# The runtime is Debian slim rather than distroless so that docker-compose
# healthchecks (bash /dev/tcp) and the Helm chart's preStop `sleep` work.

FROM rust:1.95-bookworm AS source
WORKDIR /src
# gcc (for ring) is part of the rust image; rustls only, no OpenSSL.
COPY . .

FROM source AS builder
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin chatbox \
 && install -D -m 0755 target/release/chatbox /out/chatbox

FROM source AS mock-llm-builder
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chatbox-mock-llm --bin mock-llm \
 && install -D -m 0755 target/release/mock-llm /out/mock-llm

# The mock LLM's image (docker-compose.yml's `mock-llm` service).
FROM debian:bookworm-slim AS mock-llm
COPY --from=mock-llm-builder /out/mock-llm /usr/local/bin/mock-llm
EXPOSE 8090
USER 65532:65532
ENTRYPOINT ["mock-llm"]

# The production image (the default target: keep it the last stage).
FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to providers, S3, Mongo Atlas (rustls reads the
# system roots).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /var/lib/chatbox --shell /usr/sbin/nologin nonroot \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/chatbox
COPY --from=builder /out/chatbox /usr/local/bin/chatbox
WORKDIR /var/lib/chatbox
ENV CHATBOX_DATA_DIR=/var/lib/chatbox/data \
    CHATBOX_LOG_FORMAT=json
# 8080: gateway / all-in-one (HTTP, WebSocket, health, metrics);
# 9090: worker health and metrics.
EXPOSE 8080 9090
USER 65532:65532
ENTRYPOINT ["chatbox"]
