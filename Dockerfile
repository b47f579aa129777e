# syntax=docker/dockerfile:1.7
# Images of the SiamStream processes (docs/deploy.md):
#   docker build --target session -t siamstream-session:0.1.0 .
#   docker build --target ingest  -t siamstream-ingest:0.1.0 .
# The model server is the official Triton image serving a repository generated from the same tracker
# packages (deploy/triton/README.md); it is not built here.
#
# Pin the base image by digest as well when you promote a build: `docker buildx imagetools inspect
# python:3.11.7-slim-bookworm` prints it; write PYTHON_IMAGE=python:3.11.7-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# ---------------------------------------------------------------------------------------------------
# builder: one wheel per dependency, resolved under constraints.txt, torch pinned to one build variant.
FROM ${PYTHON_IMAGE} AS builder

# TORCH_VERSION must equal the torch pin of constraints.txt (tests/deploy checks it). The variant picks
# the wheel: "cpu" from the CPU index is the default and keeps every CUDA library out of the image; a GPU
# image for the embedded backend uses e.g. TORCH_VARIANT=cu128 and the matching index (docs/deploy.md).
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /src
COPY constraints.txt pyproject.toml LICENSE ./
COPY models/ models/
COPY services/ services/

# torch first, from its variant's index, without dependencies; then the project with a second constraint
# `torch==VERSION+VARIANT`, so the resolver takes that wheel and can never fall back to PyPI's default
# (CUDA) build of the same version. torch's own dependencies come from PyPI in the second step.
RUN printf 'torch==%s+%s\n' "${TORCH_VERSION}" "${TORCH_VARIANT}" > /tmp/torch-variant.txt \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}+${TORCH_VARIANT}" \
    && pip wheel --no-cache-dir --wheel-dir /wheels --find-links /wheels \
        --constraint constraints.txt --constraint /tmp/torch-variant.txt '.[service,triton]'

# ---------------------------------------------------------------------------------------------------
# runtime: the wheels installed offline into the system interpreter, run as an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIAMSTREAM_PACKAGE_DIR=/var/lib/siamstream/packages \
    SIAMSTREAM_METRICS_PORT=9464

# A fixed uid/gid so that Kubernetes' runAsUser and volume ownership (fsGroup) can name it.
RUN groupadd --system --gid 10001 siamstream \
    && useradd --system --uid 10001 --gid siamstream --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin siamstream \
    && mkdir -p /var/lib/siamstream/packages \
    && chown -R siamstream:siamstream /var/lib/siamstream

# --no-index: only the builder's wheels, so the runtime resolves exactly what the builder resolved.
# The bind mounts keep the wheels out of every layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,source=constraints.txt,target=/tmp/constraints.txt \
    pip install --no-cache-dir --no-index --find-links /wheels --constraint /tmp/constraints.txt \
        'siamstream[service,triton]==0.1.0'

WORKDIR /var/lib/siamstream
USER 10001:10001

# ---------------------------------------------------------------------------------------------------
# session: the gRPC tracking service. Containers listen on every interface (the settings default to
# loopback so that a service started by hand is never exposed).
FROM runtime AS session
ENV SIAMSTREAM_LISTEN_ADDRESS=0.0.0.0:50051
EXPOSE 50051 9464
# grpc.health.v1 over loopback: SERVING only once the store and the inference backend have answered.
# `siamstream health` checks plaintext SIAMSTREAM_HEALTH_LISTEN_ADDRESS when it is set, else the main port:
# with TLS on (SIAMSTREAM_TLS_CERT_FILE), set e.g. SIAMSTREAM_HEALTH_LISTEN_ADDRESS=0.0.0.0:50052, a
# second server with health only, no key (docs/deploy.md). Kubernetes uses its own gRPC probes (k8s/);
# this one serves `docker run` and compose. 5 s: the command loads no torch (0.3 s to start), so this
# leaves the 2 s Check room on a loaded host.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["siamstream", "health"]
ENTRYPOINT ["siamstream"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------------
# ingest: the RTSP camera worker. Liveness is its metrics endpoint answering (the worker serves no gRPC).
FROM runtime AS ingest
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['SIAMSTREAM_METRICS_PORT'] + '/metrics', timeout=2)"]
ENTRYPOINT ["siamstream"]
CMD ["ingest"]
