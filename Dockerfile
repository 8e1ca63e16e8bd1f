# Multi-stage build: compile with the Rust toolchain, run on distroless as a non-root user.
# SQLite is compiled into the binary (sqlx's sqlite-bundled), so the image needs no libsqlite3.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migrations migrations
COPY config config
COPY examples examples
COPY src src
RUN cargo build --release --locked && strip target/release/ffrelay && mkdir -p /state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ffrelay /usr/local/bin/ffrelay
COPY config/ffrelay.toml /etc/ffrelay/ffrelay.toml
COPY --from=build --chown=65532:65532 /state /var/lib/ffrelay
# The outbox lives on a volume; mount one at /var/lib/ffrelay.
ENV FFRELAY_CONFIG=/etc/ffrelay/ffrelay.toml \
    FFRELAY__DATABASE__PATH=/var/lib/ffrelay/ffrelay.db
USER nonroot:nonroot
EXPOSE 8650
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/ffrelay", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ffrelay"]
CMD ["serve"]
