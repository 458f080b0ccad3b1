# Node.js names the architectures x64 and arm64: TARGETARCH needs a
# mapping. The URL sits on the fourth line of a multi-line RUN.
FROM debian:bookworm-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl xz-utils; \
    curl -fsSLO https://nodejs.org/dist/v20.15.0/node-v20.15.0-linux-x64.tar.xz; \
    tar -xJf node-v20.15.0-linux-x64.tar.xz -C /usr/local --strip-components=1
