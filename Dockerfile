# Multi-stage build: compile in the Rust image, run on a slim Debian with only the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/burncloud

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/burncloud --create-home burncloud
COPY --from=build /src/target/release/burncloud /usr/local/bin/burncloud
ENV BURNCLOUD_LISTEN=0.0.0.0:3000 \
    BURNCLOUD_DATA_DIR=/var/lib/burncloud \
    BURNCLOUD_LOG_FORMAT=json
USER burncloud
VOLUME /var/lib/burncloud
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["burncloud", "healthcheck"]
ENTRYPOINT ["burncloud"]
CMD ["serve"]
