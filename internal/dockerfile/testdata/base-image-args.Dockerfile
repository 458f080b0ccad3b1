# Base images from global ARGs, a stage reused by name, and scratch.
ARG PYTHON=python:3.12-slim
ARG REGISTRY
FROM ${PYTHON} AS base
RUN pip install --no-cache-dir uvicorn

FROM $REGISTRY/tools/migrate:1.4 AS migrate

FROM base AS app
COPY --from=migrate /migrate /usr/local/bin/migrate
COPY . /app

FROM scratch AS export
COPY --from=app /app /
