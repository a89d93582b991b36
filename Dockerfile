# Image of the `commerce` binary. One image serves every role; the subcommand picks it:
#   docker run IMAGE            -> `commerce serve` (everything in one process)
#   docker run IMAGE migrate    -> apply migrations and exit; likewise api, relay, project, process
# Configuration is by environment (DESIGN.md, "Operating contract"): DATABASE_URL, AMQP_URL,
# COMMERCE_NAMESPACE, JWT_SECRET, COMMERCE_ENV, PAYMENT_TIMEOUT, RUST_LOG, LOG_FORMAT, LISTEN_ADDR.
#
# Works with the classic builder as well as BuildKit (no `RUN --mount`), so Debian's
# docker-compose v1 can build it too.

# ---------------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# The whole workspace: migrations/ is embedded at compile time by `sqlx::migrate!`, and every
# manifest's targets (tests, benches) must exist for cargo to read the workspace.
COPY . .
RUN set -eux; \
    cargo build --release --locked --bin commerce; \
    install -D -m 0755 target/release/commerce /out/commerce

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# sqlx and lapin are built without TLS, so no libssl. ca-certificates is kept (small) so the image
# stays usable if a TLS backend or outbound HTTPS is ever added.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 commerce; \
    useradd --system --uid 10001 --gid commerce --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin commerce

COPY --from=builder /out/commerce /usr/local/bin/commerce

# Listen on every interface inside the container (the binary's own default is 127.0.0.1:8080,
# which would be unreachable through a published port).
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080

# Numeric so that orchestrators enforcing runAsNonRoot can verify it.
USER 10001:10001

# No HEALTHCHECK here: the same image runs relay/project/process, which serve no HTTP.
# The api/serve roles answer GET /health; docker-compose.yml checks it with bash's /dev/tcp
# (the slim image has no curl).
ENTRYPOINT ["commerce"]
CMD ["serve"]
