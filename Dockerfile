# syntax=docker/dockerfile:1
#
# copilot-exporter container image.
#
#   docker build -t copilot-exporter .
#   docker run --read-only -p 9452:9452 copilot-exporter demo
#   docker run --read-only -p 9452:9452 -e GITHUB_TOKEN \
#     -v "$PWD/config.yaml:/etc/copilot-exporter/config.yaml:ro" copilot-exporter
#
# Two stages: the builder makes wheels for the exporter and its extras (app: GitHub App
# authentication, web: bcrypt for the web configuration's basic auth, remote-write: protobuf and
# snappy for `backfill --remote-write`) and installs them into a
# virtual environment without pip; the final stage holds only that environment on top of the
# slim Python image. Nothing but the state volume is written at run time, so the container runs
# with a read-only root filesystem, as an unprivileged numeric user. No credential is baked in:
# the GitHub token comes from the environment (GITHUB_TOKEN, read by ${GITHUB_TOKEN} in the
# config) or a file.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY copilot_exporter ./copilot_exporter

# Wheels for the exporter and every dependency, at the versions of constraints.txt (those the
# tests passed with), then a pip-less virtual environment with them (pip, setuptools and the
# sources stay in this stage). pip compiles the .pyc files here, so the
# read-only final image never needs to write bytecode.
RUN pip wheel --constraint constraints.txt --wheel-dir /wheels ".[app,web,remote-write]" \
 && python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install --no-index --find-links /wheels "copilot-exporter[app,web,remote-write]" \
 && /opt/venv/bin/copilot-exporter --version


FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="copilot-exporter" \
      org.opencontainers.image.description="Prometheus exporter for GitHub Copilot usage metrics, licences and adoption" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# An unprivileged user with a fixed numeric ID (Kubernetes' runAsNonRoot checks the number),
# no home directory and no shell. The config directory exists so a file can be mounted into it;
# the state directory is the one place the exporter may write, a volume of its own so that it
# stays writable under --read-only (and survives the container when a named volume is given).
RUN groupadd --system --gid 10001 copilot \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin copilot \
 && mkdir -p /etc/copilot-exporter /var/lib/copilot-exporter \
 && chown 10001:10001 /var/lib/copilot-exporter

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/nonexistent \
    COPILOT_EXPORTER_CONFIG=/etc/copilot-exporter/config.yaml \
    COPILOT_EXPORTER_LISTEN_ADDRESS=:9452 \
    COPILOT_EXPORTER_STATE_DIR=/var/lib/copilot-exporter

VOLUME ["/var/lib/copilot-exporter"]

USER 10001:10001
WORKDIR /
EXPOSE 9452

# slim images have no curl: ask /healthz with Python's urllib, on the port of
# COPILOT_EXPORTER_LISTEN_ADDRESS, over HTTPS when COPILOT_EXPORTER_WEB_CONFIG_FILE enables TLS
# (the certificate is not checked: this is the container asking itself).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, ssl, sys, urllib.request; port = os.environ.get('COPILOT_EXPORTER_LISTEN_ADDRESS', ':9452').rpartition(':')[2] or '9452'; web = os.environ.get('COPILOT_EXPORTER_WEB_CONFIG_FILE'); scheme = 'https' if web and 'tls_server_config' in open(web).read() else 'http'; sys.exit(urllib.request.urlopen(scheme + '://127.0.0.1:' + port + '/healthz', timeout=4, context=ssl._create_unverified_context()).status != 200)"]

ENTRYPOINT ["copilot-exporter"]
CMD ["serve"]
