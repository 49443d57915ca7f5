# syntax=docker/dockerfile:1
# One image for every assetsync command (`assetsync worker`, `assetsync webhooks`, ...),
# installed from the project's wheel: no tests, no demo, no build tools in it.
FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY assetsync ./assetsync
COPY worker ./worker
COPY producers ./producers
COPY schemas ./schemas
COPY console ./console
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=wheel,source=/dist,target=/dist \
    pip install /dist/*.whl && useradd --system --uid 10001 assetsync
WORKDIR /home/assetsync
USER assetsync
# SIGTERM: the worker finishes the message in hand, acks it and exits 0.
STOPSIGNAL SIGTERM
CMD ["assetsync", "worker"]

# `docker compose --profile demo`: the same image plus the demo Jira stand-in.
FROM base AS demo
COPY --chown=assetsync demo ./demo

# The default target: the product alone.
FROM base
