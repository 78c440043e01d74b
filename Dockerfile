# syntax=docker/dockerfile:1
# One image per service, each with only its own dependencies: the target is the service
# (its extra in pyproject.toml, locked in requirements/<target>.txt), plus `setup` for
# the one-shot jobs (`pairstream db migrate`, `pairstream topics create`).
#
#   docker build --target api -t pairstream-api:latest .
#   docker run --rm pairstream-api:latest api --help
#
# docker-compose.yml and deploy/k8s build or pull one per service. Every image runs as
# uid 10001 (the manifests pin it), works on a read-only root file system (bytecode is
# compiled here; /tmp is the only place written, a tmpfs or emptyDir) and checks its own
# health endpoint. tests/deploy/test_extras.py holds each service's imports to its extra.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- the project as a wheel (no dependencies) ------------------------------------------
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
COPY services ./services
RUN pip wheel --no-deps --wheel-dir /wheels .

# -- a virtual environment per image: the locked, hash-checked versions, then the wheel --
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY --from=wheel /wheels /wheels

FROM venv AS venv-setup
COPY requirements/setup.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl

FROM venv AS venv-ingest
COPY requirements/ingest.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl

FROM venv AS venv-resampler
COPY requirements/resampler.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl

FROM venv AS venv-analytics
COPY requirements/analytics.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl

FROM venv AS venv-alerts
COPY requirements/alerts.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl

FROM venv AS venv-api
COPY requirements/api.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl

FROM venv AS venv-ui
COPY requirements/ui.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl

# -- what every image shares at run time ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="pairstream" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json
# Unprivileged runtime user; Kubernetes manifests pin the same uid (runAsUser: 10001).
RUN groupadd --system --gid 10001 pairstream \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/pairstream \
        --shell /usr/sbin/nologin pairstream
WORKDIR /home/pairstream
USER 10001:10001
ENTRYPOINT ["pairstream"]

# -- the images (docker build --target <name>) ----------------------------------------------

FROM runtime AS setup
LABEL org.opencontainers.image.title="pairstream-setup" \
      org.opencontainers.image.description="pairstream's one-shot jobs: db migrate, topics create"
COPY --from=venv-setup /opt/venv /opt/venv
HEALTHCHECK NONE
CMD ["db", "migrate"]

FROM runtime AS ingest
LABEL org.opencontainers.image.title="pairstream-ingest" \
      org.opencontainers.image.description="Binance trades (or a synthetic market) into Kafka"
COPY --from=venv-ingest /opt/venv /opt/venv
EXPOSE 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9101/metrics', timeout=3)"]
CMD ["ingest"]

FROM runtime AS resampler
LABEL org.opencontainers.image.title="pairstream-resampler" \
      org.opencontainers.image.description="Trades into OHLCV bars (faust-streaming agents)"
COPY --from=venv-resampler /opt/venv /opt/venv
EXPOSE 9102
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9102/metrics', timeout=3)"]
CMD ["resampler"]

FROM runtime AS analytics
LABEL org.opencontainers.image.title="pairstream-analytics" \
      org.opencontainers.image.description="Pairs analytics: hedge ratios, spread, z-score, cointegration"
COPY --from=venv-analytics /opt/venv /opt/venv
EXPOSE 9103
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9103/metrics', timeout=3)"]
CMD ["analytics"]

FROM runtime AS alerts
LABEL org.opencontainers.image.title="pairstream-alerts" \
      org.opencontainers.image.description="Alert rules over bars and analytics, notifications"
COPY --from=venv-alerts /opt/venv /opt/venv
EXPOSE 9104
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9104/metrics', timeout=3)"]
CMD ["alerts"]

FROM runtime AS api
LABEL org.opencontainers.image.title="pairstream-api" \
      org.opencontainers.image.description="REST and WebSocket API over the stored and streamed data"
COPY --from=venv-api /opt/venv /opt/venv
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health/live', timeout=3)"]
CMD ["api", "--host", "0.0.0.0"]

FROM runtime AS ui
LABEL org.opencontainers.image.title="pairstream-ui" \
      org.opencontainers.image.description="The live dashboard (Dash), reading only the API"
COPY --from=venv-ui /opt/venv /opt/venv
EXPOSE 8050
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8050/health/live', timeout=3)"]
CMD ["ui", "--host", "0.0.0.0"]
