# A Go service written on an amd64 laptop: every arch knob pinned.
FROM --platform=linux/amd64 golang:1.22-alpine AS build
ENV GOARCH=amd64
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o /out/app ./cmd/app

FROM --platform=linux/amd64 alpine:3.20
COPY --from=build /out/app /usr/local/bin/app
ENTRYPOINT ["app"]
