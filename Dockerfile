# AIOSS: the `aioss` binary in a small image, running `aioss serve` as a non-root user with
# the embedded audit store (SQLite, bundled into the binary) on a volume.
#
#   docker build -t aioss .
#   docker run --rm -p 8080:8080 -v aioss-data:/data \
#       -v "$PWD/server.toml:/etc/aioss/server.toml:ro" aioss
#
# Listening on 0.0.0.0 needs `--config` (tokens for every agent and operator): without one,
# `aioss serve` is in local-development mode and refuses any non-loopback address. See
# README.md, "aioss serve", and crates/aioss-server/src/config.rs for the file's format.
# Other commands run the same way: `docker run --rm -v aioss-data:/data aioss audit verify
# /data/aioss-audit.db`. (Not built in CI: no container engine there.)

# ---- build ---------------------------------------------------------------------------
# Any stable toolchain at or above the workspace's rust-version (1.86) builds it.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p aioss \
 && install -D -m 0755 target/release/aioss /out/aioss

# ---- run -----------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin aioss \
 && mkdir -p /data /etc/aioss \
 && chown aioss:aioss /data
COPY --from=build /out/aioss /usr/local/bin/aioss
COPY policies /etc/aioss/policies
USER aioss
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["aioss"]
CMD ["serve", "--policy", "/etc/aioss/policies/warehouse-robot.toml", \
     "--audit", "/data/aioss-audit.db", "--listen", "0.0.0.0:8080", \
     "--config", "/etc/aioss/server.toml"]
