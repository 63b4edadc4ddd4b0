# syntax=docker/dockerfile:1
#
# CPU image (default target): serves the planning API.
#   docker build -t scaleplan .
#   docker run -p 8000:8000 -v scaleplan-data:/data -e SCALEPLAN_API_KEYS=change-me scaleplan
# GPU image for the verifier (CUDA torch + the `gpu` extra), same entry point:
#   docker build --target gpu -t scaleplan:gpu .
#   docker run --gpus all -v scaleplan-data:/data scaleplan:gpu python -m verifier --help

ARG PYTHON_IMAGE=python:3.11-slim
ARG TORCH_VERSION=2.13.0

# ---------------------------------------------------------------------------------------------- base
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SCALEPLAN_DB=/data/scaleplan.db \
    SCALEPLAN_HOST=0.0.0.0 \
    SCALEPLAN_PORT=8000 \
    SCALEPLAN_WORKERS=2
RUN groupadd --system --gid 10001 scaleplan \
    && useradd --system --uid 10001 --gid scaleplan --home-dir /home/scaleplan --create-home scaleplan \
    && mkdir -p /data /app \
    && chown scaleplan:scaleplan /data
WORKDIR /app
# Both images inherit what follows; each drops to the scaleplan user after its own installs (a USER here would
# run them unprivileged). Nothing after this line writes to /data, which VOLUME would discard.
VOLUME ["/data"]
EXPOSE 8000
# urlopen raises on a refused connection or a non-2xx answer, so the exit status is the health.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SCALEPLAN_PORT', '8000'), timeout=4)"]
# Host, port, workers and the database path come from the SCALEPLAN_* variables above.
CMD ["python", "-m", "api"]

# ---------------------------------------------------------------------------------------------- gpu
FROM base AS gpu
ARG TORCH_VERSION
# The PyPI wheel of torch carries its CUDA runtime; the host needs only the NVIDIA driver.
RUN pip install "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY fits ./fits
COPY planner ./planner
COPY verifier ./verifier
COPY api ./api
RUN pip install ".[gpu]"
USER scaleplan

# ---------------------------------------------------------------------------------------------- cpu (default)
FROM base AS cpu
ARG TORCH_VERSION
# Installed first and on its own so this large layer is cached across source changes.
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY fits ./fits
COPY planner ./planner
COPY verifier ./verifier
COPY api ./api
RUN pip install .
USER scaleplan
