# The image is built FROM an earlier stage: its base is that stage's image.
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1

FROM base AS deps
RUN pip install --no-cache-dir -r /requirements.txt

FROM deps
COPY . /app
