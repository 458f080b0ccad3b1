# The same downloads done right: the arch comes from TARGETARCH or uname.
FROM debian:bookworm-slim
ARG TARGETARCH
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
 && curl -fsSLo /usr/local/bin/kubectl https://dl.k8s.io/release/v1.30.2/bin/linux/${TARGETARCH}/kubectl \
 && chmod +x /usr/local/bin/kubectl
RUN case "$(uname -m)" in x86_64) a=x86_64 ;; aarch64) a=aarch64 ;; esac \
 && curl -fsSL "https://awscli.amazonaws.com/awscli-exe-linux-${a}.zip" -o /tmp/awscli.zip
ADD https://github.com/krallin/tini/releases/download/v0.19.0/tini-${TARGETARCH} /tini
