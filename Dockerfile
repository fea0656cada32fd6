# One image for every role: driftline operator | serve | route | monitor | fetch | drift | up.
# Built with `docker build -t driftline .` (no Docker engine exists on the development machines,
# so CI lints this file with hadolint but does not build it).

# ---- build stage: a virtualenv with the pinned runtime dependencies, then the project itself.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/driftline
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN /opt/driftline/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY serving ./serving
RUN /opt/driftline/bin/pip install --no-deps .

# ---- final stage: no compilers, no pip cache, no source tree; a numeric non-root user.
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="driftline" \
      org.opencontainers.image.description="Driftline: operator, model server, router and drift monitor for ONNX models" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/driftline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/driftline /opt/driftline
# 65532 is the conventional "nonroot" uid; Kubernetes' runAsNonRoot needs a numeric USER.
USER 65532:65532
WORKDIR /tmp
# No HEALTHCHECK on purpose: Kubernetes probes the OIP health endpoints (/v2/health/live, /ready).
ENTRYPOINT ["driftline"]
CMD ["--help"]
