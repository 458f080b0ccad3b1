# The final stage on $BUILDPLATFORM: alpine and its packages are the build
# machine's arch in every platform's image.
FROM --platform=$BUILDPLATFORM golang:1.23 AS build
ARG TARGETOS TARGETARCH
COPY . /src
RUN cd /src && GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /app .

FROM --platform=$BUILDPLATFORM alpine:3.20
RUN apk add --no-cache ca-certificates
COPY --from=build /app /app
ENTRYPOINT ["/app"]
