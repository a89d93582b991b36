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

# 1. Dependencies only. Manifests and the lockfile with stub sources, so that this expensive
#    layer is rebuilt only when Cargo.toml/Cargo.lock change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
COPY crates/domain/Cargo.toml      crates/domain/Cargo.toml
COPY crates/commands/Cargo.toml    crates/commands/Cargo.toml
COPY crates/projections/Cargo.toml crates/projections/Cargo.toml
COPY crates/api/Cargo.toml         crates/api/Cargo.toml
COPY event-store/Cargo.toml        event-store/Cargo.toml
RUN set -eux; \
    for dir in crates/domain crates/commands crates/projections crates/api event-store; do \
        mkdir -p "$dir/src"; : > "$dir/src/lib.rs"; \
    done; \
    mkdir -p src; : > src/lib.rs; echo 'fn main() {}' > src/main.rs; \
    cargo build --release --locked --bin commerce; \
    rm -rf src crates/*/src event-store/src

# 2. The real sources. migrations/ is embedded at compile time by
#    `sqlx::migrate!("../migrations")` in event-store, so it must be in the build context.
COPY migrations  migrations
COPY event-store event-store
COPY crates      crates
COPY src         src
# COPY keeps the files' original mtimes, which can be older than the stub build above; touch
# them so cargo rebuilds the workspace crates instead of linking the empty stubs.
RUN set -eux; \
    find src crates event-store migrations -type f -exec touch {} +; \
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
