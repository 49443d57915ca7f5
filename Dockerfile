# One image for the worker, the producers and the demo Jira stand-in.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY producers ./producers
COPY schemas ./schemas
COPY demo ./demo
RUN pip install . && useradd --system --uid 10001 assetsync
USER assetsync

# SIGTERM: the worker finishes the message in hand, acks it and exits 0.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "worker"]
