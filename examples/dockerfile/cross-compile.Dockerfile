# The service of ./Dockerfile done right: Go cross-compiles on the build
# machine for each target, the tools are downloaded for the target's arch.
# `archfit dockerfile examples/dockerfile/cross-compile.Dockerfile`: no finding.
FROM --platform=$BUILDPLATFORM golang:1.23-alpine AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -o /out/api ./cmd/api

FROM alpine:3.20
ARG TARGETARCH
ARG KUBECTL_VERSION=v1.30.2
RUN apk add --no-cache ca-certificates curl \
 && curl -fsSLo /usr/local/bin/kubectl \
      https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl \
 && chmod +x /usr/local/bin/kubectl
ADD https://github.com/krallin/tini/releases/download/v0.19.0/tini-static-${TARGETARCH} /sbin/tini
COPY --from=build /out/api /usr/local/bin/api
ENTRYPOINT ["/sbin/tini", "--", "api"]
