# An image layered on the team's legacy base image. The Dockerfile itself is
# clean; the base has no arm64 entry, which only reading the base's index
# shows: `archfit dockerfile --check-base`.
ARG BASE=example.com/shop/legacy:3
FROM ${BASE}
COPY legacy.conf /etc/legacy/legacy.conf
