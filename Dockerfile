# The engine's image: `docker build -t livecart .` (docs/deploy.md § Running it).
# The builder installs exactly the pins of requirements/runtime.txt (with their hashes, as
# `make` does for the dev lock) and the package into a venv; the runtime stage copies only
# that venv onto a slim Python and runs it as an unprivileged user.

FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/livecart
# The lock first, so its layer is reused while only the code changes. It holds setuptools,
# which builds the package below without fetching anything unpinned.
COPY requirements/runtime.txt requirements/runtime.txt
RUN /opt/livecart/bin/pip install --require-hashes --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY engine engine
COPY clients clients
COPY streamer_console streamer_console
COPY loadtests loadtests
RUN /opt/livecart/bin/pip install --no-deps --no-build-isolation . \
    && /opt/livecart/bin/pip check

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="livecart" \
      org.opencontainers.image.description="Async engine for live-stream commerce" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 livecart \
    && useradd --system --uid 10001 --gid livecart --home-dir /var/lib/livecart \
       --create-home --shell /usr/sbin/nologin livecart
COPY --from=builder /opt/livecart /opt/livecart
# Configuration is the environment (README.md, "environment"): REDIS_URL, LIVECART_SECRET,
# LIVECART_PAYMENT_SECRET, LIVECART_PUBLIC_URL, LIVECART_TRUSTED_PROXIES, ... are set by
# whatever runs the container. These are only the image's defaults.
ENV PATH=/opt/livecart/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LIVECART_HOST=0.0.0.0 \
    LIVECART_PORT=8000 \
    LIVECART_DATA_DIR=/var/lib/livecart \
    LIVECART_LOG_FORMAT=json \
    LIVECART_DRAIN_S=5
USER 10001:10001
WORKDIR /var/lib/livecart
EXPOSE 8000
# Liveness: the process answers (GET /healthz). Readiness (/readyz) is the balancer's.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LIVECART_PORT', '8000'), timeout=2)"]
# SIGTERM drains for LIVECART_DRAIN_S (/readyz answers 503), then stops: give the runtime's
# stop timeout (docker stop -t, compose stop_grace_period) more than the drain.
STOPSIGNAL SIGTERM
ENTRYPOINT ["livecart", "serve"]
# One engine process per container by default: scale with containers (or pass --workers N
# up to the container's CPU limit; the default would be the host's core count).
CMD ["--workers", "1"]
