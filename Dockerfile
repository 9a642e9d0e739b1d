# chatd container image. Two stages on debian:bookworm-slim: the first compiles
# build/chatd with the -dev packages, the second holds only the shared libraries
# it links against, the CA bundle for TLS to the provider, and the binary.
#
#   docker build -t chatd .          (or, with no Docker engine: ../shared/container/check.sh build .)
#   docker run --rm -p 8000:8000 -e OPENAI_API_KEY=sk-... chatd
#
# Configuration is the environment, as for a bare chatd (see .env.example); the
# image only sets HOST=0.0.0.0 so the port is reachable from outside the container.
# scripts/container-check.sh builds this image and checks it end to end.

# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libevent-dev libcurl4-openssl-dev libjansson-dev libhttp-parser-dev libhiredis-dev \
      libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what `make build/chatd` reads (web/ is the page compiled into it);
# tests/ and bench/ stay out of the image.
COPY Makefile ./
COPY scripts/ scripts/
COPY src/ src/
COPY web/ web/
# -j2: the machines this is built on have two cores. The debug info stays in the
# build stage: the runtime copy is stripped (about a third of the file).
RUN make -j2 build/chatd \
 && strip --strip-unneeded -o /chatd build/chatd \
 && /chatd --version

# ---------------------------------------------------------------------------
FROM debian:bookworm-slim

# Manual pages, docs and translations of the packages below are of no use in the
# image; the official slim image already excludes them, a debootstrapped one not.
RUN printf '%s\n' \
      'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/locale/*' \
      > /etc/dpkg/dpkg.cfg.d/docker-slim \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libcurl4 libjansson4 libhttp-parser2.9 libhiredis0.14 libssl3 \
      ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && useradd --no-log-init --uid 10001 --user-group --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin chatd \
 && install -d -o chatd -g chatd -m 0750 /app

COPY --from=build /chatd /usr/local/bin/chatd

# chatd also reads .env from its working directory: /app is empty, so only the
# environment configures it unless a .env is mounted there on purpose.
WORKDIR /app
USER 10001:10001

ENV HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000

# No curl in the image: bash's /dev/tcp sends a raw HTTP request to /health and
# the check passes on a "200" status line. It connects to loopback on $PORT, so it
# is meaningful for HOST=0.0.0.0/:: (the image's default) and PORT != 0.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8000} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && IFS= read -r -t 4 status <&3 && [[ $status == HTTP/1.?' 200 '* ]]"]

# SIGTERM: chatd stops accepting, drains open streams for up to DRAIN_SECONDS
# (default 30), logs server_stopped and exits 0. Give `docker stop` a -t above that.
STOPSIGNAL SIGTERM
CMD ["chatd"]
