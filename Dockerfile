# One image for every pairstream process: the one-shot setup jobs
# (`pairstream db migrate`, `pairstream topics create`) and, as they are added,
# the services (`pairstream <service>`). docker-compose.yml and deploy/k8s pick
# the command; the image only carries the installed package.
#
#   docker build -t pairstream:latest .
#   docker run --rm pairstream:latest settings
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Unprivileged runtime user; Kubernetes manifests pin the same uid (runAsUser: 10001).
RUN groupadd --system --gid 10001 pairstream \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/pairstream \
        --shell /usr/sbin/nologin pairstream

WORKDIR /build

# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes,
# not on every source edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself (src/ and, once they exist, services/<name>/; see .dockerignore).
COPY . .
RUN pip install --no-cache-dir . \
    && cd / && rm -rf /build

WORKDIR /home/pairstream
USER 10001:10001

ENTRYPOINT ["pairstream"]
CMD ["--help"]
