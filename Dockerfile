# Build the gateway, then ship it on a slim Debian with Debian's OWASP CRS package.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake perl make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY rules ./rules
RUN cargo build --release --locked --bin switchyard

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends modsecurity-crs ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
COPY conf/acme /etc/switchyard
# conf/acme names its IP lists as ../ip-intel/*.txt
COPY conf/ip-intel /etc/ip-intel
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["switchyard"]
CMD ["run", "--config", "/etc/switchyard"]
