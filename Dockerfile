# tls-gateway container image (README: "Container").
#   docker build -t tls-gateway .
#   docker run --rm -p 8443:8443 -v /srv/tls-gateway:/etc/tls-gateway:ro tls-gateway
# (the mounted directory holds gateway.conf and the files it names; see the README).
# Build stage: the official Swift image of the same Debian release as the runtime stage, so the
# binary links against the very libssl3/zlib1g it runs with.
FROM swift:6.3-bookworm AS build

# Headers for the system-library targets (OpenSSL 3, zlib); versions follow bookworm's security
# updates, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# No remote dependencies to resolve: the manifest and the sources are the whole input
# (Tests/ only because the manifest declares the test targets).
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
# The Swift standard library is linked in (--static-swift-stdlib); OpenSSL and zlib stay dynamic
# system libraries, so the runtime stage needs no Swift runtime at all.
RUN swift build -c release --static-swift-stdlib --product gateway \
 && install -D -m 0755 "$(swift build -c release --static-swift-stdlib --show-bin-path)/gateway" /out/gateway

# Runtime stage: Debian slim with the shared libraries the binary links (ldd: libssl3, zlib1g, and
# libstdc++6 for the static Swift runtime), the CA store (backends verified against
# the system store by default) and curl for the health check.
FROM debian:bookworm-slim

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 zlib1g libstdc++6 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin gateway \
 && install -d -m 0755 /etc/tls-gateway

COPY --from=build /out/gateway /usr/local/bin/gateway

# `gateway run` without -c reads $GATEWAY_CONFIG. Mount the configuration (and the certificates
# it names) there; keys must not be readable by other users (chmod 600/640).
ENV GATEWAY_CONFIG=/etc/tls-gateway/gateway.conf
# Logs: the configuration's defaults (error_log stderr, access_log stdout) go to `docker logs`.
USER 10001:10001
EXPOSE 8443
# SIGTERM: stop accepting, finish in-flight requests up to shutdown_timeout, exit 0
# (give `docker stop -t` more than shutdown_timeout).
STOPSIGNAL SIGTERM
# Needs `admin 127.0.0.1:9901;` in the configuration; exec form, curl is in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9901/healthz"]
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["run"]
