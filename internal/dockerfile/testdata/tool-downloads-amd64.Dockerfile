# A CI/ops image that downloads release binaries for amd64.
FROM debian:bookworm-slim
ARG YQ_URL=https://github.com/mikefarah/yq/releases/download/v4.44.1/yq_linux_amd64
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
 && curl -fsSLo /usr/local/bin/kubectl https://dl.k8s.io/release/v1.30.2/bin/linux/amd64/kubectl \
 && chmod +x /usr/local/bin/kubectl \
 && curl -fsSL https://get.helm.sh/helm-v3.15.2-linux-amd64.tar.gz | tar -xz -C /tmp \
 && wget -q -O /usr/local/bin/yq "$YQ_URL"
ADD https://github.com/krallin/tini/releases/download/v0.19.0/tini-amd64 /tini
ADD https://awscli.amazonaws.com/awscli-exe-linux-x86_64.zip /tmp/awscli.zip
ENTRYPOINT ["/tini", "--"]
