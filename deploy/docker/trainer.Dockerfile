# syntax=docker/dockerfile:1
# Image of the trainer (`lift trainer serve`): gRPC 50053, HTTP 8082. Runs, checkpoints and adapters
# live in /data/trainer (a volume that outlives the container); run configs may read
# /data/inputs and /models.
# Build from the repository root (deploy/README.md has every image):
#   docker build -f deploy/docker/trainer.Dockerfile -t lift-trainer:cpu .
#   docker build -f deploy/docker/trainer.Dockerfile --build-arg VARIANT=cuda -t lift-trainer:cuda .
# VARIANT=cpu installs torch's CPU build (requirements/lock.txt), cuda its CUDA build with the
# CUDA libraries as wheels (requirements/lock-cuda.txt; run with the NVIDIA container toolkit).
# No secret is baked in: tokens (LIFT_AUTH_FILE) and TLS files are mounted at run time.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
# Where pip finds torch==2.13.0+cpu (PyPI has only the CUDA build); used when VARIANT=cpu.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY deploy/docker/install.sh deploy/docker/install.sh
COPY lift/ lift/
COPY services/ services/
# The same script tests/deploy/test_images.py runs: the lock's pins, then `pip check`.
RUN if [ "$VARIANT" = cpu ]; then export PIP_EXTRA_INDEX_URL="$TORCH_CPU_INDEX"; fi \
 && sh deploy/docker/install.sh /opt/lift trainer "$VARIANT" /src

FROM ${PYTHON_IMAGE}
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="lift-trainer" \
      org.opencontainers.image.description="LiFT suite: trainer service ($VARIANT)" \
      org.opencontainers.image.source="deploy/docker/trainer.Dockerfile"
RUN useradd --system --no-log-init --uid 10001 --user-group --home-dir /home/lift --create-home \
      --shell /usr/sbin/nologin lift \
 && mkdir -p /models /data \
 && chown lift:lift /models /data
COPY --from=build /opt/lift /opt/lift
COPY deploy/docker/healthcheck.py /opt/lift/healthcheck.py
ENV PATH=/opt/lift/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HF_HUB_OFFLINE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LIFT_TRAINER_HOST=0.0.0.0 \
    LIFT_TRAINER_DATA_DIR=/data/trainer \
    LIFT_TRAINER_CACHE_DIR=/data/cache \
    LIFT_TRAINER_DATA_ROOTS=/data/inputs,/models \
    XDG_CACHE_HOME=/data/cache \
    HF_HOME=/data/cache/huggingface
VOLUME ["/models", "/data"]
USER 10001:10001
WORKDIR /home/lift
EXPOSE 50053 8082
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "/opt/lift/healthcheck.py", "trainer"]
ENTRYPOINT ["lift", "trainer", "serve"]
